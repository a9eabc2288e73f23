"""The run store: one SQLite file (standard library ``sqlite3``, WAL mode) holding every evaluation run.

Default path: ``$TTSCALE_HOME/runs.sqlite`` when ``TTSCALE_HOME`` is set, else ``~/.cache/ttscale/runs.sqlite``.

Schema (version :data:`SCHEMA_VERSION`, kept in ``meta``; a store of another version is refused)::

    meta(key PRIMARY KEY, value)                       schema_version, created_by, last_opened
    runs(run_id PRIMARY KEY, created_at, status, n_planned, wall_seconds, config_json, versions_json)
    problems(run_id, idx, problem_id, kind, seed, answer, gold, correct, calls, prompt_tokens,
             cached_prompt_tokens, completion_tokens, reasoning_tokens, flops, latency_seconds, error,
             result_json, finished_at,                 PRIMARY KEY (run_id, idx))
    samples(run_id, idx, sample, text, tokens, answer, correct, grp, weight, score, confidence, data_json,
            PRIMARY KEY (run_id, idx, sample), FOREIGN KEY (run_id, idx) -> problems)

``idx`` is the problem's position in the dataset; the primary key makes it impossible to record a problem
twice. A problem, its samples and the run's wall clock are committed in one transaction, so a run killed
at any moment holds only whole problems and can be resumed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..types import ModelUsage
from .records import ProblemRecord, RunInfo, SampleRecord

SCHEMA_VERSION = 1
"""Bumped whenever the tables change in a way an older reader would misread."""
MIN_FREE_BYTES = 64 * 1024 * 1024
"""Refuse to start a run with less free disk than this next to the store (a trace can be ~100 kB)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, created_at REAL NOT NULL, status TEXT NOT NULL, n_planned INTEGER NOT NULL,
  wall_seconds REAL NOT NULL DEFAULT 0, config_json TEXT NOT NULL, versions_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS problems (
  run_id TEXT NOT NULL REFERENCES runs(run_id), idx INTEGER NOT NULL, problem_id TEXT NOT NULL,
  kind TEXT NOT NULL, seed INTEGER, answer TEXT, gold TEXT NOT NULL, correct INTEGER NOT NULL,
  calls INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, cached_prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, flops REAL NOT NULL,
  latency_seconds REAL NOT NULL, error TEXT, result_json TEXT NOT NULL, finished_at REAL NOT NULL,
  PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS samples (
  run_id TEXT NOT NULL, idx INTEGER NOT NULL, sample INTEGER NOT NULL, text TEXT NOT NULL, tokens INTEGER,
  answer TEXT, correct INTEGER NOT NULL, grp INTEGER, weight REAL, score REAL, confidence REAL,
  data_json TEXT NOT NULL, PRIMARY KEY (run_id, idx, sample),
  FOREIGN KEY (run_id, idx) REFERENCES problems(run_id, idx));
"""

_USAGE_COLUMNS = "calls, prompt_tokens, cached_prompt_tokens, completion_tokens, reasoning_tokens, flops"


def default_store_path() -> Path:
    """``$TTSCALE_HOME/runs.sqlite`` if ``TTSCALE_HOME`` is set, else ``~/.cache/ttscale/runs.sqlite``."""
    from ..models.store import HOME_ENV

    home = os.environ.get(HOME_ENV)
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "ttscale"
    return base / "runs.sqlite"


class RunStore:
    """A handle on one run store file. Not shared between threads: the eval runner writes from one."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path | None = None, *, write: bool = True) -> RunStore:
        """Open (``write``: create) the store and prove it usable before any compute is spent.

        Writing mode creates the folder and schema, writes a probe row and checks the free disk space;
        reading mode refuses a missing file. Either way a store of another schema version is refused.
        """
        path = (path or default_store_path()).expanduser()
        if not write and not path.is_file():
            raise StoreError(f"no run store at {path}: `ttscale eval` creates it (or pass --store FILE)")
        conn: sqlite3.Connection | None = None
        try:
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)  # we BEGIN/COMMIT ourselves
            store = cls(path, conn)
            store._prepare(write)
            if write:
                store._check_space()
            return store
        except (OSError, sqlite3.Error) as e:
            if conn is not None:
                conn.close()
            raise StoreError(
                f"cannot use run store {path}: {e}; pass --store FILE or set TTSCALE_HOME"
            ) from None
        except StoreError:
            if conn is not None:
                conn.close()
            raise

    def _prepare(self, write: bool) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables or not write:  # refuse another file before changing anything in it (its journal mode)
            if "meta" not in tables:
                raise StoreError(f"{self.path} is not a ttscale run store (it has no meta table)")
            self._check_version()
        if write:
            # WAL: readers (`ttscale runs list`) never block the writer; NORMAL sync keeps every committed
            # problem across a killed process (only an OS crash may lose the last few)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        if not tables and write:
            from .. import __version__

            with self._transaction():
                # one statement at a time: executescript() would commit the open transaction first
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._conn.execute(statement)
                self._set_meta("schema_version", str(SCHEMA_VERSION))
                self._set_meta("created_by", f"ttscale {__version__}")
        if write:
            with self._transaction():
                self._set_meta("last_opened", str(time.time()))  # the probe: a real write

    def _check_version(self) -> None:
        rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if rows.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreError(
                f"run store {self.path} has schema version {rows.get('schema_version')!r} (written by "
                f"{rows.get('created_by', 'an unknown version')}); this ttscale reads version "
                f"{SCHEMA_VERSION}. Use another --store FILE, or the ttscale version that wrote it."
            )

    def _check_space(self) -> None:
        free = shutil.disk_usage(self.path.parent).free
        if free < MIN_FREE_BYTES:
            raise StoreError(
                f"only {free / 2**20:.1f} MiB free next to run store {self.path} (at least "
                f"{MIN_FREE_BYTES // 2**20} MiB needed): free some space or pass --store FILE elsewhere"
            )

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # some errors (disk full) already rolled it back
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------

    def create_run(self, config: Mapping[str, Any], versions: Mapping[str, Any], n_planned: int) -> str:
        """Record a new run and return its id (UTC time of creation plus random hex: sortable, unique)."""
        run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        with self._writing(), self._transaction():
            self._conn.execute(
                "INSERT INTO runs (run_id, created_at, status, n_planned, config_json, versions_json) "
                "VALUES (?, ?, 'incomplete', ?, ?, ?)",
                (run_id, time.time(), n_planned, json.dumps(dict(config)), json.dumps(dict(versions))),
            )
        return run_id

    def add_problem(self, run_id: str, record: ProblemRecord, wall_seconds: float) -> None:
        """Commit one problem with its samples and the run's elapsed time, all or nothing."""
        u = record.usage
        row = (run_id, record.index, record.problem_id, record.kind, record.seed, record.answer, record.gold)
        usage = (u.calls, u.prompt_tokens, u.cached_prompt_tokens, u.completion_tokens, u.reasoning_tokens)
        tail = (u.flops, record.latency_seconds, record.error, json.dumps(dict(record.result)), time.time())
        try:
            self._insert_problem(run_id, record, row, usage, tail, wall_seconds)
        except sqlite3.IntegrityError:
            self._explain_conflict(run_id, record.index)
            raise  # neither: a duplicate sample, a bug in the caller

    def _explain_conflict(self, run_id: str, index: int) -> None:
        """Raise a StoreError if another process deleted the run or recorded the problem first."""
        if self._conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise StoreError(
                f"run {run_id} is no longer in {self.path}: it was deleted while this evaluation wrote to it "
                "(ttscale runs delete); start a new run"
            ) from None
        taken = "SELECT 1 FROM problems WHERE run_id = ? AND idx = ?"
        if self._conn.execute(taken, (run_id, index)).fetchone() is not None:
            raise StoreError(
                f"problem #{index} of run {run_id} is already recorded: another process is writing to this "
                "run (two `ttscale eval --resume` of it, or two identical sweeps), or it was solved twice; "
                f"let one finish, then `ttscale eval --resume {run_id}` solves whatever is left"
            ) from None

    def _insert_problem(
        self,
        run_id: str,
        record: ProblemRecord,
        row: tuple[Any, ...],
        usage: tuple[int, ...],
        tail: tuple[Any, ...],
        wall_seconds: float,
    ) -> None:
        with self._writing(), self._transaction():
            self._conn.execute(
                f"INSERT INTO problems (run_id, idx, problem_id, kind, seed, answer, gold, correct, "
                f"{_USAGE_COLUMNS}, latency_seconds, error, result_json, finished_at) "
                f"VALUES ({', '.join('?' * 18)})",
                (*row, int(record.correct), *usage, *tail),
            )
            self._conn.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, record.index, *_sample_row(s)) for s in record.samples],
            )
            self._conn.execute("UPDATE runs SET wall_seconds = ? WHERE run_id = ?", (wall_seconds, run_id))

    def set_status(self, run_id: str, status: str) -> None:
        with self._writing(), self._transaction():
            self._conn.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def delete_run(self, run_id: str) -> int:
        """Remove the run and everything recorded for it, in one transaction; the problems it had."""
        with self._writing(), self._transaction():
            n = self._conn.execute("SELECT COUNT(*) FROM problems WHERE run_id = ?", (run_id,)).fetchone()[0]
            for table in ("samples", "problems", "runs"):  # children first: the foreign keys are enforced
                self._conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608
        return int(n)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write (disk full, file gone read-only) into a StoreError naming the file."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise  # a conflict: add_problem says whose, or it is a bug in the caller
        except sqlite3.Error as e:
            raise StoreError(f"cannot write run store {self.path}: {e}") from None

    # -- reading -------------------------------------------------------------------------------------

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return [self._info(r) for r in self._conn.execute(_RUNS_QUERY + " ORDER BY r.created_at, r.run_id")]

    def run(self, run_id: str) -> RunInfo:
        """The run ``run_id``, or the only run whose id starts with it."""
        rows = self._conn.execute(
            _RUNS_QUERY + " WHERE r.run_id = ? OR r.run_id LIKE ? ESCAPE '\\' ORDER BY r.run_id",
            (run_id, run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
        ).fetchall()
        exact = [r for r in rows if r[0] == run_id]
        if exact or len(rows) == 1:
            return self._info((exact or rows)[0])
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.path}; `ttscale runs list` shows the runs")
        raise StoreError(f"run id {run_id!r} is ambiguous in {self.path}: {', '.join(r[0] for r in rows)}")

    def problem_ids(self, run_id: str) -> dict[int, str]:
        """Dataset position to problem id, for the problems already recorded for ``run_id``."""
        query = "SELECT idx, problem_id FROM problems WHERE run_id = ?"
        return dict(self._conn.execute(query, (run_id,)).fetchall())

    def problems(self, run_id: str) -> list[ProblemRecord]:
        """The run's problems with their samples, in dataset order."""
        samples: dict[int, list[SampleRecord]] = {}
        for r in self._conn.execute(
            "SELECT idx, sample, text, tokens, answer, correct, grp, weight, score, confidence, data_json "
            "FROM samples WHERE run_id = ? ORDER BY idx, sample",
            (run_id,),
        ):
            record = SampleRecord(
                r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], r[9], json.loads(r[10])
            )
            samples.setdefault(r[0], []).append(record)
        query = (
            f"SELECT idx, problem_id, kind, seed, answer, gold, correct, {_USAGE_COLUMNS}, latency_seconds, "
            "error, result_json FROM problems WHERE run_id = ? ORDER BY idx"
        )
        return [_problem(r, tuple(samples.get(r[0], ()))) for r in self._conn.execute(query, (run_id,))]

    @staticmethod
    def _info(r: tuple[Any, ...]) -> RunInfo:
        return RunInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), json.loads(r[8]))


_RUNS_QUERY = (
    "SELECT r.run_id, r.created_at, r.status, r.n_planned, "
    "(SELECT COUNT(*) FROM problems p WHERE p.run_id = r.run_id), "
    "(SELECT COALESCE(SUM(p.correct), 0) FROM problems p WHERE p.run_id = r.run_id), "
    "r.wall_seconds, r.config_json, r.versions_json FROM runs r"
)


def _sample_row(s: SampleRecord) -> tuple[Any, ...]:
    correct = int(s.correct)
    return (
        s.index,
        s.text,
        s.tokens,
        s.answer,
        correct,
        s.group,
        s.weight,
        s.score,
        s.confidence,
        json.dumps(dict(s.data)),
    )


def _problem(r: tuple[Any, ...], samples: tuple[SampleRecord, ...]) -> ProblemRecord:
    usage = ModelUsage(r[7], r[8], r[9], r[10], r[11], r[12])
    return ProblemRecord(
        r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), usage, r[13], r[14], json.loads(r[15]), samples
    )
