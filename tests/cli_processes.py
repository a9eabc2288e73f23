"""``ttscale`` as a separate process, for tests that kill it (SIGKILL cannot be sent to a CliRunner)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import ttscale


def spawn(args: list[str]) -> subprocess.Popen[str]:
    """``python -m ttscale.cli ARGS`` on the ttscale under test, wherever it is installed."""
    env = dict(os.environ)
    src = str(Path(ttscale.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "ttscale.cli", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored(path: Path) -> int:
    """Problems committed to the run store at ``path`` so far (0 before it exists)."""
    try:  # read-only: must not create the file before the process under test does
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM problems").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def kill_after(proc: subprocess.Popen[str], store: Path, problems: int, deadline: float = 300) -> int:
    """SIGKILL ``proc`` once ``store`` holds ``problems`` problems; how many it held then.

    Fails, with the process's stderr, if the process ends by itself first or the deadline passes.
    """
    give_up = time.monotonic() + deadline
    while stored(store) < problems and proc.poll() is None and time.monotonic() < give_up:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"exited by itself ({proc.returncode}): {err}"
    return stored(store)
