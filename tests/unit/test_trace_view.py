"""Trace files (write, read, refuse) and the HTML page rendered from them; the browser test is in
tests/integration/test_trace_viewer_browser.py."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from search_helpers import PROBLEM, named_policy, search_gen, solve
from typer.testing import CliRunner

from ttscale import cli
from ttscale.errors import TraceFileError
from ttscale.strategies.mcts import MCTS
from ttscale.types import Problem, Result, TraceEvent, Usage
from ttscale.viewer import read_trace, render_trace_html, trace_document, write_trace
from ttscale.viewer.trace_file import check_writable, write_text_atomic

runner = CliRunner()


def embedded(page: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S)
    assert m, "the page embeds no trace"
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def test_a_trace_file_round_trips_the_result_and_the_question(tmp_path: Path) -> None:
    result = solve(MCTS(iterations=3, k=2), search_gen(named_policy(depth=3)))
    path = tmp_path / "t.json"
    write_trace(path, PROBLEM, result)
    doc = read_trace(path)
    assert doc["question"] == PROBLEM.question and doc["answer"] == result.answer
    assert doc["trace"] == result.to_dict()["trace"]
    nodes = [e for e in doc["trace"] if e["kind"] == "node"]
    assert nodes[0]["id"] == 0 and len(nodes) == 1 + 3 * 2  # root + k children for each of 3 expansions
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temporary file left behind


def test_written_files_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    # the atomic write's temporary file must not keep a private 0600 mode: reports and traces get served
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no trace file"),
        ('{"format": "ttscale-trace", "version": 1, "trace": [', "not valid JSON (line 1"),
        ('{"answer": 3}', "is not a ttscale trace"),
        ('{"format": "ttscale-trace", "version": 99, "trace": []}', "format version 99"),
        ('{"format": "ttscale-trace", "version": 1, "trace": [{"id": 1}]}', 'each with a "kind"'),
    ],
)
def test_bad_trace_files_are_refused_with_a_reason(tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TraceFileError, match=re.escape(says)) as err:
        read_trace(path)
    assert str(path) in str(err.value)


def test_unwritable_trace_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="does not exist"):
        check_writable(tmp_path / "missing" / "t.json")
    with pytest.raises(TraceFileError, match="is a folder"):
        check_writable(tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(TraceFileError, match="not writable"):
            check_writable(locked / "t.json")


def test_model_text_cannot_break_out_of_the_page() -> None:
    evil = "</script><script>alert(1)</script><!-- & <b>"
    result = Result(
        answer="1",
        response=evil,
        strategy="cot",
        model="m",
        confidence=None,
        candidates=(),
        usage=Usage({}),
        trace=(TraceEvent("sample", {"text": evil, "answer": "1"}),),
    )
    page = render_trace_html(trace_document(Problem(evil), result))
    assert page.count("</script>") == 2  # the data element and the viewer script, nothing else
    assert "<!--" not in page and "<b>" not in page
    assert embedded(page)["question"] == evil  # the JSON still decodes to the exact text
    assert "https://" not in page and "http://" not in page  # self-contained: nothing fetched


def test_solve_writes_a_trace_and_trace_view_renders_it(
    tmp_path: Path, script_file: Callable[[Sequence[str]], Path], boxed: Callable[..., str]
) -> None:
    trace, page = tmp_path / "run.json", tmp_path / "run.html"
    script = script_file([boxed("0.5"), boxed("1/2"), boxed("3")])
    args = ["solve", "What is 1/2?", "--backend", "scripted", "--script", str(script), "-p", "n=3"]
    out = runner.invoke(cli.app, [*args, "--trace", str(trace)])
    assert out.exit_code == 0, out.output
    doc = read_trace(trace)
    samples = [e for e in doc["trace"] if e["kind"] == "sample"]
    assert [s["answer"] for s in samples] == ["0.5", "1/2", "3"] and doc["answer"] in ("0.5", "1/2")
    out = runner.invoke(cli.app, ["trace", "view", str(trace), "-o", str(page)])
    assert out.exit_code == 0, out.output
    assert embedded(page.read_text()) == doc
    # without -o the page goes next to the trace
    assert runner.invoke(cli.app, ["trace", "view", str(trace)]).exit_code == 0
    assert (tmp_path / "run.html").exists()


def test_a_bad_trace_path_fails_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(cli, "open_generator", lambda *a: opened.append("model") or None)
    out = runner.invoke(cli.app, ["solve", "q", "--trace", str(tmp_path / "no" / "t.json")])
    assert out.exit_code == 2 and "does not exist" in out.output and opened == []


def test_trace_view_names_a_file_that_is_not_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    out = runner.invoke(cli.app, ["trace", "view", str(path)])
    assert out.exit_code == 2 and "is not a ttscale trace" in out.output
    assert not (tmp_path / "x.html").exists()


def test_trace_view_never_overwrites_the_trace_it_reads(
    tmp_path: Path, script_file: Callable[[Sequence[str]], Path], boxed: Callable[..., str]
) -> None:
    trace = tmp_path / "run.html"  # a trace named .html: the default page name is the trace's own
    args = ["solve", "q", "--backend", "scripted", "--script", str(script_file([boxed("1")])), "-p", "n=1"]
    assert runner.invoke(cli.app, [*args, "--trace", str(trace)]).exit_code == 0
    for extra in ([], ["-o", str(trace)]):
        out = runner.invoke(cli.app, ["trace", "view", str(trace), *extra])
        assert out.exit_code == 2 and "would overwrite the trace" in out.output
    assert read_trace(trace)["answer"] == "1"  # still the trace


def test_the_answer_is_printed_even_when_the_trace_cannot_be_written(
    tmp_path: Path,
    script_file: Callable[[Sequence[str]], Path],
    boxed: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(*args: object) -> None:
        raise TraceFileError("cannot write t.json: No space left on device")

    monkeypatch.setattr(cli, "write_trace", disk_full)
    args = ["solve", "q", "--backend", "scripted", "--script", str(script_file([boxed("7")])), "--json"]
    out = runner.invoke(cli.app, [*args, "--trace", str(tmp_path / "t.json")])
    assert out.exit_code == 2 and "No space left on device" in out.stderr
    assert json.loads(out.stdout)["answer"] == "7"  # what was computed is not lost
