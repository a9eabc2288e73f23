"""``ttscale bench``: benchmark commands. Each prints one JSON object last (``--json``) or a table."""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(
    help="Measure the engine: batched throughput and prefix-cache savings.", no_args_is_help=True
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog name or path to a .gguf file.")]


def _resolve(model: str) -> tuple[object, str]:
    from pathlib import Path

    from ..models import resolve

    return resolve(model), (Path(model).stem if model.endswith(".gguf") else model)


@app.command("engine")
def engine(
    model: ModelOpt = "qwen2.5-coder-0.5b-instruct",
    n: Annotated[str, typer.Option(help="Comma-separated sample counts.")] = "1,4,8,16",
    tokens: Annotated[int, typer.Option(help="Tokens generated per sample.")] = 128,
    repeats: Annotated[int, typer.Option(help="Alternating runs per n; the median is reported.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Aggregate decode tokens/s for n samples of one prompt, engine next to a raw llama_decode loop."""
    from pathlib import Path

    from .engine_bench import run

    path, name = _resolve(model)
    result = run(Path(str(path)), name, [int(x) for x in n.split(",")], tokens, repeats)
    if not as_json:
        from rich.console import Console
        from rich.table import Table

        table = Table("n", "engine tok/s", "raw tok/s", "engine/raw", "engine prefill s", "raw prefill s")
        for r in result["rows"]:
            table.add_row(
                str(r["n"]),
                str(r["engine"]["tok_s"]),
                str(r["raw"]["tok_s"]),
                str(r["engine_vs_raw"]),
                str(r["engine"]["prefill_s"]),
                str(r["raw"]["prefill_s"]),
            )
        Console(stderr=True).print(table)
    typer.echo(json.dumps(result))


@app.command("prefix")
def prefix(
    model: ModelOpt = "qwen2.5-coder-0.5b-instruct",
    steps: Annotated[int, typer.Option(help="Continuation steps.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Prompt tokens computed for a step-by-step continuation, with and without the prefix cache."""
    from pathlib import Path

    from .prefix_bench import run

    path, name = _resolve(model)
    result = run(Path(str(path)), name, steps)
    if not as_json:
        typer.echo(
            f"with cache: {result['with_cache']['computed']} prompt tokens computed; "
            f"without: {result['without_cache']['computed']}; saving {result['prefill_saving']}x",
            err=True,
        )
    typer.echo(json.dumps(result))
