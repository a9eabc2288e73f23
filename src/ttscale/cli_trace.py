"""``ttscale trace view FILE.json [-o FILE.html]``: a trace file as a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import TraceFileError
from .viewer import read_trace, render_trace_html
from .viewer.trace_file import check_writable, write_text_atomic

app = typer.Typer(help="Look at what a strategy did.", no_args_is_help=True)


@app.command("view")
def view_command(
    trace: Annotated[Path, typer.Argument(help="A trace file written by `ttscale solve --trace`.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file to write (default: next to the trace).")
    ] = None,
) -> None:
    """Write an offline HTML page: the search tree (collapsible, chosen path highlighted) and the samples."""
    from .cli import _errors, _stderr  # cli mounts this module, so import it only when a command runs

    with _errors():
        out = output or trace.with_suffix(".html")
        if out.resolve() == trace.resolve():  # the page would replace the trace it is made from
            raise TraceFileError(f"the page would overwrite the trace {trace}; name another file with -o")
        check_writable(out, "the page")
        doc = read_trace(trace)
        write_text_atomic(out, render_trace_html(doc))
        nodes = sum(1 for e in doc["trace"] if e["kind"] == "node")
        _stderr().print(f"wrote {out} ({nodes} tree nodes, {len(doc['trace'])} events)")
