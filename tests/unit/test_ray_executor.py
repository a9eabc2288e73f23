"""``ttscale eval --executor ray`` on a real local Ray cluster (2 CPUs, started once for this module).

The CLI runs in-process, so it finds Ray initialised and uses that cluster: each run starts its own actors
(one scripted generator each) but not a new cluster.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import ray
from typer.testing import CliRunner

from ttscale import cli, cli_eval
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.cli import Backend, open_generator
from ttscale.errors import ConfigError, WorkerLost
from ttscale.evals.datasets import load
from ttscale.evals.executors import RayExecutor
from ttscale.evals.runner import EvalConfig, Progress, run_eval, versions
from ttscale.evals.store import RunStore

runner = CliRunner()
N = 8
RESPONSE = "Counting carefully. The answer is \\boxed{3}."
SUMMARY_KEYS = ("n_problems", "n_correct", "accuracy", "usage", "pass_at_k", "maj_at_k", "weighted_at_k")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """N problems with gold i % 4 + 1 (RESPONSE is right for q2 and q6) and a one-response script."""
    data = tmp_path / "data.jsonl"
    rows = [{"id": f"q{i}", "question": f"Problem {i}: count to {i % 4 + 1}." + " ok" * i, "answer": str(i % 4 + 1)}
            for i in range(N)]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([RESPONSE]), encoding="utf-8")
    return {"data": data, "script": script}


def eval_args(files: dict[str, Path], store: Path, *extra: str) -> list[str]:
    return [
        "eval", "--backend", "scripted", "--script", str(files["script"]), "--store", str(store),
        "--dataset", f"jsonl:{files['data']}", "--strategy", "self_consistency", "-p", "n=3", "--seed", "7",
        "--json", *extra,
    ]  # fmt: skip


def evaluate(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def rows(store: Path) -> list[tuple[Any, ...]]:
    """Each stored problem's outcome (everything but timings), in dataset order."""
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) = COUNT(DISTINCT idx) FROM problems").fetchone() == (1,)
        query = (
            "SELECT p.idx, p.problem_id, p.seed, p.answer, p.correct, p.completion_tokens, p.flops, "
            "(SELECT group_concat(s.answer || ':' || s.tokens) FROM samples s "
            "WHERE s.run_id = p.run_id AND s.idx = p.idx) FROM problems p ORDER BY p.idx"
        )
        return conn.execute(query).fetchall()


def one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_a_ray_run_stores_every_problem_once_with_the_local_numbers(
    cluster: None, files: dict[str, Path], tmp_path: Path
) -> None:
    local = evaluate(eval_args(files, tmp_path / "local.sqlite", "--concurrency", "2"))
    result = runner.invoke(cli.app, eval_args(files, tmp_path / "ray.sqlite", "-c", "3", "--executor", "ray"))
    assert result.exit_code == 0, result.output
    assert "note: 2 Ray workers, one per CPU of the cluster (asked for 3)" in result.stderr
    remote = json.loads(result.stdout)
    assert remote["status"] == "complete" and remote["n_problems"] == N
    assert remote["accuracy"] == pytest.approx(2 / N)  # gold 3 at i = 2, 6
    assert {k: remote[k] for k in SUMMARY_KEYS} == {k: local[k] for k in SUMMARY_KEYS}
    assert len(rows(tmp_path / "ray.sqlite")) == N
    assert rows(tmp_path / "ray.sqlite") == rows(tmp_path / "local.sqlite")  # same seeds, answers, samples
    shown = evaluate(["runs", "show", remote["run_id"], "--store", str(tmp_path / "ray.sqlite"), "--json"])
    assert shown["versions"]["model"] == "scripted"  # versions reported by a worker's generator


def test_an_interrupted_run_resumes_on_ray_without_redoing_problems(
    cluster: None, files: dict[str, Path], tmp_path: Path
) -> None:
    store_path = tmp_path / "runs.sqlite"
    config = EvalConfig(
        f"jsonl:{files['data']}", "scripted", "self_consistency", {"n": "3"}, seed=7, concurrency=2,
        backend="scripted",
    )  # fmt: skip
    examples = load(config.dataset)
    executor = RayExecutor(partial(open_generator, Backend.scripted, "scripted", files["script"]), 2)

    def stop_after_three(p: Progress) -> None:
        if p.done == 3:
            raise KeyboardInterrupt

    with RunStore.open(store_path) as store:
        try:
            run_id = store.create_run(config.to_dict(), executor.start(), N)
            actors = list(executor._actors)
            with pytest.raises(KeyboardInterrupt):
                run_eval(store, run_id, config, examples, executor, on_progress=stop_after_three)
        finally:
            executor.close()
        assert store.run(run_id).status == "incomplete"
        first = {r.index: r for r in store.problems(run_id)}
    assert len(first) == 3
    for actor in actors:  # close() killed the workers, abandoning the problem in flight
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.versions.remote(), timeout=60)

    resume = ["eval", "--resume", run_id, "--store", str(store_path), "--json", "--executor", "ray"]
    resumed = evaluate([*resume, "--backend", "scripted", "--script", str(files["script"])])
    whole = evaluate(eval_args(files, tmp_path / "whole.sqlite"))
    assert resumed["run_id"] == run_id and resumed["status"] == "complete"
    assert {k: resumed[k] for k in SUMMARY_KEYS} == {k: whole[k] for k in SUMMARY_KEYS}
    assert rows(store_path) == rows(tmp_path / "whole.sqlite")  # all N, each once
    with RunStore.open(store_path, write=False) as store:
        again = {r.index: r for r in store.problems(run_id)}
    assert all(again[i] == first[i] for i in first)  # the recorded problems were not solved again


def test_a_worker_that_cannot_open_its_generator_fails_in_one_line(
    cluster: None, files: dict[str, Path], tmp_path: Path
) -> None:
    store = tmp_path / "runs.sqlite"
    args = eval_args(files, store, "--executor", "ray")
    args[args.index("--script") + 1] = str(tmp_path / "missing.json")
    line = one_error_line(runner.invoke(cli.app, args))
    assert "cannot read script" in line and "missing.json" in line  # the worker's own error, unwrapped
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)  # no run was started


def test_the_ray_executor_matches_the_thread_pool_through_the_library(
    cluster: None, files: dict[str, Path], tmp_path: Path
) -> None:
    config = EvalConfig(f"jsonl:{files['data']}", "scripted", "cot", seed=3, backend="scripted")
    examples = load(config.dataset)
    with RunStore.open(tmp_path / "local.sqlite") as store:
        generator = ScriptedGenerator([RESPONSE])
        run_id = store.create_run(config.to_dict(), versions(generator), N)
        run_eval(store, run_id, config, examples, generator)  # a bare generator: the thread pool
    executor = RayExecutor(partial(open_generator, Backend.scripted, "scripted", files["script"]), 3)
    with RunStore.open(tmp_path / "ray.sqlite") as store:
        try:
            run_id = store.create_run(config.to_dict(), executor.start(), N)
            assert executor.width == 2  # three workers asked for, two CPUs in the cluster
            run_eval(store, run_id, config, examples, executor)
        finally:
            executor.close()
        assert store.run(run_id).status == "complete"
    assert len(rows(tmp_path / "ray.sqlite")) == N
    assert rows(tmp_path / "ray.sqlite") == rows(tmp_path / "local.sqlite")


def test_missing_ray_is_a_named_error_before_any_model(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_eval, "open_generator", lambda *a, **k: pytest.fail("a model was loaded"))
    wrong = one_error_line(
        runner.invoke(cli.app, eval_args(files, tmp_path / "a.sqlite", "--ray-address", "h:1"))
    )
    assert "--ray-address needs --executor ray" in wrong
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    with pytest.raises(ConfigError, match=r"pip install 'ttscale\[ray\]'"):
        RayExecutor(partial(open_generator, Backend.scripted, "scripted", files["script"]), 1)
    line = one_error_line(
        runner.invoke(cli.app, eval_args(files, tmp_path / "b.sqlite", "--executor", "ray"))
    )
    assert "pip install 'ttscale[ray]'" in line


def test_an_address_where_no_cluster_listens_is_refused_at_once(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_eval, "open_generator", lambda *a, **k: pytest.fail("a model was loaded"))
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    args = eval_args(files, tmp_path / "runs.sqlite", "--executor", "ray", "--ray-address", address)
    line = one_error_line(runner.invoke(cli.app, args))
    assert f"no Ray cluster answers at {address}" in line and "ray start --head" in line


def _dying_factory(marker: Path | None) -> Any:
    """A factory whose generator kills its worker process on generating: once if ``marker`` names a file
    to leave behind (the restarted worker then answers), always if it is None."""

    def factory() -> ScriptedGenerator:
        def respond(prompt: Any, k: int) -> str:
            if marker is None or not marker.exists():
                if marker is not None:
                    marker.write_text("died once", encoding="utf-8")
                os._exit(1)  # what an out-of-memory kill or a crash in native code looks like
            return RESPONSE

        return ScriptedGenerator(respond)

    return factory


def _run_on(executor: RayExecutor, files: dict[str, Path], store_path: Path) -> tuple[RunStore, str]:
    config = EvalConfig(f"jsonl:{files['data']}", "scripted", "cot", seed=3, backend="scripted", limit=2)
    examples = load(config.dataset, limit=2)
    store = RunStore.open(store_path)
    run_id = store.create_run(config.to_dict(), executor.start(), len(examples))
    try:
        run_eval(store, run_id, config, examples, executor)
    finally:
        executor.close()
    return store, run_id


def test_a_worker_that_dies_is_restarted_and_its_problem_tried_again(
    cluster: None, files: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    store, run_id = _run_on(RayExecutor(_dying_factory(marker), 1), files, tmp_path / "runs.sqlite")
    with store:
        assert marker.exists()  # it did die once
        assert store.run(run_id).status == "complete" and store.run(run_id).n_done == 2


def test_a_worker_that_keeps_dying_stops_the_run_with_a_named_error(
    cluster: None, files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(WorkerLost, match=r"a Ray worker was lost \(.*\) after 2 restarts"):
        _run_on(RayExecutor(_dying_factory(None), 1), files, tmp_path / "runs.sqlite")
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        (run,) = store.runs()
        assert run.n_done == 0 and run.status == "incomplete"  # nothing recorded: resumable


def test_workers_that_cannot_start_in_time_are_a_named_error(
    cluster: None, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow() -> ScriptedGenerator:
        import time

        time.sleep(30)
        return ScriptedGenerator([RESPONSE])

    executor = RayExecutor(slow, 1)
    monkeypatch.setattr(executor, "START_SECONDS", 0.5)
    try:
        with pytest.raises(WorkerLost, match=r"did not start within 0.5 s: each needs one free CPU"):
            executor.start()
    finally:
        executor.close()
