"""The README's results table: every registered strategy on GSM8K and the MATH-500 development half.

Every figure is an ordinary ``ttscale eval`` run in one run store, so this script resumes: a run whose config
(dataset slice, model, strategy, parameters, seed, budget) is already in the store is reused when finished
and resumed when interrupted (``ttscale sweep`` and ``ttscale compare`` share that rule). Sampling
strategies run once at their largest n; the smaller n are subsampled from the same samples.

    python benchmarks/publish.py                       # run what is missing, in PLAN order, then export
    python benchmarks/publish.py --only gsm8k/cot,gsm8k/sc
    python benchmarks/publish.py --export-only         # rewrite the table from the store, run nothing
    python benchmarks/publish.py --status              # what each entry has done, and its wall hours

Export writes ``benchmarks/results/publish.json`` (every point, every run id, how many problems each run
has done) and the table between the ``results`` markers of README.md. A run still in progress is shown
with its problem count, so a partial figure is never passed off as a finished one. Each row names the
``ttscale`` command that reproduces it on its own (into the default store).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ttscale.cli  # noqa: F401  (mounts the eval commands; importing cli_eval first is circular)
from ttscale.cli_eval import ExecutorKind, _Where
from ttscale.cli_sweep import Runner, _common, compare_summary, curve
from ttscale.evals.analysis import CurvePoint, Series, flops_matched, oracle_bins, run_point, sample_curve
from ttscale.evals.records import RunInfo
from ttscale.evals.report import plot_scaling
from ttscale.evals.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
SMALL = "qwen2.5-coder-0.5b-instruct"
LARGE = "qwen2.5-coder-1.5b-instruct"
LIMITS = {"gsm8k": 100, "math500": 50}
SEARCH_BUDGET = 3000  # tokens per problem for the tree searches, as in benchmarks/tree_search.py
PLOTS = "docs/results"
"""Where the scaling plots go, relative to the README that shows them."""
DRAWS = "draws.sqlite"
"""The draw file the best-of-n rows share (next to the store): the judge scores the samples self-certainty
drew (``--draws``), so both rows select from the very same samples and the judge run decodes only verdicts."""


@dataclass(frozen=True)
class Entry:
    """One row group of the table: a run (or a sampled run and its subsampled points)."""

    key: str
    """``dataset/name``, for ``--only``."""
    dataset: str
    model: str
    strategy: str
    params: dict[str, str] = field(default_factory=dict)
    ns: tuple[int, ...] = ()
    """Sample counts to derive from one run at ``max(ns)`` (sampling strategies); empty: one point."""
    budget_tokens: int | None = None
    concurrency: int = 8
    """Problems in flight: more for single-sample strategies, fewer for wide ones (one engine batch)."""
    slots: int | None = None
    """Engine sequence slots (None: the default 32); the searches get room to keep every problem's
    latest round cached."""
    draws: bool = False
    """Record the samples in (and replay them from) the shared draw file :data:`DRAWS`."""

    def run_params(self) -> dict[str, str]:
        return {**self.params, "n": str(max(self.ns))} if self.ns else dict(self.params)

    def command(self) -> str:
        """The ttscale command that reproduces this row."""
        limit = LIMITS[self.dataset]
        head = f"ttscale {'sweep' if self.ns else 'eval'} --dataset {self.dataset} --limit {limit}"
        parts = [head, f"-m {self.model}" if self.model != SMALL else "", f"-s {self.strategy}"]
        parts += [f"-p {k}={v}" for k, v in self.params.items()]
        if self.ns:
            parts.append("--n " + ",".join(map(str, self.ns)))
        if self.budget_tokens:
            parts.append(f"--budget-tokens {self.budget_tokens}")
        if self.slots:
            parts.append(f"--slots {self.slots}")
        if self.draws:
            parts.append(f"--draws {DRAWS}")
        parts.append(f"-c {self.concurrency}")
        return " ".join(p for p in parts if p)


def _plan_for(dataset: str) -> list[Entry]:
    d = dataset
    # 8 problems in flight, 4 live sequences each at most: 96 slots leave 64 for the prefix cache, enough
    # for every problem's last round (its candidates and their judge prompts)
    search = dict(budget_tokens=SEARCH_BUDGET, concurrency=8, slots=96)
    return [
        Entry(f"{d}/cot", d, SMALL, "cot", concurrency=16),
        Entry(f"{d}/cot_large", d, LARGE, "cot", concurrency=8),
        Entry(f"{d}/sc", d, SMALL, "self_consistency", ns=(1, 2, 4, 8, 16), concurrency=4),
        Entry(f"{d}/direct", d, SMALL, "direct", concurrency=16),
        Entry(f"{d}/tip", d, SMALL, "tip", concurrency=16),
        Entry(
            f"{d}/budget_forcing", d, SMALL, "budget_forcing", {"max_thinking_tokens": "512"}, concurrency=16
        ),
        *(
            Entry(
                f"{d}/best_of_n_{key}",
                d,
                SMALL,
                "best_of_n",
                params,
                ns=(1, 2, 4, 8),
                concurrency=6,
                draws=draws,
            )
            # self-certainty selects as Kang et al. 2025 do: the single most certain sample, and their Borda
            # vote, which replays the same draw (summing its scores per answer would be close to a plain
            # majority vote); the judges use best_of_n's default, Snell et al.'s weighted vote. The
            # follow-up judge reads each solution from the prefix cache the draw left: a replayed draw
            # leaves none, so that row draws its own samples
            for key, params, draws in (
                ("certainty", {"scorer": "self_certainty", "selection": "naive"}, True),
                ("certainty_borda", {"scorer": "self_certainty", "selection": "borda"}, True),
                ("judge", {"scorer": "llm_judge"}, True),
                ("followup", {"scorer": "followup_judge"}, False),
            )
        ),
        Entry(f"{d}/deepconf", d, SMALL, "deepconf", {"mode": "online", "n": "16"}, concurrency=8),
        Entry(f"{d}/adaptive", d, SMALL, "adaptive_consistency", {"max_n": "16"}, concurrency=16),
        Entry(f"{d}/beam", d, SMALL, "beam_search", {"n": "4", "beam_width": "2"}, **search),
        Entry(f"{d}/dvts", d, SMALL, "dvts", {"n": "4", "beam_width": "2"}, **search),
        Entry(f"{d}/mcts", d, SMALL, "mcts", **search),
    ]


# Run order: GSM8K's core rows first (they make the FLOPs-matched comparison), then MATH-500's, then the
# rest, with best-of-n last (self-certainty first: its draw carries the logprobs it reads), and the
# follow-up judge rows (beyond what issue 5 asks for) last of all. The table shows rows in _ALL's order.
_ALL = _plan_for("gsm8k") + _plan_for("math500")
_FIRST = ("gsm8k/cot", "gsm8k/cot_large", "gsm8k/sc", "math500/cot", "math500/cot_large", "math500/sc")
_LAST = tuple(
    f"{d}/best_of_n_{k}" for k in ("certainty", "certainty_borda", "judge", "followup") for d in LIMITS
)
PLAN = (
    [e for k in _FIRST for e in _ALL if e.key == k]
    + [e for e in _ALL if e.key not in _FIRST + _LAST]
    + [e for k in _LAST for e in _ALL if e.key == k]
)


def _runner(store: RunStore, entry: Entry) -> Runner:
    common = _common(entry.dataset, LIMITS[entry.dataset], None, None, entry.concurrency, entry.budget_tokens,
                     None, entry.slots)  # fmt: skip
    draws = store.path.parent / DRAWS if entry.draws else None
    return Runner(store, common, _Where(ExecutorKind.local, None, None, 0.0, draws))


def _find(store: RunStore, entry: Entry) -> RunInfo | None:
    """The store's run for this entry, finished or not, without running anything."""
    run, _ = _runner(store, entry).find(entry.model, entry.strategy, entry.run_params())
    return run  # a row with draws takes only a run that replayed them (Runner.find), as running it does


def execute(store: RunStore, entry: Entry) -> None:
    runner = _runner(store, entry)
    if entry.ns:
        curve(runner, entry.model, entry.strategy, entry.params, entry.ns, "n")
    else:
        runner.run(entry.model, entry.strategy, entry.params)


def points(store: RunStore, entry: Entry, run: RunInfo) -> list[CurvePoint]:
    problems = store.problems(run.run_id)
    if not problems:
        return []
    if entry.ns:
        return sample_curve(problems, entry.strategy, entry.run_params(), entry.ns)
    return [run_point(problems, entry.key, 0)]


def _label(entry: Entry, point: CurvePoint) -> str:
    size = "1.5B" if entry.model == LARGE else "0.5B"
    name = entry.strategy + "".join(f" {k}={v}" for k, v in entry.params.items())
    if entry.ns:
        name += f" n={point.budget}"
    if entry.budget_tokens:
        name += f" ({entry.budget_tokens} tok budget)"
    return f"{size} {name}"


def export(store: RunStore, out: Path, readme: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[Series]] = {d: [] for d in LIMITS}
    for entry in _ALL:
        run = _find(store, entry)
        if run is None:
            continue
        found = points(store, entry, run)
        for p in found:
            rows.append(p.to_dict() | {"key": entry.key, "dataset": entry.dataset, "label": _label(entry, p),
                                       "run_id": run.run_id, "done": run.n_done, "planned": run.n_planned,
                                       "command": entry.command()})  # fmt: skip
        if found and run.n_done >= run.n_planned:  # a run in progress is not plotted
            name = _label(entry, found[0]).removesuffix(f" n={found[0].budget}")
            curves[entry.dataset].append(
                Series(entry.model, entry.strategy, name, tuple(found), (run.run_id,), entry.dataset)
            )
    summary: dict[str, Any] = {"rows": rows, "compare": {}, "plots": {}}
    for dataset in LIMITS:
        summary["compare"][dataset] = _compare(store, dataset)
        if curves[dataset]:
            summary["plots"][dataset] = _plot(
                curves[dataset], readme.parent / PLOTS / f"scaling_{dataset}.png"
            )
    out.write_text(json.dumps(summary, indent=1) + "\n")
    _write_readme(readme, summary)
    return summary


def _plot(series: list[Series], path: Path) -> str:
    """Accuracy against FLOPs (the report's figure) as a PNG next to the README; its path from there."""
    uri = plot_scaling(series)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    return f"{PLOTS}/{path.name}"


def _compare(store: RunStore, dataset: str) -> dict[str, Any] | None:
    """``ttscale compare``'s summary from the same runs, once both are finished."""
    large = next(e for e in PLAN if e.key == f"{dataset}/cot_large")
    small = next(e for e in PLAN if e.key == f"{dataset}/sc")
    large_run, small_run = _find(store, large), _find(store, small)
    if not large_run or not small_run or large_run.status != "complete" or small_run.status != "complete":
        return None
    greedy = run_point(store.problems(large_run.run_id), f"{LARGE} cot", 0)
    sampled = store.problems(small_run.run_id)
    curve_points = sample_curve(sampled, small.strategy, small.run_params(), small.ns)
    matched = flops_matched(curve_points, greedy.flops_per_problem)
    summary = compare_summary(greedy, curve_points, matched, oracle_bins(sampled))
    limit = LIMITS[dataset]
    return summary | {"command": f"ttscale compare --small {SMALL} --large {LARGE} --dataset {dataset} "
                                 f"--limit {limit}"}  # fmt: skip


def _markdown(summary: dict[str, Any]) -> str:
    lines = []
    titles = {"gsm8k": f"GSM8K test, first {LIMITS['gsm8k']}",
              "math500": f"MATH-500 development half, first {LIMITS['math500']}"}  # fmt: skip
    for dataset, title in titles.items():
        rows = [r for r in summary["rows"] if r["dataset"] == dataset]
        if not rows:
            continue
        lines += [f"**{title}** (qwen2.5-coder Q4_K_M, seed 0)", "",
                  "| model, strategy | problems | accuracy (95% CI) | tokens/problem | FLOPs/problem |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            lo, hi = r["accuracy_ci95"]
            done = (
                f"{r['done']}"
                if r["done"] >= r["planned"]
                else f"{r['done']} of {r['planned']} (in progress)"
            )
            lines.append(f"| {r['label']} | {done} | {r['accuracy']:.3f} ({lo:.2f}-{hi:.2f}) "
                         f"| {r['tokens_per_problem']:,.0f} | {_flops(r['flops_per_problem'])} |")  # fmt: skip
        lines.append("")
        plot = summary.get("plots", {}).get(dataset)
        if plot:
            lines += [f"![{title}: accuracy against FLOPs per problem, finished runs]({plot})", ""]
        cmp = summary["compare"].get(dataset)
        if cmp:
            lines += _compare_markdown(cmp)
    lines += ["Each row's command (`ttscale eval`, or `ttscale sweep` for subsampled n):", "", "```bash"]
    seen = set()
    for r in summary["rows"]:
        if r["command"] not in seen:
            seen.add(r["command"])
            lines.append(r["command"])
    lines += ["```", ""]
    return "\n".join(lines)


def _flops(x: float) -> str:
    return f"{x:.2e}".replace("e+", "e")


def _compare_markdown(cmp: dict[str, Any]) -> list[str]:
    g, m = cmp["large_greedy"], cmp["small_matched"]
    lines = [f"FLOPs-matched (`{cmp['command']}`): 1.5B greedy {g['accuracy']:.3f} at "
             f"{_flops(g['flops_per_problem'])} FLOPs/problem; "]  # fmt: skip
    if m:
        lines[0] += (f"0.5B self-consistency n={m['budget']} (the most samples within those FLOPs) "
                     f"{m['accuracy']:.3f} at {_flops(m['flops_per_problem'])}.")  # fmt: skip
    else:
        lines[0] += cmp["note"] + "."
    lines += ["", "| difficulty bin (0.5B pass@1; 1 easiest) | problems | 1.5B greedy | 0.5B matched | 0.5B n=16 |",
              "|---|---|---|---|---|"]  # fmt: skip
    for r in cmp["per_bin"]:
        sm = "-" if r["small_matched"] is None else f"{r['small_matched']:.3f}"
        lines.append(
            f"| {r['bin']} | {r['problems']} | {r['large_greedy']:.3f} | {sm} | {r['small_largest']:.3f} |"
        )
    return lines + [""]


START, END = "<!-- results:start -->", "<!-- results:end -->"


def status(store: RunStore) -> str:
    """One line per plan entry, in run order: problems done and the wall hours its run has taken."""
    lines, hours = [], 0.0
    for entry in PLAN:
        run = _find(store, entry)
        if run is None:
            lines.append(f"{entry.key:32} not started")
            continue
        hours += run.wall_seconds / 3600
        lines.append(f"{entry.key:32} {run.n_done:>4}/{run.n_planned:<4} {run.wall_seconds / 3600:5.2f} h")
    return "\n".join([*lines, f"{'total so far':32} {'':9} {hours:5.2f} h"])


def _check_readme(readme: Path) -> str:
    """The README's text, if it has the markers the table goes between (checked before any compute)."""
    try:
        text = readme.read_text()
    except OSError as e:
        raise SystemExit(f"cannot read --readme {readme} ({e.strerror}): give a README with the markers "
                         f"{START} and {END} (a copy of the project's README will do)") from e  # fmt: skip
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} markers for the table")
    return text


def _write_readme(readme: Path, summary: dict[str, Any]) -> None:
    text = _check_readme(readme)
    body = f"{START}\n{_markdown(summary)}{END}"
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: body, text, flags=re.S))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=ROOT / "benchmarks" / "out" / "publish.sqlite",
                    help="Run store (kept out of git; the exported JSON is the record).")  # fmt: skip
    ap.add_argument(
        "--only", default="", help="Comma-separated keys, e.g. gsm8k/cot,gsm8k/sc (default: all)."
    )
    ap.add_argument("--export-only", action="store_true", help="Write the table from the store; run nothing.")
    ap.add_argument(
        "--status",
        action="store_true",
        help="Print each plan entry's progress and hours so far; run nothing.",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "publish.json")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument(
        "--limit", type=int, default=0, help="Problems per dataset instead of LIMITS (smoke tests)."
    )
    a = ap.parse_args(argv)
    if a.limit:
        defaults = {"--store": ap.get_default("store"), "--out": ap.get_default("out"),
                    "--readme": ap.get_default("readme")}  # fmt: skip
        kept = [flag for flag, path in defaults.items() if getattr(a, flag[2:]).resolve() == path.resolve()]
        if kept:  # a smoke test must not write its few problems over the published store and table
            ap.error(
                f"--limit is for smoke tests: give {', '.join(kept)} other paths than the published ones"
            )
        LIMITS.update(dict.fromkeys(LIMITS, a.limit))
    keys = [k for k in a.only.split(",") if k]
    unknown = set(keys) - {e.key for e in PLAN}
    if unknown:
        ap.error(f"unknown keys {sorted(unknown)}; known: {', '.join(e.key for e in PLAN)}")
    if a.status:
        with RunStore.open(a.store, write=False) as store:
            print(status(store))
        return 0
    _check_readme(a.readme)
    a.store.parent.mkdir(parents=True, exist_ok=True)
    with RunStore.open(a.store) as store:
        if not a.export_only:
            for entry in PLAN:
                if keys and entry.key not in keys:
                    continue
                print(f"== {entry.key}: {entry.command()}", file=sys.stderr, flush=True)
                execute(store, entry)
                export(store, a.out, a.readme)  # after every run, so a stop loses nothing shown
        export(store, a.out, a.readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
