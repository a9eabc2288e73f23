"""``ttscale eval`` and ``ttscale runs`` through the real CLI, on the scripted backend."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli_processes import kill_after, spawn
from ttscale import cli, cli_eval
from ttscale.evals import store as store_module

runner = CliRunner()
N = 10
RESPONSE = "Counting carefully. The answer is \\boxed{3}."  # 6 scripted tokens


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A dataset of N problems (gold i % 4 + 1: RESPONSE is right for q2 and q6) and a script."""
    data = tmp_path / "data.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "question": f"Problem {i}: count to {i % 4 + 1}." + " ok" * i,
            "answer": str(i % 4 + 1),
        }
        for i in range(N)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([RESPONSE]), encoding="utf-8")
    return {"data": data, "script": script, "store": tmp_path / "runs.sqlite"}


def eval_args(files: dict[str, Path], *extra: str, store: Path | None = None, cot: bool = False) -> list[str]:
    strategy = ["--strategy", "cot"] if cot else ["--strategy", "self_consistency", "-p", "n=3"]
    return [
        "eval", "--backend", "scripted", "--script", str(files["script"]), "--store", str(store or files["store"]),
        "--dataset", f"jsonl:{files['data']}", *strategy, "--seed", "7", *extra,
    ]  # fmt: skip


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record any attempt to open a generator (there must be none when the options are wrong)."""
    opened: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(cli_eval, "open_generator", refuse)
    return opened


def test_eval_json_summary(files: dict[str, Path]) -> None:
    result = runner.invoke(cli.app, eval_args(files, "--json", "--concurrency", "3"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert data["n_problems"] == N and data["status"] == "complete"
    assert data["accuracy"] == pytest.approx(2 / 10)  # gold 3 at i = 2, 6
    assert data["accuracy_ci95"][0] < data["accuracy"] < data["accuracy_ci95"][1]
    assert data["usage"]["completion_tokens"] == N * 3 * 6 and data["usage"]["flops"] > 0
    assert data["wall_seconds"] >= 0 and data["latency_p95"] >= data["latency_p50"]
    assert set(data["pass_at_k"]) == {"1", "2", "3"}
    with sqlite3.connect(files["store"]) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT idx) FROM problems").fetchone() == (N, N)
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone() == (N * 3,)
        (config,) = conn.execute(
            "SELECT config_json FROM runs WHERE run_id = ?", (data["run_id"],)
        ).fetchone()
    assert json.loads(config)["dataset"] == f"jsonl:{files['data'].resolve()}"


def test_off_a_terminal_progress_is_plain_lines(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # CliRunner's stderr is not a terminal, like nohup's or CI's: no live bar, lines instead
    monkeypatch.setattr(cli_eval, "LOG_EVERY", 1e9)
    result = runner.invoke(cli.app, eval_args(files, "--json", "--limit", "4"))
    lines = result.stderr.strip().splitlines()
    run_id = json.loads(result.stdout)["run_id"]
    assert len(lines) == 2  # the first problem, then nothing for LOG_EVERY seconds but the last
    assert lines[-1].startswith(f"{run_id} 4/4 acc 0.250 ") and lines[-1].endswith("tok/s eta 0:00:00")
    monkeypatch.setattr(cli_eval, "LOG_EVERY", 0.0)
    result = runner.invoke(cli.app, eval_args(files, "--json", "--limit", "6", "--offset", "4"))
    counts = [line.split()[1] for line in result.stderr.strip().splitlines()]
    assert counts == ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"]


def test_eval_human_summary_and_the_runs_commands(files: dict[str, Path]) -> None:
    result = runner.invoke(cli.app, eval_args(files, "--limit", "4"))
    assert result.exit_code == 0, result.output
    assert "accuracy [95% CI]" in result.stdout and "pass@3" in result.stdout
    other = runner.invoke(cli.app, eval_args(files, "--limit", "4", "--json", cot=True))
    assert other.exit_code == 0, other.output
    store = ["--store", str(files["store"])]
    listed = runner.invoke(cli.app, ["runs", "list", *store], env={"COLUMNS": "200"})
    run_ids = [line.split()[1] for line in listed.stdout.splitlines() if line.startswith("│ 20")]
    assert listed.exit_code == 0 and len(run_ids) == 2 and json.loads(other.stdout)["run_id"] == run_ids[1]
    shown = runner.invoke(cli.app, ["runs", "show", run_ids[0], *store, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["config"]["params"] == {"n": "3"} and data["versions"]["cpu_count"] == os.cpu_count()
    compared = runner.invoke(cli.app, ["runs", "compare", *run_ids, *store], env={"COLUMNS": "200"})
    assert compared.exit_code == 0, compared.output
    assert "common problems: 4" in compared.stdout and "answers disagree on: 0" in compared.stdout


def test_a_run_stopped_by_its_engine_says_how_to_resume(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttscale.backends.scripted import ScriptedGenerator
    from ttscale.errors import EngineClosed

    def dies_on_the_third_call(prompt: Any, k: int) -> str:
        if k >= 2:
            raise EngineClosed("the engine stopped on an error: RuntimeError('boom'); create a new generator")
        return RESPONSE

    monkeypatch.setattr(cli_eval, "open_generator", lambda *a, **k: ScriptedGenerator(dies_on_the_third_call))
    result = runner.invoke(cli.app, eval_args(files, "--limit", "4", cot=True))
    assert result.exit_code != 0
    assert "continue with: ttscale eval --resume" in result.stderr
    run_id = result.stderr.split("--resume ")[1].split()[0]
    monkeypatch.undo()
    again = ["eval", "--resume", run_id, "--store", str(files["store"]), "--script", str(files["script"])]
    resumed = runner.invoke(cli.app, [*again, "--json"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["n_problems"] == 4  # the two stored, and the two the engine lost
    assert summary["accuracy"] == 0.25  # q2 (gold 3) solved on resuming, not stored as a failure


def test_runs_compare_lists_flipped_problems(files: dict[str, Path], tmp_path: Path) -> None:
    ids = []
    for answer in ("3", "2"):
        files["script"].write_text(json.dumps([f"So \\boxed{{{answer}}}."]), encoding="utf-8")
        result = runner.invoke(cli.app, eval_args(files, "--json", "--limit", "4"))
        ids.append(json.loads(result.stdout)["run_id"])
    compared = runner.invoke(cli.app, ["runs", "compare", *ids, "--store", str(files["store"])])
    assert compared.exit_code == 0, compared.output
    assert "answers disagree on: 4" in compared.stdout
    assert "wrong -> correct (1): q1" in compared.stdout and "correct -> wrong (1): q2" in compared.stdout
    other = tmp_path / "other.jsonl"
    other.write_text(files["data"].read_text(encoding="utf-8"), encoding="utf-8")  # the same ids, q0...
    result = runner.invoke(cli.app, eval_args({**files, "data": other}, "--json", "--limit", "4"))
    elsewhere = json.loads(result.stdout)["run_id"]
    refused = runner.invoke(cli.app, ["runs", "compare", ids[0], elsewhere, "--store", str(files["store"])])
    assert refused.exit_code == 2 and "are on different datasets" in refused.output


def test_runs_delete_removes_one_run_after_asking(files: dict[str, Path]) -> None:
    ids = [json.loads(runner.invoke(cli.app, eval_args(files, "--json", "--limit", "2")).stdout)["run_id"]
           for _ in range(2)]  # fmt: skip
    store = ["--store", str(files["store"])]
    kept = runner.invoke(cli.app, ["runs", "delete", ids[0], *store], input="n\n")
    assert kept.exit_code == 1 and "delete run" in kept.stderr
    gone = runner.invoke(cli.app, ["runs", "delete", ids[0], *store], input="y\n")
    assert gone.exit_code == 0, gone.output
    assert f"deleted run {ids[0]} (2/2 problems" in gone.stderr
    listed = runner.invoke(cli.app, ["runs", "list", *store]).stdout
    assert ids[0] not in listed and ids[1] in listed
    with sqlite3.connect(files["store"]) as conn:  # nothing of it is left behind
        for table in ("runs", "problems", "samples"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (ids[0],)).fetchone() == (
                0,
            )
        assert conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (ids[1],)).fetchone() == (6,)
    assert "no run" in one_error_line(runner.invoke(cli.app, ["runs", "delete", ids[0], *store, "--yes"]))
    assert runner.invoke(cli.app, ["runs", "delete", ids[1], *store, "--yes"]).exit_code == 0


# -- bad input fails early, in one red line -------------------------------------------------------------


def one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_unknown_strategy_and_param_fail_before_any_model(
    files: dict[str, Path], no_model: list[Any]
) -> None:
    args = eval_args(files)
    bad_strategy = [a.replace("self_consistency", "self_consistancy") for a in args]
    assert "Did you mean 'self_consistency'" in one_error_line(runner.invoke(cli.app, bad_strategy))
    assert "unknown parameter 'nn'" in one_error_line(runner.invoke(cli.app, [*args, "-p", "nn=3"]))
    assert "--seed" in one_error_line(runner.invoke(cli.app, [*args, "-p", "seed=3"]))
    assert no_model == []


def test_unknown_dataset_lists_the_known_ones(files: dict[str, Path], no_model: list[Any]) -> None:
    args = eval_args(files)
    args[args.index("--dataset") + 1] = "gsm9k"
    line = one_error_line(runner.invoke(cli.app, args))
    assert "unknown dataset 'gsm9k'" in line and "gsm8k" in line and "math500" in line


def test_a_malformed_dataset_line_is_named(files: dict[str, Path], no_model: list[Any]) -> None:
    files["data"].write_text('{"id": "a", "question": "q", "answer": "1"}\n{"id": oops}\n', encoding="utf-8")
    line = one_error_line(runner.invoke(cli.app, eval_args(files)))
    assert f"{files['data']}, line 2: not valid JSON" in line


def test_an_unwritable_store_fails_before_any_model(
    files: dict[str, Path], no_model: list[Any], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "runs.sqlite"
    line = one_error_line(runner.invoke(cli.app, eval_args(files, store=bad)))
    assert str(bad) in line and "cannot use run store" in line


def test_a_full_disk_fails_before_any_model(
    files: dict[str, Path], no_model: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        free = 0

    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda _path: Usage())
    line = one_error_line(runner.invoke(cli.app, eval_args(files)))
    assert "0.0 MiB free" in line and str(files["store"]) in line


def test_slots_size_the_engine_are_recorded_and_checked(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttscale.backends import llamacpp
    from ttscale.backends.scripted import ScriptedGenerator

    opened: list[Any] = []

    def from_model(name: str, config: Any = None) -> ScriptedGenerator:
        opened.append(config)
        return ScriptedGenerator([RESPONSE])

    monkeypatch.setattr(llamacpp.LlamaCppGenerator, "from_model", staticmethod(from_model))
    args = ["eval", "--store", str(files["store"]), "--dataset", f"jsonl:{files['data']}", "-s", "cot"]
    out = runner.invoke(cli.app, [*args, "--limit", "2", "--slots", "96", "--json"])
    assert out.exit_code == 0, out.output
    assert [c.n_seq_max for c in opened] == [96]  # the llama.cpp engine gets 96 sequence slots
    run_id = json.loads(out.stdout)["run_id"]
    shown = json.loads(
        runner.invoke(cli.app, ["runs", "show", run_id, "--store", str(files["store"]), "--json"]).stdout
    )
    assert shown["config"]["slots"] == 96
    line = one_error_line(
        runner.invoke(cli.app, ["eval", "--resume", run_id, "--store", str(files["store"]), "--slots", "8"])
    )
    assert "--slots 8 (the run has 96)" in line
    assert "slots must be >= 2" in one_error_line(runner.invoke(cli.app, [*args, "--slots", "1"]))
    runner.invoke(cli.app, [*args, "--limit", "1"])
    assert opened[-1] is None  # no --slots: the engine's own default


def test_resume_refuses_conflicting_options(files: dict[str, Path]) -> None:
    run_id = json.loads(runner.invoke(cli.app, eval_args(files, "--json", "--limit", "2")).stdout)["run_id"]
    store = ["--store", str(files["store"])]
    line = one_error_line(runner.invoke(cli.app, ["eval", "--resume", run_id, *store, "--limit", "3"]))
    assert "--limit 3 (the run has 2)" in line
    line = one_error_line(runner.invoke(cli.app, ["eval", "--resume", "nope", *store]))
    assert "no run 'nope'" in line


def test_resuming_a_complete_run_reports_without_a_model(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = json.loads(runner.invoke(cli.app, eval_args(files, "--json", "--limit", "2")).stdout)
    monkeypatch.setattr(cli_eval, "open_generator", lambda *a, **k: pytest.fail("a model was loaded"))
    again = runner.invoke(
        cli.app, ["eval", "--resume", first["run_id"], "--store", str(files["store"]), "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == first


def test_eval_needs_a_dataset_and_a_strategy(files: dict[str, Path], no_model: list[Any]) -> None:
    store = ["--store", str(files["store"])]
    assert "--dataset" in one_error_line(runner.invoke(cli.app, ["eval", *store, "--strategy", "cot"]))
    assert "--strategy" in one_error_line(runner.invoke(cli.app, ["eval", *store, "--dataset", "gsm8k"]))


# -- killed with SIGKILL, then resumed ------------------------------------------------------------------


def test_a_killed_run_resumes_to_the_uninterrupted_result(files: dict[str, Path], tmp_path: Path) -> None:
    slow = spawn(eval_args(files, "--concurrency", "2", "--script-delay", "0.4"))
    done = kill_after(slow, files["store"], 3)
    assert 3 <= done < N  # killed mid-run, with whole problems committed
    with sqlite3.connect(files["store"]) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()

    resume = ["eval", "--resume", run_id, "--store", str(files["store"]), "--json"]
    resumed = spawn([*resume, "--backend", "scripted", "--script", str(files["script"])])
    whole = spawn(eval_args(files, "--concurrency", "2", "--json", store=tmp_path / "whole.sqlite"))
    outputs = [p.communicate(timeout=120) for p in (resumed, whole)]
    assert [p.returncode for p in (resumed, whole)] == [0, 0], outputs
    a, b = (json.loads(out) for out, _ in outputs)
    assert a["run_id"] == run_id and a["status"] == "complete"
    for key in ("n_problems", "n_correct", "accuracy", "usage", "pass_at_k", "maj_at_k", "weighted_at_k"):
        assert a[key] == b[key], key
    with sqlite3.connect(files["store"]) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT idx) FROM problems").fetchone() == (N, N)
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone() == (N * 3,)


def test_ctrl_c_says_how_to_resume(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_eval, "run_eval", interrupted)
    result = runner.invoke(cli.app, eval_args(files))
    assert result.exit_code == 130
    with sqlite3.connect(files["store"]) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
    assert f"ttscale eval --resume {run_id}" in result.stderr and "interrupted" in result.stderr


def test_resume_accepts_the_dataset_by_a_relative_path(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = json.loads(runner.invoke(cli.app, eval_args(files, "--json", "--limit", "2")).stdout)
    monkeypatch.chdir(files["data"].parent)
    store = ["--store", str(files["store"]), "--script", str(files["script"])]
    same = runner.invoke(cli.app, ["eval", "--resume", first["run_id"], *store, "-d", "jsonl:data.jsonl"])
    assert same.exit_code == 0, same.output  # recorded as an absolute path: the same file
    other = files["data"].parent / "other.jsonl"
    other.write_text(files["data"].read_text(encoding="utf-8"), encoding="utf-8")
    moved = runner.invoke(cli.app, ["eval", "--resume", first["run_id"], *store, "-d", "jsonl:other.jsonl"])
    assert moved.exit_code == 2 and "other.jsonl" in moved.output


def test_an_empty_slice_says_how_large_the_dataset_is(files: dict[str, Path], no_model: list[Any]) -> None:
    line = one_error_line(runner.invoke(cli.app, eval_args(files, "--offset", str(N + 5))))
    assert f"--offset {N + 5} is past the end of" in line and f"which has {N} problems" in line
    assert no_model == []
