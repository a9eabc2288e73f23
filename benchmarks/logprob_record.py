"""Cost of the engine's per-token logprob record (log-softmax + top-20 over a 151,936-token vocabulary).

    python benchmarks/logprob_record.py

The engine computes it on its own thread for every token of every sequence that asks for logprobs
(DeepConf, self-certainty, the judges), so at 48 sequences it is paid 48 times per decode step. Prints the
median over repeats of the current implementation and of the straightforward float64 version it replaced.
"""

from __future__ import annotations

import json
import statistics
import timeit
from typing import Any

import numpy as np

from ttscale.backends.llamacpp.engine import _logprob_record

VOCAB = 151_936


def float64_reference(
    logits: np.ndarray[Any, Any], k: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The replaced version: a float64 log-softmax of the whole vocabulary, then argpartition."""
    x = logits.astype(np.float64)
    m = x.max()
    lp = x - (m + np.log(np.exp(x - m).sum()))
    idx = np.argpartition(-lp, k)[:k]
    return lp, idx[np.argsort(-lp[idx], kind="stable")]


def median_ms(fn: Any, repeats: int = 7, number: int = 100) -> float:
    return round(1000 * statistics.median(timeit.repeat(fn, repeat=repeats, number=number)) / number, 3)


def main() -> None:
    logits = np.random.default_rng(0).normal(0, 3, VOCAB).astype(np.float32)
    out = {
        "vocab": VOCAB,
        "top_k": 20,
        "current_ms": median_ms(lambda: _logprob_record(logits, 20)),
        "float64_reference_ms": median_ms(lambda: float64_reference(logits, 20)),
    }
    out["speedup"] = round(out["float64_reference_ms"] / out["current_ms"], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
