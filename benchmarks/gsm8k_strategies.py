"""Accuracy, tokens and FLOPs of each test-time strategy on the first GSM8K test problems.

    python benchmarks/gsm8k_strategies.py --limit 50 --out benchmarks/results/gsm8k50.jsonl
    python benchmarks/gsm8k_strategies.py --limit 50 --out benchmarks/results/gsm8k50.jsonl --report

Every (configuration, problem) result is appended to ``--out`` as one JSON line as soon as it finishes, so
an interrupted run resumes where it stopped (rows already present are skipped). Problems of one
configuration run ``--concurrency`` at a time on one engine, so their samples decode in the same batches.

Self-consistency@8 is not run separately: it is the vote over the first 8 samples of each SC@16 run
(sample i uses seed + i in both, so these are the samples an SC@8 run with the same seed draws; subsampling
as in Hugging Face search-and-learn), with tokens and FLOPs of those 8 samples plus the shared prompt.
Budget forcing runs at four thinking budgets B: thinking is forced to end at B tokens and its early ends
are suppressed with "Wait" until B/2 (up to 8 times), so thinking lands between B/2 and B, as s1 controls it.
The answer key is read only here, after a strategy returned.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ttscale import Budget, solve
from ttscale.answers import group_answers, is_correct
from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator
from ttscale.compute import span_flops
from ttscale.evals.datasets import Example, load
from ttscale.strategies import build_strategy

CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "cot_greedy": ("cot", {}),
    "sc16": ("self_consistency", {"n": "16", "seed": "0"}),
    "adaptive16": ("adaptive_consistency", {"max_n": "16", "seed": "0"}),
    "deepconf_online16": ("deepconf", {"mode": "online", "n": "16", "seed": "0"}),
    "best_of_8_judge": ("best_of_n", {"n": "8", "scorer": "llm_judge", "seed": "0"}),
    "bf_think128": (
        "budget_forcing",
        {"max_thinking_tokens": "128", "min_thinking_tokens": "64", "max_waits": "8"},
    ),
    "bf_think256": (
        "budget_forcing",
        {"max_thinking_tokens": "256", "min_thinking_tokens": "128", "max_waits": "8"},
    ),
    "bf_think512": (
        "budget_forcing",
        {"max_thinking_tokens": "512", "min_thinking_tokens": "256", "max_waits": "8"},
    ),
    "bf_think1024": (
        "budget_forcing",
        {"max_thinking_tokens": "1024", "min_thinking_tokens": "512", "max_waits": "8"},
    ),
}


def done_rows(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[(r["config"], r["id"])] = r
    return rows


def run_one(gen: LlamaCppGenerator, config: str, ex: Example) -> dict[str, Any]:
    name, params = CONFIGS[config]
    strategy = build_strategy(name, params)
    t0 = time.perf_counter()
    result = solve(ex.problem, strategy, generator=gen, budget=Budget())
    u = result.usage.total
    samples = [e for e in result.to_dict()["trace"] if e["kind"] == "sample"]
    return {
        "config": config,
        "id": ex.problem.id,
        "gold": ex.answer,
        "answer": result.answer,
        "correct": is_correct(result.answer, ex.answer, "number"),
        "prompt_tokens": u.prompt_tokens,
        "cached_prompt_tokens": u.cached_prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "flops": u.flops,
        "seconds": round(time.perf_counter() - t0, 2),
        "samples": [{"answer": s.get("answer"), "tokens": s.get("tokens")} for s in samples],
    }


# problems in flight per configuration: enough live sequences to keep decode batches large (the engine's
# aggregate rate grows with the batch) within its 64 sequence slots
CONCURRENCY = {"sc16": 4, "adaptive16": 16, "deepconf_online16": 8, "best_of_8_judge": 6}


def run_config(
    gen: LlamaCppGenerator, config: str, examples: list[Example], out: Path, concurrency: int
) -> None:
    width = CONCURRENCY.get(config, concurrency)
    append_rows(config, examples, out, width, lambda ex: run_one(gen, config, ex), "completion_tokens")


def append_rows(
    config: str,
    examples: list[Example],
    out: Path,
    width: int,
    solve_row: Callable[[Example], dict[str, Any]],
    tokens_key: str,
) -> None:
    """Solve the problems ``out`` has no row for yet, ``width`` at a time, appending each row as it ends."""
    have = done_rows(out)
    todo = [ex for ex in examples if (config, ex.problem.id) not in have]
    lock = threading.Lock()

    def work(ex: Example) -> None:
        row = solve_row(ex)
        with lock, out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(
            f"{config} {ex.problem.id} answer={row['answer']!r} correct={row['correct']} "
            f"tokens={row[tokens_key]}",
            file=sys.stderr,
            flush=True,
        )

    with ThreadPoolExecutor(width) as pool:
        list(pool.map(work, todo))


def sc_subsample(row: dict[str, Any], k: int, info: Any) -> dict[str, Any]:
    """SC@k from the first k samples of an SC@n row: the same prompt computation, k samples' tokens."""
    n = len(row["samples"])
    length = (row["prompt_tokens"] + row["cached_prompt_tokens"]) // n  # each sample saw the whole prompt
    computed = row["prompt_tokens"]
    answers = [s["answer"] for s in row["samples"][:k]]
    groups = group_answers(answers, "number")
    answer = groups[0].answer if groups else None
    tokens = [s["tokens"] or 0 for s in row["samples"][:k]]
    flops = span_flops(info, length - computed, computed) + sum(span_flops(info, length, t) for t in tokens)
    return {
        "correct": is_correct(answer, row["gold"], "number"),
        "completion_tokens": sum(tokens),
        "prompt_tokens": computed,
        "flops": flops,
    }


def report(out: Path, model_info: Any) -> dict[str, Any]:
    rows = done_rows(out)
    table: dict[str, Any] = {}
    by_config: dict[str, list[dict[str, Any]]] = {}
    for (config, _), r in rows.items():
        by_config.setdefault(config, []).append(r)
    for config, rs in by_config.items():
        table[config] = summarise(rs)
        if config == "sc16":
            subs = [sc_subsample(r, 8, model_info) for r in rs]
            table["sc8 (first 8 of sc16)"] = summarise(subs)
    return table


def summarise(rs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rs)
    return {
        "n": n,
        "accuracy": round(sum(bool(r["correct"]) for r in rs) / n, 3),
        "completion_tokens_per_problem": round(sum(r["completion_tokens"] for r in rs) / n, 1),
        "prompt_tokens_per_problem": round(sum(r["prompt_tokens"] for r in rs) / n, 1),
        "flops_per_problem": float(f"{sum(r['flops'] for r in rs) / n:.4g}"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument(
        "--concurrency", type=int, default=16, help="Problems in flight (configs not in CONCURRENCY)."
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gsm8k50.jsonl"))
    ap.add_argument("--report", action="store_true", help="Only summarise what --out holds.")
    a = ap.parse_args()
    examples = load("gsm8k", limit=a.limit)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if not a.report:
        for config in a.configs.split(","):
            with open_engine(a.model, config) as gen:
                run_config(gen, config, examples, a.out, a.concurrency)
    with open_engine(a.model, "report") as gen:
        print(json.dumps({"model": a.model, "limit": a.limit, "results": report(a.out, gen.model)}))


def open_engine(model: str, config: str) -> LlamaCppGenerator:
    # Sampling configs keep one finished sequence: kept KV streams slow every later decode step, and
    # their prompts are reused through the forks anyway. Budget forcing continues each problem's own
    # thinking after every "Wait", so it keeps a finished sequence per problem in flight.
    keep = 32 if config.startswith("bf_") else 1
    return LlamaCppGenerator.from_model(model, ContextConfig(n_seq_max=64, seq_len=2048, max_cached=keep))


if __name__ == "__main__":
    main()
