"""``ttscale report`` on a store of scripted runs: what the page holds (the browser test renders it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from report_helpers import N_PROBLEMS, build_store, dataset, record_run
from typer.testing import CliRunner

from ttscale import cli
from ttscale.backends.scripted import ScriptedModel
from ttscale.errors import ConfigError, TraceFileError
from ttscale.evals.metrics import summarize
from ttscale.evals.report import _fmt, build_report
from ttscale.evals.store import RunStore

pytest.importorskip("matplotlib")
runner = CliRunner()


def test_report_holds_plots_tables_and_a_trace_page_per_problem(tmp_path: Path) -> None:
    path, (sc_run, greedy_run) = build_store(tmp_path)
    out = tmp_path / "report.html"
    result = runner.invoke(cli.app, ["report", "--store", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", page)
    assert [alt for alt, _ in images] == [
        "accuracy against FLOPs",
        "accuracy per difficulty bin",
        "token histograms",
    ]
    assert all(len(data) > 1000 for _, data in images)
    # subsampled points 1, 2, 4, 8 of the sampling run and the greedy run's single point
    points = re.search(r"<table class='points'>.*?</table>", page, re.S)
    assert points, "no table of curve points"
    rows = points.group(0)
    assert rows.count("<td>small · self_consistency</td>") == 4 and rows.count("<td>large · cot</td>") == 1
    # the large model's greedy FLOPs buy the small model some samples: one matched row
    matched = re.search(r"<table class='matched'>.*?</table>", page, re.S)
    assert matched and "large · cot" in matched.group(0) and "small · self_consistency" in matched.group(0)
    links = re.findall(r"<a href='([^']+)'>", page)
    assert len(links) == 2 * N_PROBLEMS
    assert all((tmp_path / link).is_file() for link in links)
    trace = (tmp_path / links[0]).read_text()
    assert "Count to 1." in trace and '"kind": "sample"' in trace.replace("\\u003c", "<")


def test_a_run_with_draws_is_marked_where_its_latency_is_shown(tmp_path: Path) -> None:
    path, (sc_run, greedy_run) = build_store(tmp_path)
    with RunStore.open(path) as store:
        data = dataset(tmp_path)
        replayed = record_run(
            store, data, ScriptedModel(name="small"), "cot", {}, draws=tmp_path / "d.sqlite"
        )
        page = build_report(store, [sc_run, replayed], tmp_path / "r.html", traces=False)
        plain = build_report(store, [sc_run], tmp_path / "p.html", traces=False)
    rows = {run: re.search(rf"<tr><td>{run}</td>.*?</tr>", page) for run in (sc_run, replayed)}
    assert rows[replayed] and "(draws)</td></tr>" in rows[replayed].group(0)
    assert rows[sc_run] and "(draws)" not in rows[sc_run].group(0)
    with RunStore.open(path, write=False) as store:
        m = summarize(store.problems(sc_run))
    assert f"<td>{_fmt(m.latency_p50)} / {_fmt(m.latency_p95)}</td></tr>" in rows[sc_run].group(0)
    assert "so the latency is the replay's" in page and "--draws" not in plain


def test_runs_on_different_problems_are_never_compared(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small = ScriptedModel(name="small", n_params=1_000_000)
    large = ScriptedModel(name="large", n_params=4_000_000)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        record_run(store, dataset(tmp_path / "a"), small, "self_consistency", {"n": "8"})
        record_run(store, dataset(tmp_path / "b"), large, "cot", {})
        page = build_report(store, None, tmp_path / "r.html", traces=False)
    # same models and budgets as build_store, which makes a matched row: here the problems differ
    assert "a series of another on the same problems" in page
    assert "<table class='matched'>" not in page
    points = re.search(r"<table class='points'>.*?</table>", page, re.S)
    assert points and "/a/data.jsonl[0:] · small · self_consistency" in points.group(0)
    assert "/b/data.jsonl[0:] · large · cot" in points.group(0)


def test_bins_per_dataset_and_runs_in_progress_are_marked(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small = ScriptedModel(name="small", n_params=1_000_000)
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        record_run(store, dataset(tmp_path / "a"), small, "self_consistency", {"n": "8"})
        record_run(store, dataset(tmp_path / "b"), small, "self_consistency", {"n": "8"})
        partial = record_run(store, dataset(tmp_path / "b"), small, "self_consistency", {"n": "16"})
    with sqlite3.connect(path) as conn:  # as if it had planned more than it has done so far
        conn.execute("UPDATE runs SET n_planned = ? WHERE run_id = ?", (N_PROBLEMS + 5, partial))
    with RunStore.open(path, write=False) as store:
        page = build_report(store, None, tmp_path / "r.html", traces=False)
    assert page.count("<img alt='accuracy per difficulty bin'") == 2  # one per dataset
    assert page.count("small&#x27;s pass@1 (oracle) in run") == 2
    assert f"run {partial}" not in page.split("Difficulty")[1]
    assert f"{N_PROBLEMS} of {N_PROBLEMS + 5} (incomplete)" in page
    assert page.count("<img alt='accuracy against FLOPs'") == 2  # one plot per set of problems
    # the run in progress is drawn with what it has done so far, and its series says so
    assert page.count(f"[incomplete: {N_PROBLEMS} of {N_PROBLEMS + 5}]") >= 1
    with RunStore.open(path, write=False) as store:
        page = build_report(store, None, tmp_path / "p.html", traces=False, bins="predicted")
    # the scripted backend gives no logprobs here, so agreement alone ranks the problems
    assert page.count("small&#x27;s agreement of the first 4 samples (predicted) in run") == 2
    assert "(oracle)" not in page
    bad = runner.invoke(
        cli.app, ["report", "--store", str(path), "--bins", "vibes", "-o", str(tmp_path / "x.html")]
    )
    assert bad.exit_code == 2 and "--bins must be oracle or predicted" in bad.output
    assert not (tmp_path / "x.html").exists()


def test_report_of_chosen_runs_and_bad_requests(tmp_path: Path) -> None:
    path, (sc_run, greedy_run) = build_store(tmp_path)
    with RunStore.open(path, write=False) as store:
        page = build_report(store, [greedy_run], tmp_path / "one.html", traces=False)
        assert "No finished sampling run among these runs" in page and "<a href=" not in page
        with pytest.raises(TraceFileError, match="cannot write the report .* does not exist"):
            build_report(store, None, tmp_path / "missing" / "r.html")
    empty = tmp_path / "empty.sqlite"
    RunStore.open(empty).close()
    with (
        RunStore.open(empty, write=False) as store,
        pytest.raises(ConfigError, match="no runs with recorded"),
    ):
        build_report(store, None, tmp_path / "r.html")
    missing = runner.invoke(cli.app, ["report", "--store", str(tmp_path / "nope.sqlite")])
    assert missing.exit_code == 2 and "no run store" in missing.output
    out = tmp_path / "cli.html"  # --runs picks runs on the command line too: the greedy run alone
    chosen = runner.invoke(
        cli.app, ["report", "--store", str(path), "--runs", f" {greedy_run},", "-o", str(out)]
    )
    assert chosen.exit_code == 0, chosen.output
    page = out.read_text()
    assert "No finished sampling run among these runs" in page and greedy_run in page and sc_run not in page


def test_a_dozen_series_are_drawn_each_in_its_own_style(monkeypatch: pytest.MonkeyPatch) -> None:
    # matplotlib's colour cycle repeats after ten; a published plot shows more strategies than that
    from ttscale.evals import report
    from ttscale.evals.analysis import CurvePoint, Series

    figures: list[object] = []
    monkeypatch.setattr(report, "_png", lambda fig: figures.append(fig) or "")
    point = CurvePoint("x", 1, 10, 0.5, (0.4, 0.6), 100.0, 1e11, {})
    series = [Series("m", f"s{i}", f"strategy {i}", (point,), ("run",)) for i in range(12)]
    report.plot_scaling(series)
    assert figures[0].axes[0].get_xscale() == "log"  # type: ignore[attr-defined]  # FLOPs span decades
    handles, labels = figures[0].axes[0].get_legend_handles_labels()  # type: ignore[attr-defined]
    styles = {(h[0].get_color(), h[0].get_marker()) for h in handles}
    assert labels == [s.label for s in series]
    assert len(styles) == 12
