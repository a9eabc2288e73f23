"""The trace file: one JSON object holding the problem, the result and every trace event of one solve.

Layout (``format`` and ``version`` first, so a reader can refuse what it does not understand)::

    {"format": "ttscale-trace", "version": 1, "question": "...", "problem_id": "...",
     "answer": ..., "strategy": ..., "model": ..., "usage": {...}, "candidates": [...],
     "trace": [{"kind": "node", "id": 0, ...}, {"kind": "choice", "path": [...]}, ...]}

The result part is exactly :meth:`ttscale.types.Result.to_dict`. Files are written atomically (a temporary
file in the same folder, then a rename), so an interrupted write never leaves half a trace.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ..errors import TraceFileError
from ..types import Problem, Result

TRACE_FORMAT = "ttscale-trace"
TRACE_VERSION = 1


def trace_document(problem: Problem, result: Result) -> dict[str, Any]:
    """The JSON object a trace file holds."""
    return {
        "format": TRACE_FORMAT,
        "version": TRACE_VERSION,
        "question": problem.question,
        "problem_id": problem.id,
        **result.to_dict(),
    }


def check_writable(path: Path, what: str = "the trace") -> None:
    """Fail before any compute is spent when ``path`` cannot be written (missing folder, no permission)."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise TraceFileError(f"cannot write {what} to {path}: it is a folder; give a file name")
    if not folder.is_dir():
        raise TraceFileError(f"cannot write {what} to {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise TraceFileError(f"cannot write {what} to {path}: folder {folder} is not writable")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    Not mkstemp: its 0600 mode would survive the rename, and a report or trace is written to be read by
    others (a web server, a colleague); created with 0666, the umask decides, as for any file.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        tmp = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise TraceFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_trace(path: Path, problem: Problem, result: Result) -> None:
    write_text_atomic(path, json.dumps(trace_document(problem, result), ensure_ascii=False, indent=1))


def read_trace(path: Path) -> dict[str, Any]:
    """Load and check a trace file; every failure names the file and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceFileError(
            f"no trace file at {path}; write one with `ttscale solve ... --trace {path}`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFileError(f"cannot read the trace file {path}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFileError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "was the file cut short?"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != TRACE_FORMAT:
        raise TraceFileError(
            f'{path} is not a ttscale trace (no "format": "{TRACE_FORMAT}"); '
            "write one with `ttscale solve ... --trace FILE.json`"
        )
    if doc.get("version") != TRACE_VERSION:
        raise TraceFileError(
            f"{path} is a trace of format version {doc.get('version')!r}; this ttscale reads version "
            f"{TRACE_VERSION}. Re-run the solve with this version to view it."
        )
    events = doc.get("trace")
    if not isinstance(events, list) or not all(isinstance(e, dict) and "kind" in e for e in events):
        raise TraceFileError(f'{path}: "trace" must be a list of events, each with a "kind"')
    return doc
