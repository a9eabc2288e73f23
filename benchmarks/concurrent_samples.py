"""Aggregate decode rate when several problems sample at once (the eval/benchmark load).

    python benchmarks/concurrent_samples.py [--problems 3] [--n 16] [--tokens 300] [--rounds 1] [--max-cached 4]

Three GSM8K problems x 16 samples x 300 tokens decode together on one engine (48 live sequences, end of
generation banned so every sample runs its full length), submitted from three threads as the evaluator
does. This is the load where the KV layout matters: with one unified KV pool each token attended over all
48 sequences' cells and the rate fell to ~40 tok/s; with a stream per sequence it stays near the batched
ceiling. With ``--rounds 2`` a second set of problems follows on the same engine, which shows what the
finished sequences kept as prefixes (``--max-cached``) cost the next round. Prints one JSON object.
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
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-cached", type=int, default=4)
    a = ap.parse_args()
    config = ContextConfig(n_seq_max=64, seq_len=a.tokens + 512, max_cached=a.max_cached)
    rounds = []
    with LlamaCppGenerator.from_model(a.model, config) as gen:
        ban = _eog_tokens(gen)
        for r in range(a.rounds):
            questions = [ex.problem.question for ex in load("gsm8k", offset=r * a.problems, limit=a.problems)]
            rounds.append(one_round(gen, questions, a.n, a.tokens, ban))
    print(
        json.dumps(
            {
                "model": a.model,
                "sequences": a.problems * a.n,
                "tokens_each": a.tokens,
                "max_cached": a.max_cached,
                "rounds": rounds,
                **rounds[0],
            }
        )
    )


def one_round(
    gen: LlamaCppGenerator, questions: list[str], n: int, tokens: int, ban: list[int]
) -> dict[str, float]:
    before = (
        gen.engine.stats.decoded_tokens,
        gen.engine.stats.step_seconds,
        gen.engine.stats.prefill_seconds,
    )

    def run(q: str) -> None:
        gen.generate([Prompt.user(q)], sc_params(n, tokens, ban))

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    s = gen.engine.stats
    return {
        "wall_tok_s": round(len(questions) * n * tokens / wall, 1),
        "decode_step_tok_s": round((s.decoded_tokens - before[0]) / (s.step_seconds - before[1]), 1),
        "prefill_s": round(s.prefill_seconds - before[2], 2),
        "wall_s": round(wall, 1),
    }


if __name__ == "__main__":
    main()
