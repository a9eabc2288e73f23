"""``ttscale report --store FILE [--runs A,B] -o report.html``: stored runs as one offline HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    store: Annotated[
        Path | None, typer.Option("--store", help="Run store (default $TTSCALE_HOME/runs.sqlite).")
    ] = None,
    runs: Annotated[
        str | None, typer.Option("--runs", help="Comma-separated run ids (default: every run with results).")
    ] = None,
    traces: Annotated[
        bool,
        typer.Option("--traces/--no-traces", help="Write a trace page per problem, linked from the report."),
    ] = True,
    bins: Annotated[
        str,
        typer.Option(
            help="Difficulty bins: oracle (pass@1 over a run's samples) or predicted (no answer key)."
        ),
    ] = "oracle",
) -> None:
    """Plots and tables of stored runs: accuracy against FLOPs, difficulty bins, FLOPs-matched comparison."""
    from .cli import _errors, _stderr  # cli mounts this module: import it only when the command runs
    from .evals.report import build_report
    from .evals.store import RunStore

    with _errors():
        chosen = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
        with RunStore.open(store, write=False) as opened:
            build_report(opened, chosen, output, traces=traces, bins=bins)
        _stderr().print(f"wrote {output}")
