"""Decode throughput when requests start and finish at different times, with and without slot compaction.

    python benchmarks/staggered_decode.py --out benchmarks/results/staggered_decode.json

`ttscale bench engine` measures n samples of one prompt: they start together on consecutive sequence ids
and finish together, the best case. Real evaluations (adaptive consistency, many problems in flight) keep
starting short requests while others run, so finished samples leave holes between live ones. llama.cpp
decodes each run of consecutive sequence ids as its own pass over the weights, so holes cost passes.

Workload: ``--problems`` GSM8K questions in flight, each drawing ``--rounds`` requests of ``--n`` samples
one after another (as adaptive consistency draws its batches), on one engine with 64 slots of 2048 cells.
Reported per mode: decode tokens/s (tokens decoded / time in decode steps), passes per step (runs of
consecutive ids, 1 is ideal) and streams moved.

``--max-cached 1,48`` instead compares how many finished sequences the engine keeps as prefixes (all with
compaction on): kept streams sit above the live ones, so they should cost no decode passes.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator
from ttscale.evals.datasets import load
from ttscale.prompts import MATH_COT_SYSTEM_PROMPT
from ttscale.types import Prompt, SamplingParams


def run(
    model: str, compact: bool, problems: int, rounds: int, n: int, tokens: int, max_cached: int = 1
) -> dict[str, Any]:
    config = ContextConfig(n_seq_max=64, seq_len=2048, max_cached=max_cached, compact_slots=compact)
    questions = [e.problem.question for e in load("gsm8k", limit=problems)]
    with LlamaCppGenerator.from_model(model, config) as gen:

        def work(i: int) -> None:
            for r in range(rounds):
                params = SamplingParams(
                    n=n, max_tokens=tokens, temperature=0.7, top_k=40, top_p=0.95, seed=100 * i + r
                )
                gen.generate([Prompt.user(questions[i], system=MATH_COT_SYSTEM_PROMPT)], params)

        with ThreadPoolExecutor(problems) as pool:
            list(pool.map(work, range(problems)))
        s = gen.engine.stats
        return {
            "compact_slots": compact,
            "max_cached": max_cached,
            "decode_tok_s": round(s.decoded_tokens / s.step_seconds, 1),
            "passes_per_step": round(s.id_runs / s.decode_steps, 2),
            "slot_moves": s.slot_moves,
            "decoded_tokens": s.decoded_tokens,
            "decode_steps": s.decode_steps,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--max-cached",
        default="",
        help="Comma-separated max_cached values to compare, all with compaction on (default: compaction "
        "on against off, max_cached 1).",
    )
    a = ap.parse_args()
    on_off = [(True, 1), (False, 1)]
    modes = [(True, int(m)) for m in a.max_cached.split(",")] if a.max_cached else on_off
    rows = [run(a.model, compact, a.problems, a.rounds, a.n, a.tokens, m) for compact, m in modes]
    out = {
        "model": a.model,
        "problems": a.problems,
        "rounds": a.rounds,
        "n": a.n,
        "tokens": a.tokens,
        "rows": rows,
    }
    text = json.dumps(out)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
