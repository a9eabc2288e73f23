"""The SQLite run store: round trips, atomic problems, schema versions and early failures."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ttscale.errors import StoreError
from ttscale.evals import store as store_module
from ttscale.evals.records import ProblemRecord, SampleRecord
from ttscale.evals.store import SCHEMA_VERSION, RunStore, default_store_path
from ttscale.types import ModelUsage

CONFIG = {"dataset": "gsm8k", "strategy": "cot", "params": {"max_tokens": "32"}, "seed": 0}
VERSIONS = {"ttscale": "0.1.0", "model_sha256": "ab" * 32}


def record(index: int, correct: bool = True, n_samples: int = 2, **extra: Any) -> ProblemRecord:
    samples = tuple(
        SampleRecord(
            i, f"sample {i} text", 7, "18", correct, 0, weight=0.5, score=None, confidence=1.5, data={"i": i}
        )
        for i in range(n_samples)
    )
    usage = ModelUsage(1, 40, 8, 14, 3, 2.5e9)
    trace = {"trace": [{"kind": "sample", "text": "..."}], "answer": "18"}
    return ProblemRecord(
        index, f"p{index}", "number", 100 + index, "18", "18", correct, usage, 0.25, None, trace, samples, **extra
    )  # fmt: skip


def test_problems_round_trip_with_samples_and_trace(tmp_path: Path) -> None:
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(CONFIG, VERSIONS, n_planned=3)
        written = [record(2, correct=False), record(0)]
        for r in written:
            store.add_problem(run_id, r, wall_seconds=4.0)
        assert store.problems(run_id) == sorted(written, key=lambda r: r.index)  # dataset order
        assert store.problem_ids(run_id) == {0: "p0", 2: "p2"}
        info = store.run(run_id)
        assert (info.n_planned, info.n_done, info.n_correct, info.status) == (3, 2, 1, "incomplete")
        assert info.config == CONFIG and info.versions == VERSIONS
        assert info.wall_seconds == 4.0
        store.set_status(run_id, "complete")
        assert store.runs()[0].status == "complete"


def test_a_problem_cannot_be_recorded_twice(tmp_path: Path) -> None:
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(CONFIG, VERSIONS, n_planned=1)
        store.add_problem(run_id, record(0), wall_seconds=1.0)
        with pytest.raises(StoreError, match="problem #0 of run .* is already recorded: another process"):
            store.add_problem(run_id, record(0, correct=False), wall_seconds=2.0)
        assert store.problems(run_id) == [record(0)]
        assert store.run(run_id).wall_seconds == 1.0  # the failed transaction changed nothing


def test_a_second_writer_or_a_deleted_run_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as first, RunStore.open(path) as second:
        run_id = first.create_run(CONFIG, VERSIONS, n_planned=2)
        first.add_problem(run_id, record(0), wall_seconds=1.0)
        with pytest.raises(StoreError, match="another process is writing to this run"):
            second.add_problem(run_id, record(0), wall_seconds=1.0)  # two resumes of one run
        second.delete_run(run_id)
        with pytest.raises(StoreError, match=f"run {run_id} is no longer in .*: it was deleted"):
            first.add_problem(run_id, record(1), wall_seconds=2.0)


def test_a_problem_is_committed_whole_or_not_at_all(tmp_path: Path) -> None:
    broken = record(0)
    twice = (*broken.samples, broken.samples[0])  # a duplicate sample key fails the last insert
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(CONFIG, VERSIONS, n_planned=1)
        with pytest.raises(sqlite3.IntegrityError):
            store.add_problem(run_id, ProblemRecord(**{**vars(broken), "samples": twice}), wall_seconds=1.0)
        assert store.problems(run_id) == []
        conn = sqlite3.connect(store.path)
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone() == (0,)


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert "last_opened" in meta  # the probe row written before any compute


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    for write in (True, False):
        with pytest.raises(StoreError, match=r"schema version '99'.*reads version 1") as info:
            RunStore.open(path, write=write)
        assert str(path) in str(info.value)


def test_files_that_are_not_run_stores_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("these are not the tables you are looking for " * 100)
    with pytest.raises(StoreError, match="cannot use run store"):
        RunStore.open(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a ttscale run store"):
        RunStore.open(other)
    with sqlite3.connect(other) as conn:  # refused without a change: not even switched to WAL
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_an_unwritable_path_fails_at_open_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = blocker / "runs.sqlite"  # its parent is a file: no folder can be made (even as root)
    with pytest.raises(StoreError, match="cannot use run store") as info:
        RunStore.open(path)
    assert str(path) in str(info.value)


def test_a_nearly_full_disk_fails_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Usage:
        free = 1024 * 1024

    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda _path: Usage())
    with pytest.raises(StoreError, match=r"only 1\.0 MiB free") as info:
        RunStore.open(tmp_path / "runs.sqlite")
    assert str(tmp_path / "runs.sqlite") in str(info.value)


def test_a_write_failure_mid_run_is_a_store_error(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "runs.sqlite")
    run_id = store.create_run(CONFIG, VERSIONS, n_planned=2)
    store._conn.execute("PRAGMA query_only = ON")  # stands in for a disk that filled up
    with pytest.raises(StoreError, match="cannot write run store"):
        store.add_problem(run_id, record(0), wall_seconds=1.0)
    store.close()


def test_reading_a_missing_store_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sqlite"
    with pytest.raises(StoreError, match="no run store at"):
        RunStore.open(path, write=False)
    assert not path.exists()


def test_runs_are_found_by_unique_prefix(tmp_path: Path) -> None:
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        first = store.create_run(CONFIG, VERSIONS, 1)
        second = store.create_run(CONFIG, VERSIONS, 1)
        assert store.run(first).run_id == first
        common = len(os.path.commonprefix([first, second]))
        assert store.run(second[: common + 1]).run_id == second
        with pytest.raises(StoreError, match="no run 'nope'"):
            store.run("nope")
        with pytest.raises(StoreError, match="ambiguous"):
            store.run(first[:4])  # both ids start with the year
        assert [r.run_id for r in store.runs()] == [first, second]  # oldest first


def test_default_path_follows_ttscale_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "runs.sqlite"
    monkeypatch.delenv("TTSCALE_HOME")
    assert default_store_path() == Path.home() / ".cache" / "ttscale" / "runs.sqlite"
