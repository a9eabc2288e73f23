"""Aggregate decode rate when several problems sample at once (the eval/benchmark load).

    python benchmarks/concurrent_samples.py [--problems 3] [--n 16] [--tokens 300]

Three GSM8K problems x 16 samples x 300 tokens decode together on one engine (48 live sequences, end of
generation banned so every sample runs its full length), submitted from three threads as the evaluator
does. This is the load where the KV layout matters: with one unified KV pool each token attended over all
48 sequences' cells and the rate fell to ~40 tok/s; with a stream per sequence it stays near the batched
ceiling. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from ttscale import Prompt
from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator
from ttscale.bench.engine_bench import _eog_tokens, sc_params
from ttscale.evals.datasets import load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--problems", type=int, default=3)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=300)
    a = ap.parse_args()
    config = ContextConfig(n_seq_max=64, seq_len=a.tokens + 512)
    with LlamaCppGenerator.from_model(a.model, config) as gen:
        ban = _eog_tokens(gen)
        questions = [ex.problem.question for ex in load("gsm8k", limit=a.problems)]

        def run(q: str) -> None:
            gen.generate([Prompt.user(q)], sc_params(a.n, a.tokens, ban))

        start = time.perf_counter()
        threads = [threading.Thread(target=run, args=(q,)) for q in questions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        stats = gen.engine.stats
        print(
            json.dumps(
                {
                    "model": a.model,
                    "sequences": a.problems * a.n,
                    "tokens_each": a.tokens,
                    "wall_tok_s": round(a.problems * a.n * a.tokens / wall, 1),
                    "decode_step_tok_s": round(stats.decoded_tokens / stats.step_seconds, 1),
                    "prefill_s": round(stats.prefill_seconds, 2),
                    "wall_s": round(wall, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
