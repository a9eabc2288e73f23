"""An evaluation on the real engine, killed with SIGKILL mid-run and resumed: the same samples as a run
that was never interrupted. On the scripted backend (tests/unit/test_eval_cli.py) the responses ignore
seeds, so only here can a resume that re-seeded a problem differently show up."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cli_processes import kill_after, spawn

pytestmark = pytest.mark.integration

SMALL = "smollm2-135m-instruct"
N = 6


def samples(path: Path) -> list[tuple[int, int, str, int]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT idx, sample, text, tokens FROM samples ORDER BY idx, sample").fetchall()
    return [tuple(r) for r in rows]


def test_a_real_run_killed_mid_way_resumes_to_the_samples_of_an_uninterrupted_run(
    small_path: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + {i + 3}?",
                                        "answer": str(2 * i + 3)}) + "\n" for i in range(N)))  # fmt: skip
    # one problem at a time, as the seeds are what must carry over (the engine's logits do not depend on
    # the batch or the cache here: docs/architecture.md, Reproducibility)
    args = ["eval", "-d", f"jsonl:{data}", "-m", SMALL, "-s", "self_consistency", "-p", "n=3",
            "-p", "max_tokens=48", "--seed", "7", "-c", "1", "--json"]  # fmt: skip
    killed_store, whole_store = tmp_path / "killed.sqlite", tmp_path / "whole.sqlite"
    first = spawn([*args, "--store", str(killed_store)])
    done = kill_after(first, killed_store, 2)
    assert 2 <= done < N  # killed mid-run, with whole problems committed
    with sqlite3.connect(killed_store) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()

    resumed = spawn(["eval", "--resume", run_id, "--store", str(killed_store), "--json"])
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    whole = spawn([*args, "--store", str(whole_store)])
    out_whole, err_whole = whole.communicate(timeout=600)
    assert whole.returncode == 0, err_whole

    a, b = json.loads(out), json.loads(out_whole)
    assert a["run_id"] == run_id and a["status"] == "complete"
    for key in ("n_problems", "n_correct", "accuracy", "maj_at_k", "pass_at_k"):
        assert a[key] == b[key], key
    assert a["usage"]["completion_tokens"] == b["usage"]["completion_tokens"]
    got, want = samples(killed_store), samples(whole_store)
    assert len(got) == N * 3
    assert len({text for _, _, text, _ in got}) > N  # the samples differ from each other
    assert got == want  # each problem drew what it would have drawn without the kill, none twice or lost
