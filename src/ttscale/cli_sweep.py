"""``ttscale sweep`` (accuracy against compute for one strategy) and ``ttscale compare`` (a small model with
test-time compute against a large one without, at matched FLOPs, per difficulty bin).

Both are made of ordinary evaluation runs in the run store, so they resume like ``ttscale eval`` and
``ttscale report`` can draw them. A run whose config (dataset slice, model, strategy, parameters, seed,
budget, backend) matches one already in the store is reused: finished, it costs nothing; interrupted, it is
resumed. Sampling strategies (:data:`~ttscale.evals.analysis.SUBSAMPLE_RULES`) run once at the largest
budget and the smaller ones are subsampled; other strategies run once per budget value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli import Backend, _errors, _stdout, parse_params
from .cli_eval import DrawsOpt, ExecutorKind, SlotsOpt, StoreOpt, _execute, _plan, _Where, same_draws
from .errors import ConfigError
from .evals import datasets
from .evals.analysis import (
    BUDGET_KNOBS,
    SUBSAMPLE_RULES,
    CurvePoint,
    accuracy_by_bin,
    check_bin_method,
    flops_matched,
    oracle_bins,
    predicted_bins,
    run_point,
    sample_curve,
)
from .evals.records import RunInfo
from .evals.runner import EvalConfig
from .evals.store import RunStore

Opt = typer.Option


def parse_budgets(text: str) -> list[int]:
    """``"1,2,4"`` to ``[1, 2, 4]`` (sorted, distinct, each >= 1)."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"--n expects comma-separated integers such as 1,2,4,8, got {text!r}") from None
    if not values or values[0] < 1:
        raise ConfigError(f"--n expects integers >= 1, got {text!r}")
    return values


def _same_run(config: Mapping[str, Any], wanted: EvalConfig) -> bool:
    want = wanted.to_dict()
    return all(config.get(k) == want[k] for k in want if k != "concurrency")


class Runner:
    """Creates (or reuses, or resumes) the runs a sweep needs, all on one store."""

    def __init__(self, store: RunStore, common: Mapping[str, Any], where: _Where) -> None:
        self.store = store
        self.common = dict(common)
        self.where = where

    def find(self, model: str, strategy: str, params: Mapping[str, str]) -> tuple[RunInfo | None, EvalConfig]:
        """The latest run of this config in the store, if any (without running anything), and the config.

        A run made with a draw file matches only a runner with the same file, and one made without only a
        runner without: a judge meant to score a recorded draw must not reuse a run that drew its own
        samples, or scored another draw.
        """
        given = self.common | {"model": model, "strategy": strategy, "params": dict(params)}
        config, _ = _plan(self.store, None, given)
        found = [
            r for r in self.store.runs()
            if _same_run(r.config, config) and same_draws(r.versions.get("draws"), self.where.draws)
        ]  # fmt: skip
        return (found[-1] if found else None), config

    def run(self, model: str, strategy: str, params: Mapping[str, str]) -> tuple[RunInfo, EvalConfig]:
        run, config = self.find(model, strategy, params)
        if run is not None:
            config = EvalConfig.from_dict(run.config)
        examples = datasets.load_slice(config.dataset, limit=config.limit, offset=config.offset)
        run_id = _execute(self.store, config, run, examples, self.where)
        return self.store.run(run_id), config


def curve(runner: Runner, model: str, strategy: str, params: Mapping[str, str], ns: Sequence[int],
          knob: str | None) -> tuple[list[CurvePoint], list[RunInfo]]:  # fmt: skip
    """Points at every budget in ``ns`` (see the module docstring), and the runs behind them."""
    knob = knob or BUDGET_KNOBS.get(strategy)
    if knob is None:
        raise ConfigError(f"{strategy} has no budget knob; name the parameter to vary with --knob")
    if strategy in SUBSAMPLE_RULES and knob == "n":
        info, config = runner.run(model, strategy, {**params, "n": str(max(ns))})
        problems = runner.store.problems(info.run_id)
        budgeted_n = max(ns) if config.budget is not None else None
        return sample_curve(problems, strategy, config.params, ns, budgeted_n=budgeted_n), [info]
    points, infos = [], []
    for value in ns:
        info, _ = runner.run(model, strategy, {**params, knob: str(value)})
        points.append(run_point(runner.store.problems(info.run_id), f"{strategy} {knob}={value}", value))
        infos.append(info)
    return points, infos


def _points_table(title: str, points: Sequence[CurvePoint]) -> Table:
    table = Table("budget", "accuracy", "95% CI", "tokens/problem", "FLOPs/problem", title=title)
    for p in points:
        lo, hi = p.accuracy_ci
        table.add_row(str(p.budget), f"{p.accuracy:.3f}", f"{lo:.3f}-{hi:.3f}", f"{p.tokens_per_problem:.1f}",
                      f"{p.flops_per_problem:.3g}")  # fmt: skip
    return table


Common = dict[str, Any]


def _common(dataset: str, limit: int | None, offset: int | None, seed: int | None, concurrency: int | None,
            budget_tokens: int | None, backend: Backend | None, slots: int | None = None) -> Common:  # fmt: skip
    return dict(dataset=dataset, limit=limit, offset=offset, seed=seed, concurrency=concurrency,
                budget_tokens=budget_tokens, budget_flops=None,
                backend=backend.value if backend else None, slots=slots)  # fmt: skip


DatasetOpt = Annotated[str, Opt("--dataset", "-d", help="Dataset name or jsonl:PATH.")]
LimitOpt = Annotated[int | None, Opt(help="Problems to run (default: all).")]
OffsetOpt = Annotated[int | None, Opt(help="Problems to skip first (default 0).")]
SeedOpt = Annotated[int | None, Opt(help="Run seed (default 0).")]
ConcOpt = Annotated[int | None, Opt("--concurrency", "-c", help="Problems at once (default 1).")]
ParamOpt = Annotated[list[str] | None, Opt("--param", "-p", help="Strategy parameter key=value.")]
JsonOpt = Annotated[bool, Opt("--json", help="Print one JSON object to stdout.")]
BackendOpt = Annotated[Backend | None, Opt(help="Generation backend (default llamacpp).")]
ScriptOpt = Annotated[Path | None, Opt(help="JSON list of responses, for --backend scripted.")]


def sweep_command(
    dataset: DatasetOpt,
    strategy: Annotated[str, Opt("--strategy", "-s", help="Strategy name.")],
    n: Annotated[str, Opt("--n", help="Budgets, e.g. 1,2,4,8,16,32 (samples, or the --knob values).")],
    model: Annotated[str | None, Opt("--model", "-m", help="Model name or GGUF path.")] = None,
    knob: Annotated[str | None, Opt(help="Parameter the budgets set (default: the strategy's own).")] = None,
    param: ParamOpt = None,
    limit: LimitOpt = None,
    offset: OffsetOpt = None,
    seed: SeedOpt = None,
    concurrency: ConcOpt = None,
    budget_tokens: Annotated[int | None, Opt(help="Most tokens per problem.")] = None,
    slots: SlotsOpt = None,
    draws: DrawsOpt = None,
    store: StoreOpt = None,
    json_output: JsonOpt = False,
    backend: BackendOpt = None,
    script: ScriptOpt = None,
) -> None:
    """Accuracy against FLOPs for one strategy over budgets (sampling strategies: one run, subsampled)."""
    with _errors():
        ns = parse_budgets(n)
        common = _common(dataset, limit, offset, seed, concurrency, budget_tokens, backend, slots)
        with RunStore.open(store) as runs:
            runner = Runner(runs, common, _Where(ExecutorKind.local, None, script, 0.0, draws))
            name = model or _default_model(backend)
            points, infos = curve(runner, name, strategy, parse_params(param or []), ns, knob)
        if json_output:
            out = {"model": name, "strategy": strategy, "dataset": dataset,
                   "run_ids": [i.run_id for i in infos], "points": [p.to_dict() for p in points]}  # fmt: skip
            typer.echo(json.dumps(out))
            return
        _stdout().print(_points_table(f"{strategy} on {name} ({dataset})", points))
        _stdout().print("runs: " + ", ".join(i.run_id for i in infos))


def _default_model(backend: Backend | None) -> str:
    if backend is Backend.scripted:
        return "scripted"
    from .models import DEFAULT_MODEL

    return DEFAULT_MODEL


def compare_command(
    small: Annotated[str, Opt("--small", help="The small model, given test-time compute.")],
    large: Annotated[str, Opt("--large", help="The large model, answering greedily (cot).")],
    dataset: DatasetOpt = "gsm8k",
    strategy: Annotated[str, Opt("--strategy", "-s", help="The small model's sampling strategy.")] = (
        "self_consistency"
    ),
    n: Annotated[str, Opt("--n", help="The small model's budgets (samples).")] = "1,2,4,8,16",
    param: ParamOpt = None,
    limit: LimitOpt = None,
    offset: OffsetOpt = None,
    seed: SeedOpt = None,
    concurrency: ConcOpt = None,
    bins: Annotated[str, Opt(help="Difficulty: oracle (the small model's pass@1) or predicted.")] = "oracle",
    slots: SlotsOpt = None,
    draws: DrawsOpt = None,
    store: StoreOpt = None,
    json_output: JsonOpt = False,
    backend: BackendOpt = None,
    script: ScriptOpt = None,
) -> None:
    """The large model greedy against the small model at the budget whose FLOPs match, per difficulty bin."""
    with _errors():
        check_bin_method(bins)
        ns = parse_budgets(n)
        common = _common(dataset, limit, offset, seed, concurrency, None, backend, slots)
        with RunStore.open(store) as runs:
            runner = Runner(runs, common, _Where(ExecutorKind.local, None, script, 0.0, draws))
            greedy_info, _ = runner.run(large, "cot", {})
            greedy = run_point(runs.problems(greedy_info.run_id), f"{large} cot", 0)
            points, infos = curve(runner, small, strategy, parse_params(param or []), ns, None)
            sampled = runs.problems(infos[-1].run_id)
        if bins == "oracle":
            by_bin, ranked = oracle_bins(sampled), f"{small}'s pass@1 over its samples"
        else:
            by_bin, ranked = predicted_bins(sampled)
        matched = flops_matched(points, greedy.flops_per_problem)
        summary = compare_summary(greedy, points, matched, by_bin)
        summary |= {"small": small, "large": large, "dataset": dataset, "bins": bins, "bins_by": ranked,
                    "run_ids": [greedy_info.run_id, *(i.run_id for i in infos)]}  # fmt: skip
        if json_output:
            typer.echo(json.dumps(summary))
            return
        _print_compare(summary)


def compare_summary(
    greedy: CurvePoint, points: Sequence[CurvePoint], matched: CurvePoint | None, bins: Mapping[str, int]
) -> dict[str, Any]:
    """The FLOPs-matched table: overall and per bin, greedy against the matched point (and the largest)."""
    top = points[-1]
    rows = []
    for b in sorted(set(bins.values())):
        g = accuracy_by_bin(greedy, bins).get(b, (0.0, 0))
        m = accuracy_by_bin(matched, bins).get(b, (0.0, 0)) if matched else None
        t = accuracy_by_bin(top, bins).get(b, (0.0, 0))
        rows.append({"bin": b, "problems": g[1], "large_greedy": g[0],
                     "small_matched": m[0] if m else None, "small_largest": t[0]})  # fmt: skip
    return {
        "large_greedy": greedy.to_dict(),
        "small_points": [p.to_dict() for p in points],
        "small_matched": matched.to_dict() if matched else None,
        "per_bin": rows,
        "note": None
        if matched
        else "even one sample of the small model costs more FLOPs than the large greedy",
    }


def _print_compare(s: Mapping[str, Any]) -> None:
    g, m = s["large_greedy"], s["small_matched"]
    out = _stdout()
    out.print(
        f"large {s['large']} greedy: accuracy {g['accuracy']:.3f}, {g['flops_per_problem']:.3g} FLOPs/problem"
    )
    if m:
        out.print(f"small {s['small']} at budget {m['budget']}: accuracy {m['accuracy']:.3f}, "
                  f"{m['flops_per_problem']:.3g} FLOPs/problem (the largest budget within the large model's FLOPs)")  # fmt: skip
    else:
        out.print(s["note"])
    table = Table("bin", "problems", "large greedy", "small matched", "small largest budget",
                  title=f"accuracy per difficulty bin ({s['bins']}: {s['bins_by']}; 1 = easiest)")  # fmt: skip
    for r in s["per_bin"]:
        matched = "-" if r["small_matched"] is None else f"{r['small_matched']:.3f}"
        table.add_row(
            str(r["bin"]),
            str(r["problems"]),
            f"{r['large_greedy']:.3f}",
            matched,
            f"{r['small_largest']:.3f}",
        )
    out.print(table)
