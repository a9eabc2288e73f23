"""``ttscale models``: list, pull, locate and verify the GGUF models in the model store.

The main CLI mounts this with ``app.add_typer(cli_models.app, name="models")``. Errors ttscale raises on
purpose are printed as one red line on stderr with exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import TTScaleError
from .models import store

app = typer.Typer(
    help="Fetch, list, locate and verify the GGUF models ttscale runs (a SHA-256 checked store).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Catalog name, e.g. qwen2.5-coder-0.5b-instruct.")]


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Turn a ttscale error into one red stderr line and exit code 2 (usage-level failure)."""
    try:
        yield
    except TTScaleError as exc:
        # soft_wrap: the message stays one line however narrow the terminal.
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=2) from None


def _human(n: int) -> str:
    """Bytes as a short decimal size (MB/GB, as model cards state them)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@app.command("list")
def list_cmd() -> None:
    """Show every catalog model: default marker, whether it is present, size and path."""
    with _friendly_errors():
        statuses = store.list_models()
    table = Table(title=f"models in {store.default_root()}")
    table.add_column("name", no_wrap=True)
    table.add_column("default", justify="center")
    table.add_column("present", justify="center")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("path", overflow="fold")
    for s in statuses:
        present = "[green]yes[/green]" if s.present else "[dim]no[/dim]"
        table.add_row(s.name, "*" if s.default else "", present, _human(s.size), str(s.path))
    Console().print(table)


@app.command("pull")
def pull_cmd(
    name: NameArg,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if the model is present.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Fetch a model (sources tried in order), verify its SHA-256 and print its path."""
    with _friendly_errors():
        path = store.pull(name, progress=not quiet, force=force)
    typer.echo(str(path))


@app.command("path")
def path_cmd(name: NameArg) -> None:
    """Print only the path of a present model (fails if it is not pulled yet)."""
    with _friendly_errors():
        path = store.model_path(name)
    typer.echo(str(path))


@app.command("verify")
def verify_cmd(name: NameArg) -> None:
    """Recompute a present model's SHA-256 and compare it with the catalog."""
    with _friendly_errors():
        path = store.verify(name, progress=True)
    typer.echo(f"ok {path}")
