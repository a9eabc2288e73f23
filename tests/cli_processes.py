"""``ttscale`` as a separate process, for tests that kill it (SIGKILL cannot be sent to a CliRunner)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import ttscale


def spawn(args: list[str]) -> subprocess.Popen[str]:
    """``python -m ttscale.cli ARGS`` on the ttscale under test, wherever it is installed."""
    env = dict(os.environ)
    src = str(Path(ttscale.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "ttscale.cli", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored(path: Path) -> int:
    """Problems committed to the run store at ``path`` so far (0 before it exists)."""
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM problems").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet
