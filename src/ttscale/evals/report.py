"""``ttscale report``: one self-contained HTML file summarising stored runs, with matplotlib plots.

Contents: a table of the runs (accuracy with its 95% interval, tokens and FLOPs per problem, latency);
accuracy against FLOPs per problem on a log axis, one plot per set of problems and one line per series
(:func:`~.analysis.series_of_runs`: sampling runs subsampled, other runs one point per budget; a series
with a run still in progress says so in its label); accuracy per difficulty bin (bins from the run
with the most samples per problem: by its pass@1, or with ``--bins predicted`` by what its first samples
say without the key); the FLOPs-matched table when runs of several models are
present (each greedy run of one model against the other models' series at the largest budget whose FLOPs
do not exceed it, overall and per bin); histograms of generated tokens per sample; and for each problem a
link to its trace, rendered by the trace viewer into a folder next to the report.

Plots are PNGs embedded as ``data:`` URIs, so the page needs no server and no network; trace pages are
separate files (a run of 500 problems would otherwise make one very large page). matplotlib is imported
lazily (extra ``eval``) and drawn with the Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CapabilityError, ConfigError
from ..viewer.trace_file import TRACE_FORMAT, TRACE_VERSION, check_writable, write_text_atomic
from ..viewer.trace_html import render_trace_html
from .analysis import (
    CurvePoint,
    Series,
    accuracy_by_bin,
    check_bin_method,
    dataset_slice,
    flops_matched,
    oracle_bins,
    predicted_bins,
    series_of_runs,
)
from .metrics import summarize
from .records import ProblemRecord, RunInfo
from .store import RunStore

GREEDY = ("cot", "direct")
"""Strategies that make one greedy attempt: the "large model without test-time compute" side."""


@dataclass(frozen=True)
class LoadedRun:
    info: RunInfo
    problems: list[ProblemRecord]


@dataclass(frozen=True)
class MatchedRow:
    """One FLOPs-matched comparison: a greedy run against another model's series."""

    greedy: Series
    other: Series
    matched: CurvePoint
    per_bin: dict[int, tuple[tuple[float, int], tuple[float, int]]]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise CapabilityError("ttscale report draws with matplotlib: pip install 'ttscale[eval]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# -- figures -------------------------------------------------------------------------------------------

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")  # fmt: skip
"""matplotlib's default cycle (tab10), named here because the styles below extend it."""
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_HATCHES = ("", "//", "..", "xx", "\\\\", "++", "--")


def series_style(i: int) -> tuple[str, str, str]:
    """Colour, marker and bar hatch of the i-th series: unique for the first 70 series.

    The default colour cycle repeats after ten, and a published plot has more series than that (every
    strategy on one benchmark), so two of them would be drawn alike; past ten the marker (or the bar's
    hatch) changes too.
    """
    shape = (i // len(_COLORS)) % len(_MARKERS)
    return _COLORS[i % len(_COLORS)], _MARKERS[shape], _HATCHES[shape]


def plot_scaling(series: Sequence[Series], title: str = "Accuracy against compute (labels: budget)") -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for i, s in enumerate(series):
        color, marker, _ = series_style(i)
        xs = [p.flops_per_problem for p in s.points]
        ys = [p.accuracy for p in s.points]
        err = [
            [p.accuracy - p.accuracy_ci[0] for p in s.points],
            [p.accuracy_ci[1] - p.accuracy for p in s.points],
        ]
        ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, capsize=3, label=s.label)
        for p in s.points if len(s.points) > 1 else ():  # a lone point's budget labels nothing
            ax.annotate(str(p.budget), (p.flops_per_problem, p.accuracy), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per problem (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: points are not hidden
    ax.set_title(title)
    return _png(fig)


def plot_bins(series: Sequence[Series], bins: Bins) -> str:
    """Each series on the bins' problems at its largest budget, one bar per bin."""
    plt = _pyplot()
    series = [s for s in series if s.points and s.dataset == bins.dataset]
    n_bins = max(bins.bins.values())
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(series), 1)
    for i, s in enumerate(series):
        top = s.points[-1]  # the largest budget of the series
        acc = accuracy_by_bin(top, bins.bins)
        have = [b for b in range(1, n_bins + 1) if acc.get(b, (0.0, 0))[1] > 0]  # no problems: no bar, not 0
        xs = [b + (i - (len(series) - 1) / 2) * width for b in have]
        color, _, hatch = series_style(i)
        ax.bar(
            xs, [acc[b][0] for b in have], width, color=color, hatch=hatch, label=f"{s.label} [{top.budget}]"
        )
    ax.set_xticks(range(1, n_bins + 1))
    ax.set_xlabel(f"difficulty bin (1 = easiest, by {bins.ranked_by} in run {bins.run_id})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Accuracy per difficulty bin (each series at its largest budget)")
    return _png(fig)


def plot_tokens(runs: Sequence[LoadedRun]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in runs:
        counts = [s.tokens for p in r.problems for s in p.samples if s.tokens is not None]
        if not counts:
            counts = [p.usage.completion_tokens for p in r.problems]
        if counts:
            ax.hist(counts, bins=30, alpha=0.45, label=f"{r.info.run_id} {r.info.config.get('strategy')}")
    ax.set_xlabel("generated tokens per sample (per problem for runs without samples)")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)
    ax.set_title("Generated tokens")
    return _png(fig)


# -- analysis --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bins:
    """Difficulty bins, and the run whose samples ranked the problems."""

    bins: dict[str, int]
    """Problem id to bin (1 easiest)."""
    run_id: str
    model: str
    dataset: str
    """The run's problems (:func:`~.analysis.dataset_slice`): the bins apply to series on these only."""
    ranked_by: str = "pass@1 (oracle)"
    """What ranked the problems: the model's pass@1 (oracle bins) or what its first samples say."""


def _progress(info: RunInfo) -> str:
    """Problems done, and of how many when the run is not finished (in progress or interrupted)."""
    return (
        str(info.n_done)
        if info.n_done >= info.n_planned
        else f"{info.n_done} of {info.n_planned} (incomplete)"
    )


def difficulty_bins(runs: Sequence[LoadedRun], n_bins: int = 5, method: str = "oracle") -> list[Bins]:
    """Bins for each dataset slice, from its finished run with the most samples per problem (the earliest
    on ties); a slice without a finished sampling run has none. ``method``: ``oracle`` ranks problems by
    that run's pass@1, ``predicted`` by what its first samples say without the key
    (:func:`~.analysis.predicted_bins`)."""
    check_bin_method(method)
    best: dict[str, tuple[int, LoadedRun]] = {}
    for r in runs:
        counts = [len(p.samples) for p in r.problems if p.samples]
        if r.info.n_done < r.info.n_planned or not counts or min(counts) < 2:
            continue  # a run in progress ranks only the problems it reached
        where = dataset_slice(r.info.config)
        if where not in best or min(counts) > best[where][0]:
            best[where] = (min(counts), r)
    out = []
    for where, (_, r) in best.items():
        model = str(r.info.config.get("model"))
        if method == "oracle":
            bins, ranked = oracle_bins(r.problems, n_bins), f"{model}'s pass@1 (oracle)"
        else:
            bins, how = predicted_bins(r.problems, n_bins=n_bins)
            ranked = f"{model}'s {how} (predicted)"
        out.append(Bins(bins, r.info.run_id, model, where, ranked))
    return out


def matched_rows(series: Sequence[Series], binned: Sequence[Bins]) -> list[MatchedRow]:
    """Each greedy run against every other model's curve on the same problems, at matched FLOPs."""
    by_slice = {b.dataset: b.bins for b in binned}
    rows = []
    for g in series:
        if g.strategy not in GREEDY or len(g.points) != 1:
            continue
        target = g.points[0]
        bins = by_slice.get(g.dataset)
        for other in series:
            if other.model == g.model or other.dataset != g.dataset or len(other.points) < 2:
                continue
            m = flops_matched(other.points, target.flops_per_problem)
            if m is None:
                continue
            per_bin: dict[int, tuple[tuple[float, int], tuple[float, int]]] = {}
            if bins:
                common = {pid: b for pid, b in bins.items() if pid in target.correct and pid in m.correct}
                a, b = accuracy_by_bin(target, common), accuracy_by_bin(m, common)
                per_bin = {k: (a[k], b[k]) for k in sorted(a) if k in b}
            rows.append(MatchedRow(g, other, m, per_bin))
    return rows


# -- page ------------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 1e4 or (x and abs(x) < 1e-2) else f"{x:.3f}".rstrip("0").rstrip(".")


def _trace_pages(runs: Sequence[LoadedRun], folder: Path) -> dict[tuple[str, int], str]:
    """Write each problem's trace page; (run, index) to its path relative to the report."""
    from .datasets import load

    links: dict[tuple[str, int], str] = {}
    for r in runs:
        questions: dict[int, str] = {}
        try:
            offset = int(r.info.config.get("offset", 0))
            for i, ex in enumerate(
                load(str(r.info.config["dataset"]), limit=r.info.n_planned, offset=offset)
            ):
                questions[offset + i] = ex.problem.question
        except ConfigError:
            pass  # a jsonl file that moved: the pages go without the question
        sub = folder / r.info.run_id
        sub.mkdir(parents=True, exist_ok=True)
        for p in r.problems:
            doc = {"format": TRACE_FORMAT, "version": TRACE_VERSION, "question": questions.get(p.index, ""),
                   "problem_id": p.problem_id, **dict(p.result)}  # fmt: skip
            doc.setdefault("trace", [])
            name = f"{p.index:05d}.html"
            write_text_atomic(sub / name, render_trace_html(doc, title=f"{p.problem_id} · {r.info.run_id}"))
            links[(r.info.run_id, p.index)] = f"{folder.name}/{r.info.run_id}/{name}"
    return links


def build_report(
    store: RunStore, run_ids: Sequence[str] | None, out: Path, *, traces: bool = True, bins: str = "oracle"
) -> str:
    """Write the report for ``run_ids`` (default: every run with recorded problems) to ``out``, with
    difficulty bins by ``bins`` (see :func:`difficulty_bins`)."""
    check_bin_method(bins)
    check_writable(out, "the report")
    infos = [store.run(r) for r in run_ids] if run_ids else [r for r in store.runs() if r.n_done]
    if not infos:
        raise ConfigError(f"no runs with recorded problems in {store.path}; run `ttscale eval` first")
    runs = [LoadedRun(i, store.problems(i.run_id)) for i in infos]
    series = _mark_incomplete(
        series_of_runs([(r.info.run_id, r.info.config, r.problems) for r in runs]), runs
    )
    binned = difficulty_bins(runs, method=bins)
    links = _trace_pages(runs, out.with_name(out.stem + "_traces")) if traces else {}
    page = _page(runs, series, binned, matched_rows(series, binned), links)
    write_text_atomic(out, page)
    return page


def _mark_incomplete(series: Sequence[Series], runs: Sequence[LoadedRun]) -> list[Series]:
    """Series with a run that has not done all its problems say so in their label (their points cover
    only the problems done, which a plot would otherwise show as a finished result)."""
    partial = {r.info.run_id: _progress(r.info) for r in runs if r.info.n_done < r.info.n_planned}
    out = []
    for s in series:
        notes = [partial[i].replace(" (incomplete)", "") for i in s.run_ids if i in partial]
        out.append(
            dataclasses.replace(s, label=f"{s.label} [incomplete: {', '.join(notes)}]") if notes else s
        )
    return out


def _page(
    runs: Sequence[LoadedRun],
    series: Sequence[Series],
    binned: Sequence[Bins],
    matched: Sequence[MatchedRow],
    links: Mapping[tuple[str, int], str],
) -> str:
    e = html.escape
    parts = ["<h2>Runs</h2>", "<table class='runs'><tr><th>run</th><th>dataset</th><th>model</th>"
             "<th>strategy</th><th>params</th><th>problems (of planned)</th><th>accuracy (95% CI)</th><th>tokens / problem</th>"
             "<th>FLOPs / problem</th><th>latency p50 / p95 s</th></tr>"]  # fmt: skip
    replays = False
    for r in runs:
        m, c = summarize(r.problems), r.info.config
        params = " ".join(f"{k}={v}" for k, v in dict(c.get("params", {})).items())
        lo, hi = m.accuracy_ci
        latency = f"{_fmt(m.latency_p50)} / {_fmt(m.latency_p95)}" if m.n_problems else "-"
        if "draws" in r.info.versions:  # --draws: replayed calls took no decoding time
            latency, replays = latency + " (draws)", True
        parts.append(
            f"<tr><td>{e(r.info.run_id)}</td><td>{e(str(c.get('dataset')))}</td><td>{e(str(c.get('model')))}</td>"
            f"<td>{e(str(c.get('strategy')))}</td><td>{e(params)}</td><td>{_progress(r.info)}</td>"
            f"<td>{m.accuracy:.3f} ({lo:.3f}–{hi:.3f})</td><td>{m.per_problem(m.usage.total_tokens):.1f}</td>"
            f"<td>{m.per_problem(m.usage.flops):.3g}</td><td>{latency}</td></tr>"
        )
    parts.append("</table>")
    if replays:
        parts.append(
            "<p class='note'>(draws): run with <code>--draws</code>. Calls found in the draw file were replayed, "
            "so the latency is the replay's; tokens and FLOPs are the method's, booked as drawn.</p>"
        )
    parts.append("<h2>Accuracy against compute</h2>")
    slices = list(dict.fromkeys(s.dataset for s in series))  # one plot per set of problems, in run order
    for where in slices:
        title = f"{where}: accuracy against compute (labels: budget)"
        plot = plot_scaling([s for s in series if s.dataset == where], title)
        parts.append(f"<img alt='accuracy against FLOPs' src='{plot}'>")
    parts.append("<table class='points'><tr><th>series</th><th>budget</th><th>accuracy</th><th>tokens / problem</th>"
                 "<th>FLOPs / problem</th></tr>")  # fmt: skip
    for s in series:
        for p in s.points:
            parts.append(f"<tr><td>{e(s.label)}</td><td>{p.budget}</td><td>{p.accuracy:.3f}</td>"
                         f"<td>{p.tokens_per_problem:.1f}</td><td>{p.flops_per_problem:.3g}</td></tr>")  # fmt: skip
    parts.append("</table>")
    parts.append("<h2>Difficulty bins</h2>")
    for b in binned:
        parts += [f"<p>Problems of {e(b.dataset)} ranked by {e(b.ranked_by)} in run {e(b.run_id)}, "
                  "five equal bins; the series on those problems.</p>",
                  f"<img alt='accuracy per difficulty bin' src='{plot_bins(series, b)}'>"]  # fmt: skip
    if not binned:
        parts.append("<p>No finished sampling run among these runs: no bins.</p>")
    parts.append("<h2>FLOPs-matched comparison</h2>")
    if matched:
        parts.append("<table class='matched'><tr><th>greedy</th><th>accuracy</th><th>FLOPs / problem</th>"
                     "<th>against</th><th>budget</th><th>accuracy</th><th>FLOPs / problem</th><th>per bin "
                     "(greedy vs matched)</th></tr>")  # fmt: skip
        for row in matched:
            g = row.greedy.points[0]
            by_bin = "; ".join(
                f"bin {b}: {x[0]:.2f} vs {y[0]:.2f} (n={x[1]})" for b, (x, y) in row.per_bin.items()
            )
            parts.append(
                f"<tr><td>{e(row.greedy.label)}</td><td>{g.accuracy:.3f}</td><td>{g.flops_per_problem:.3g}</td>"
                f"<td>{e(row.other.label)}</td><td>{row.matched.budget}</td><td>{row.matched.accuracy:.3f}</td>"
                f"<td>{row.matched.flops_per_problem:.3g}</td><td>{e(by_bin)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append(
            "<p>Needs a greedy run of one model and a series of another on the same problems within its FLOPs.</p>"
        )
    parts += ["<h2>Generated tokens</h2>", f"<img alt='token histograms' src='{plot_tokens(runs)}'>"]
    parts.append("<h2>Problems</h2>")
    for r in runs:
        parts.append(f"<details><summary>{e(r.info.run_id)}: {len(r.problems)} problems</summary><table>"
                     "<tr><th>#</th><th>problem</th><th>correct</th><th>answer</th><th>gold</th></tr>")  # fmt: skip
        for rec in r.problems:
            link = links.get((r.info.run_id, rec.index))
            name = f"<a href='{e(link)}'>{e(rec.problem_id)}</a>" if link else e(rec.problem_id)
            parts.append(f"<tr><td>{rec.index}</td><td>{name}</td><td>{'yes' if rec.correct else 'no'}</td>"
                         f"<td>{e(str(rec.answer))}</td><td>{e(rec.gold)}</td></tr>")  # fmt: skip
        parts.append("</table></details>")
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ttscale report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #1d1d1f; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
img {{ max-width: 100%; display: block; margin: 8px 0; }}
details {{ margin: 6px 0; }}
</style></head>
<body><h1>ttscale report</h1>
<p>{len(runs)} runs, {sum(len(r.problems) for r in runs)} problems.
FLOPs are 2·N per token plus attention, N read from each model's weights.</p>
{body}
</body></html>
"""
