"""The ``ttscale`` command line: thin parsing over the library.

Commands: ``solve`` (one problem, one strategy, one budget), ``strategies`` (what exists and its
parameters), ``trace view`` (a trace file as an offline HTML page, in :mod:`ttscale.cli_trace`), ``eval`` and ``runs`` (benchmark runs and their store, in :mod:`ttscale.cli_eval`), and,
when their modules are installed, ``models`` (the model store) and ``bench``.

Conventions: results go to stdout (with ``--json``, exactly one JSON object and nothing else); progress
and errors go to stderr. A :class:`~ttscale.errors.TTScaleError` prints one red ``error: ...`` line and
exits with status 2; Ctrl-C closes the engine, prints ``interrupted`` and exits with status 130.
"""

from __future__ import annotations

import enum
import importlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .backends.base import Generator
from .compute import Budget
from .errors import ConfigError, TTScaleError
from .solve import solve
from .strategies import STRATEGIES, Strategy, build_strategy, strategy_params
from .types import Problem, Result
from .viewer.trace_file import check_writable, write_trace

app = typer.Typer(
    name="ttscale",
    help="Test-time compute scaling for language models, under a budget, with honest accounting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Backend(enum.StrEnum):
    llamacpp = "llamacpp"
    scripted = "scripted"


class AnswerKind(enum.StrEnum):
    math = "math"
    number = "number"
    game24 = "game24"
    text = "text"


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one red line and exit status 2, Ctrl-C into status 130."""
    try:
        yield
    except TTScaleError as e:
        _stderr().print(Text(f"error: {e}", style="red"))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        raise typer.Exit(130) from None


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``["n=4", "temperature=0.8"]`` to ``{"n": "4", "temperature": "0.8"}``; later keys win."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _load_script(path: Path | None) -> list[str]:
    if path is None:
        raise ConfigError("--backend scripted needs --script FILE (a JSON list of response strings)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read script {str(path)!r}: {e}") from None
    if not isinstance(data, list) or not data or not all(isinstance(s, str) for s in data):
        raise ConfigError(f"script {str(path)!r} must be a non-empty JSON list of strings")
    return data


def open_generator(
    backend: Backend, model: str | None, script: Path | None, delay: float = 0.0, slots: int | None = None
) -> Generator:
    """Build the generator for ``backend``; the llama.cpp engine is imported only here.

    ``delay`` (scripted only) makes each call sleep, so tests can interrupt a run mid-way. ``slots``
    (llama.cpp only) sizes the engine: sequences held at once, running or cached.
    """
    if backend is Backend.scripted:
        from .backends.scripted import ScriptedGenerator, ScriptedModel

        responses = _load_script(script)
        return ScriptedGenerator(responses, model=ScriptedModel(name=model or "scripted"), delay=delay)
    from .backends.llamacpp import LlamaCppGenerator
    from .models import DEFAULT_MODEL

    if slots is None:
        generator: Generator = LlamaCppGenerator.from_model(model or DEFAULT_MODEL)
    else:
        from .backends.llamacpp import ContextConfig

        generator = LlamaCppGenerator.from_model(model or DEFAULT_MODEL, ContextConfig(n_seq_max=slots))
    return generator


def _close(generator: Generator | None) -> None:
    close = getattr(generator, "close", None)
    if callable(close):
        close()


def _print_result(result: Result) -> None:
    out = _stdout()
    shown = ("(no answer)", "dim") if result.answer is None else (result.answer, "bold")
    out.print(Text.assemble("answer: ", shown))
    if result.confidence is not None:
        out.print(f"confidence: {result.confidence:.2f}")
    if result.candidates:
        table = Table("answer", "votes", "samples", title="candidates", title_justify="left")
        for c in result.candidates:
            table.add_row(Text(c.answer), f"{c.votes:g}", ", ".join(map(str, c.samples)))
        out.print(table)
    total = result.usage.total
    out.print(
        f"tokens: prompt {total.prompt_tokens} computed / {total.cached_prompt_tokens} cached / "
        f"completion {total.completion_tokens}"
    )
    out.print(f"FLOPs: {total.flops:.2e}")
    out.print(f"wall: {result.wall_seconds:.2f} s")


@app.command("solve")
def solve_command(
    question: Annotated[str, typer.Argument(help="The problem to solve.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name or GGUF path.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")] = "self_consistency",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable).")
    ] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Most tokens to process.")] = None,
    budget_flops: Annotated[float | None, typer.Option(help="Most FLOPs to spend.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (same as -p seed=S).")] = None,
    kind: Annotated[AnswerKind, typer.Option(help="How answers are compared.")] = AnswerKind.math,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
    backend: Annotated[Backend, typer.Option(help="Generation backend.")] = Backend.llamacpp,
    script: Annotated[
        Path | None, typer.Option(help="JSON list of responses, for --backend scripted (testing).")
    ] = None,
    trace: Annotated[
        Path | None,
        typer.Option(help="Write the full trace (every sample, node, score) to this JSON file."),
    ] = None,
) -> None:
    """Solve one problem with a test-time strategy and report the answer and what it cost."""
    with _errors():
        if not question.strip():
            raise ConfigError("the question is empty; pass the problem to solve as the first argument")
        if budget_tokens == 0 or budget_flops == 0:  # it could not pay for a single token
            raise ConfigError("a budget of 0 pays for nothing; give --budget-tokens / --budget-flops above 0")
        if trace is not None:
            check_writable(trace)  # before the model loads: a bad path must not cost a solve
        params = parse_params(param or [])
        if seed is not None:
            params.setdefault("seed", str(seed))
        chosen = build_strategy(strategy, params)  # fail on bad options before loading a model
        no_budget = budget_tokens is None and budget_flops is None
        budget = None if no_budget else Budget(budget_tokens, budget_flops)
        problem = Problem(question, answer_kind=kind.value)
        result = _run(problem, chosen, budget, lambda: open_generator(backend, model, script))
        if json_output:  # the answer first: a trace that fails to write must not lose what was computed
            payload: dict[str, Any] = result.to_dict()
            payload.update(model=result.model, strategy=result.strategy)
            typer.echo(json.dumps(payload, ensure_ascii=False))
        else:
            _print_result(result)
        if trace is not None:
            write_trace(trace, problem, result)
            _stderr().print(f"trace written to {trace}; view it with `ttscale trace view {trace}`")


def _run(
    problem: Problem, strategy: Strategy, budget: Budget | None, make: Callable[[], Generator]
) -> Result:
    """Open the generator, solve, and close the generator whatever happens."""
    generator: Generator | None = None
    try:
        with _stderr().status("loading the model") as status:
            generator = make()
            status.update(f"solving with {strategy.name} on {generator.model.name}")
            return solve(problem, strategy, generator=generator, budget=budget)
    finally:
        _close(generator)


@app.command("strategies")
def strategies_command() -> None:
    """List the strategies and their parameters."""
    # piped (to a file, grep, less), rich would squeeze four columns into 80 and wrap help one word a line
    out = _stdout() if sys.stdout.isatty() else Console(highlight=False, soft_wrap=True, width=160)
    with _errors():
        for name in STRATEGIES.names():
            cls = STRATEGIES.get(name)
            doc = (cls.__doc__ or "").replace("``", "").strip().splitlines()
            table = Table(title=f"{name}", caption=doc[0] if doc else None, title_justify="left")
            table.add_column("param", no_wrap=True, style="bold")
            table.add_column("type", no_wrap=True)
            table.add_column("default", no_wrap=True)
            table.add_column("help")
            for spec in strategy_params(cls):
                table.add_row(spec.name, spec.type, repr(spec.default), spec.help)
            out.print(table)


def _mount(module: str, name: str) -> None:
    """Add ``module.app`` as sub-command ``name`` if that module is installed."""
    try:
        sub = importlib.import_module(module)
    except ImportError:
        return
    app.add_typer(sub.app, name=name)


_mount("ttscale.cli_models", "models")
_mount("ttscale.bench.cli", "bench")
_mount("ttscale.cli_trace", "trace")


def _mount_eval() -> None:
    """``eval`` and ``runs`` live in cli_eval, which imports this module's helpers: mount them last."""
    from . import cli_eval, cli_report, cli_sweep

    app.command("eval")(cli_eval.eval_command)
    app.command("sweep")(cli_sweep.sweep_command)
    app.command("compare")(cli_sweep.compare_command)
    app.command("report")(cli_report.report_command)
    app.add_typer(cli_eval.runs_app, name="runs")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    # `python -m ttscale.cli`: run the app of the importable module, which cli_eval extends (mounting
    # here too would import cli_eval while it imports this file under its other name, ttscale.cli)
    from ttscale.cli import main as _main

    _main()
else:
    _mount_eval()
