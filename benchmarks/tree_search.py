"""Tree search (beam search, DVTS, MCTS) against self-consistency at a matched token budget, and what the
prefix cache saves them.

    python benchmarks/tree_search.py --dataset gsm8k --limit 30 --out benchmarks/results/tree30_cacheaware.jsonl
    python benchmarks/tree_search.py --dataset game24 --offset 900 --limit 20 \
        --configs cot_greedy,beam4 --out benchmarks/results/game24_901_920.jsonl
    python benchmarks/tree_search.py ... --report          # summarise what --out holds

Every configuration solves each problem under the same ``Budget(tokens=B)`` (``--budget-tokens``; tokens =
prompt tokens computed + tokens generated, policy and PRM together, cache hits free), so accuracy is
compared at matched compute; self-consistency draws as many samples as B buys. The PRM is the policy
model judging its own steps (``llm_judge_prm``), the only judge this machine runs.

Prefix cache: each row records prompt tokens computed and served from the cache, and ``nocache_prompt_tokens``,
what an engine without a prefix cache would have computed for the same calls: every prompt of every call in
full, once per request (n samples of one prompt still share one prefill, as any engine with native n does,
so forked samples are not counted as cache savings). ``cache_saving`` in the report is
nocache_prompt_tokens / computed.

Rows are appended to ``--out`` as each problem finishes, so an interrupted run resumes where it stopped.
The answer key is read only here, after a strategy returned.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gsm8k_strategies import append_rows, done_rows

from ttscale import Budget, Prompt, SamplingParams, solve
from ttscale.answers import is_correct
from ttscale.backends.base import PrefixHold
from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator
from ttscale.evals.datasets import Example, dataset_kind, load
from ttscale.strategies import build_strategy
from ttscale.types import Completion

SEARCH = {"max_step_tokens": "128", "seed": "0"}
CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "cot_greedy": ("cot", {}),
    "sc": ("self_consistency", {"n": "64", "seed": "0"}),
    "beam": ("beam_search", {"n": "8", "beam_width": "2", "iterations": "12", **SEARCH}),
    "dvts": ("dvts", {"n": "8", "beam_width": "2", "iterations": "12", **SEARCH}),
    # n=8 spends ~900 tokens a step, so a 3000-token budget ends it after 3 steps, before most GSM8K
    # solutions finish; n=4 (2 beams / 2 subtrees of 2 proposals) reaches about twice as deep
    "beam4": ("beam_search", {"n": "4", "beam_width": "2", "iterations": "12", **SEARCH}),
    "dvts4": ("dvts", {"n": "4", "beam_width": "2", "iterations": "12", **SEARCH}),
    "mcts": ("mcts", {"iterations": "24", "k": "3", "rollout_max_tokens": "384", **SEARCH}),
}


# problems in flight per configuration: MCTS and CoT keep few sequences per problem alive, so more of them
# run together to keep the engine's decode batches large
CONCURRENCY = {"cot_greedy": 20, "sc": 12, "beam": 8, "dvts": 8, "beam4": 12, "dvts4": 12, "mcts": 16}


class PrefillCounter:
    """The generator, passed through, adding up the prompt tokens a cache-less engine would compute."""

    def __init__(self, gen: LlamaCppGenerator) -> None:
        self.gen = gen
        self.tokens = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gen, name)

    def _count(self, prompts: Sequence[Prompt], n: int) -> None:
        parts = -(-n // self.gen._chunk())  # requests per prompt: each prefills the prompt once
        self.tokens += parts * sum(self.gen.count_prompt_tokens(prompts))

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self._count(prompts, params.n)
        return self.gen.generate(prompts, params)

    def generate_held(
        self, prompts: Sequence[Prompt], params: SamplingParams, hold: PrefixHold
    ) -> list[list[Completion]]:
        self._count(prompts, params.n)
        return self.gen.generate_held(prompts, params, hold)


def run_one(gen: LlamaCppGenerator, config: str, ex: Example, budget_tokens: int) -> dict[str, Any]:
    name, params = CONFIGS[config]
    t0 = time.perf_counter()
    counter = PrefillCounter(gen)
    result = solve(
        ex.problem, build_strategy(name, params), generator=counter, budget=Budget(tokens=budget_tokens)
    )
    u = result.usage.total
    kind = ex.problem.answer_kind
    nodes = sum(1 for e in result.trace if e.kind == "node")
    return {
        "config": config,
        "id": ex.problem.id,
        "gold": ex.answer,
        "answer": result.answer,
        "correct": is_correct(result.answer, ex.answer, kind, problem_metadata=ex.problem.metadata),
        "prompt_tokens": u.prompt_tokens,
        "cached_prompt_tokens": u.cached_prompt_tokens,
        "nocache_prompt_tokens": counter.tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "flops": u.flops,
        "nodes": nodes,
        "samples": sum(1 for e in result.trace if e.kind == "sample"),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def run_config(
    gen: LlamaCppGenerator, config: str, examples: list[Example], out: Path, args: argparse.Namespace
) -> None:
    width = args.concurrency or CONCURRENCY.get(config, 6)
    solve_row = lambda ex: run_one(gen, config, ex, args.budget_tokens)  # noqa: E731
    append_rows(config, examples, out, width, solve_row, "total_tokens")


def report(out: Path) -> dict[str, Any]:
    by_config: dict[str, list[dict[str, Any]]] = {}
    for (config, _), r in done_rows(out).items():
        by_config.setdefault(config, []).append(r)
    table: dict[str, Any] = {}
    for config, rs in by_config.items():
        n = len(rs)
        computed = sum(r["prompt_tokens"] for r in rs)
        cached = sum(r["cached_prompt_tokens"] for r in rs)
        nocache = sum(r.get("nocache_prompt_tokens", 0) for r in rs)
        table[config] = {
            "n": n,
            "accuracy": round(sum(bool(r["correct"]) for r in rs) / n, 3),
            "total_tokens_per_problem": round(sum(r["total_tokens"] for r in rs) / n, 1),
            "completion_tokens_per_problem": round(sum(r["completion_tokens"] for r in rs) / n, 1),
            "flops_per_problem": float(f"{sum(r['flops'] for r in rs) / n:.4g}"),
            "prompt_tokens_computed": computed,
            "prompt_tokens_cached": cached,
            "prompt_tokens_without_cache": nocache or None,
            "cache_saving": round(nocache / computed, 2) if computed and nocache else None,
            "seconds_per_problem": round(sum(r["seconds"] for r in rs) / n, 1),
        }
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--configs", default="sc,beam4,dvts4,mcts,beam")
    ap.add_argument("--budget-tokens", type=int, default=3000, help="Tokens per problem, every config.")
    ap.add_argument("--concurrency", type=int, default=0, help="Problems in flight (default: per config).")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/tree30_cacheaware.jsonl"))
    ap.add_argument(
        "--max-cached",
        type=int,
        default=16,
        help="Finished sequences kept as prefixes (16 made the committed results; prefixes no pending call "
        "was promised are evicted beyond it, so many problems in flight recompute some).",
    )
    ap.add_argument("--report", action="store_true", help="Only summarise what --out holds.")
    args = ap.parse_args()
    if not args.report:
        examples = load(args.dataset, limit=args.limit, offset=args.offset)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # step-wise search continues its latest steps: keep finished sequences as prefixes (LRU). A fresh
        # engine per configuration, so no configuration finds another's prompts in the cache.
        config = ContextConfig(n_seq_max=64, seq_len=2048, max_cached=args.max_cached)
        for name in args.configs.split(","):
            with LlamaCppGenerator.from_model(args.model, config) as gen:
                run_config(gen, name, examples, args.out, args)
    # --report alone summarises a file whose settings it does not know: print only what the file holds
    setting = (
        {}
        if args.report
        else {
            "model": args.model,
            "dataset": args.dataset,
            "kind": dataset_kind(args.dataset),
            "offset": args.offset,
            "limit": args.limit,
            "budget_tokens": args.budget_tokens,
        }
    )
    summary = setting | {"out": str(args.out), "results": report(args.out)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
