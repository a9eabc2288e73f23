"""Cost of the engine's per-token logprob record (log-softmax + top-20 over a 151,936-token vocabulary).

    python benchmarks/logprob_record.py

The engine computes it on its own thread for every token of every sequence that asks for logprobs
(DeepConf, self-certainty, the judges), so at 48 sequences it is paid 48 times per decode step. Prints the
median over repeats of the current implementation and of the straightforward float64 version it replaced,
and of the sampled token's logprob alone (``logprobs=0``, what every evaluation asks for so that each
stored sample carries its logprob summary), with its share of a decode step at the 16-sequence
throughput measured in ``results/engine.json``.
"""

from __future__ import annotations

import json
import statistics
import timeit
from pathlib import Path
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
    out["sampled_only_ms"] = median_ms(lambda: _logprob_record(logits, 0))
    engine = Path(__file__).parent / "results" / "engine.json"
    if engine.is_file():  # ms per generated token at n=16 on this machine class, engine included
        row = next(r for r in json.loads(engine.read_text())["rows"] if r["n"] == 16)
        ms_per_token = 1000 / row["engine"]["tok_s"]
        out["sampled_only_share_of_a_token_at_n16"] = round(out["sampled_only_ms"] / ms_per_token, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
