"""``ttscale eval`` (run a strategy over a benchmark slice) and ``ttscale runs`` (list, show, compare).

Thin over :mod:`ttscale.evals`: the options become an :class:`~ttscale.evals.runner.EvalConfig`, which
is validated (dataset, strategy, parameters) and the run store opened and probed before any model loads,
so a typo or an unwritable store costs nothing. ``cli.py`` mounts these commands last, because this
module uses its helpers (``_errors``, ``open_generator``).
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import progress as bar
from rich.table import Table
from rich.text import Text

from .backends.base import Generator
from .backends.draws import DrawFile, DrawReplay
from .cli import Backend, _close, _errors, _stderr, _stdout, open_generator, parse_params
from .errors import ConfigError, TTScaleError
from .evals import datasets
from .evals.analysis import dataset_slice
from .evals.datasets import Example
from .evals.executors import Executor, LocalExecutor, RayExecutor
from .evals.metrics import RunMetrics, compare, summarize
from .evals.records import RunInfo
from .evals.runner import EvalConfig, Progress, check_versions, resume_config, run_eval
from .evals.store import RunStore

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Run store (default $TTSCALE_HOME/runs.sqlite).")
]
Opt = typer.Option


SlotsOpt = Annotated[
    int | None,
    Opt(
        help="Sequences the llama.cpp engine holds at once, running or cached (default 32); more lets "
        "more problems share the prefix cache, at seq_len x KV size each."
    ),
]


DrawsOpt = Annotated[
    Path | None,
    Opt(
        help="Record seeded samples in FILE and replay identical calls from it: score one draw with "
        "several verifiers (a replayed call books the tokens and FLOPs it was drawn with). A resumed run "
        "goes on with the file it was made with.",
    ),
]


class ExecutorKind(enum.StrEnum):
    local = "local"
    ray = "ray"


def eval_command(
    dataset: Annotated[str | None, Opt("--dataset", "-d", help="Dataset name or jsonl:PATH.")] = None,
    model: Annotated[str | None, Opt("--model", "-m", help="Model name or GGUF path.")] = None,
    strategy: Annotated[str | None, Opt("--strategy", "-s", help="Strategy name.")] = None,
    param: Annotated[list[str] | None, Opt("--param", "-p", help="Strategy parameter key=value.")] = None,
    limit: Annotated[int | None, Opt(help="Problems to run (default: all).")] = None,
    offset: Annotated[int | None, Opt(help="Problems to skip first (default 0).")] = None,
    seed: Annotated[
        int | None, Opt(help="Run seed; problem i gets its own seed from it (default 0).")
    ] = None,
    concurrency: Annotated[
        int | None, Opt("--concurrency", "-c", help="Problems at once (default 1).")
    ] = None,
    budget_tokens: Annotated[int | None, Opt(help="Most tokens per problem.")] = None,
    budget_flops: Annotated[float | None, Opt(help="Most FLOPs per problem.")] = None,
    slots: SlotsOpt = None,
    draws: DrawsOpt = None,
    store: StoreOpt = None,
    resume: Annotated[str | None, Opt(help="Continue the interrupted run RUN_ID.")] = None,
    json_output: Annotated[bool, Opt("--json", help="Print one JSON summary object to stdout.")] = False,
    backend: Annotated[Backend | None, Opt(help="Generation backend (default llamacpp).")] = None,
    script: Annotated[Path | None, Opt(help="JSON list of responses, for --backend scripted.")] = None,
    script_delay: Annotated[float, Opt(hidden=True, help="Seconds per scripted call (tests).")] = 0.0,
    executor: Annotated[
        ExecutorKind,
        Opt(help="Where problems run: threads here, or Ray workers (pip install 'ttscale\\[ray]')."),
    ] = ExecutorKind.local,
    ray_address: Annotated[
        str | None, Opt(help="Ray cluster to join, HOST:6379 (default: this machine's, or a new local one).")
    ] = None,
) -> None:
    """Evaluate a strategy on a benchmark slice; every problem is stored as it finishes (resumable)."""
    with _errors():
        given: dict[str, Any] = dict(
            dataset=dataset, model=model, strategy=strategy, params=parse_params(param or []), limit=limit,
            offset=offset, seed=seed, concurrency=concurrency, budget_tokens=budget_tokens,
            budget_flops=budget_flops, backend=backend.value if backend else None, slots=slots,
        )  # fmt: skip
        if ray_address is not None and executor is not ExecutorKind.ray:
            raise ConfigError("--ray-address needs --executor ray")
        with RunStore.open(store) as runs:  # probe the store before any compute is spent
            config, run = _plan(runs, resume, given)
            draws = draws_for(run, draws)
            if draws is not None and executor is ExecutorKind.ray:
                raise ConfigError("--draws needs --executor local: Ray workers cannot share one draw file")
            examples = datasets.load_slice(config.dataset, limit=config.limit, offset=config.offset)
            where = _Where(executor, ray_address, script, script_delay, draws)
            run_id = _execute(runs, config, run, examples, where)
            _report(runs, run_id, json_output)


@dataclass(frozen=True)
class _Where:
    """How to open the generator and where to run the problems: options that do not change the results."""

    kind: ExecutorKind
    address: str | None
    script: Path | None
    delay: float
    draws: Path | None = None
    """A draw file to record samples in and replay them from (local executor only)."""

    def executor(self, config: EvalConfig, missing: int) -> tuple[Executor, Generator | None]:
        """The executor (not started), and the generator it runs on if it opened one here."""
        script = self.script.resolve() if self.script is not None else None  # Ray workers have other cwds
        factory = partial(
            open_generator,
            Backend(config.backend),
            config.model,
            script,
            delay=self.delay,
            slots=config.slots,
        )
        if self.kind is ExecutorKind.ray:  # each worker calls the factory; no model is loaded here
            return RayExecutor(factory, min(config.concurrency, missing), self.address), None
        if self.draws is None:
            generator = factory()
        else:
            draws = DrawFile(self.draws)  # a bad path fails here, before the model loads
            try:
                generator = DrawReplay(factory(), draws)
            except BaseException:
                draws.close()
                raise
        return LocalExecutor(generator, config.concurrency), generator


def _execute(
    runs: RunStore, config: EvalConfig, run: RunInfo | None, examples: Sequence[Example], where: _Where
) -> str:
    """Load the model, create (or check) the run, solve what is missing; the run's id."""
    if run is not None and run.n_done >= run.n_planned:
        return run.run_id  # nothing left to solve: no model to load
    executor, generator, run_id = None, None, run.run_id if run else None
    missing = len(examples) - (run.n_done if run else 0)
    try:
        on = " on Ray workers" if where.kind is ExecutorKind.ray else ""
        with _stderr().status(f"loading {config.model}{on}"):
            executor, generator = where.executor(config, missing)
            current = executor.start()
            if where.draws is not None:
                current["draws"] = str(where.draws.resolve())  # a sweep matches it from any directory
        if isinstance(executor, RayExecutor) and executor.width < min(config.concurrency, missing):
            note = f"note: {executor.width} Ray workers, one per CPU of the cluster (asked for {config.concurrency})"
            _stderr().print(Text(note, style="yellow"))
        for warning in check_versions(run.versions, current) if run else []:
            _stderr().print(Text(f"warning: {warning}", style="yellow"))
        run_id = run_id or runs.create_run(config.to_dict(), current, len(examples))
        _run_with_progress(runs, run_id, config, examples, executor)
        return run_id
    except BaseException as exc:  # interrupted, engine stopped, store full...: what finished is stored
        if run_id is not None and not isinstance(exc, ConfigError) and _still_there(runs, run_id):
            _stderr().print(
                f"stored so far; continue with: ttscale eval --resume {run_id} --store {runs.path}"
            )
        raise
    finally:
        if executor is not None:
            executor.close()
        if isinstance(generator, DrawReplay):
            done = generator.stats
            _stderr().print(
                f"draws: {done.replayed} calls replayed from {where.draws}, {done.drawn} computed"
            )
        _close(generator)


def _still_there(runs: RunStore, run_id: str) -> bool:
    """Whether the store still holds the run (a run deleted meanwhile cannot be resumed)."""
    try:
        runs.run(run_id)
    except TTScaleError:
        return False
    return True


def same_draws(recorded: str | None, given: Path | None) -> bool:
    """Whether a run recorded with draw file ``recorded`` used ``given``: the same path, however it was
    spelt. Runs record the absolute path; one recorded before they did kept the path as typed, which is
    resolved against the current directory (the old string comparison matched only from there too)."""
    if recorded is None or given is None:
        return recorded is None and given is None
    return Path(recorded).resolve() == given.resolve()


def draws_for(run: RunInfo | None, given: Path | None) -> Path | None:
    """The draw file to run with: as given for a new run; a resumed run goes on with its own, so its
    remaining problems replay and record where the others did (a judge's run must not draw afresh)."""
    recorded = run.versions.get("draws") if run is not None else None
    if run is None or (recorded is None and given is None):
        return given
    if recorded is None:
        raise ConfigError(f"run {run.run_id} was made without --draws: resume it without, or start a new run")
    if given is not None and not same_draws(recorded, given):
        raise ConfigError(
            f"run {run.run_id} was made with draw file {recorded}, not {given}: resume it with that file "
            "(or leave --draws out), or start a new run"
        )
    return Path(recorded)


def _plan(runs: RunStore, resume: str | None, given: dict[str, Any]) -> tuple[EvalConfig, RunInfo | None]:
    """The run's config (new, or recorded and checked against the options), validated; the run if resumed."""
    dataset = given.get("dataset")
    if dataset is not None and dataset.startswith("jsonl:"):  # absolute, so --resume works from elsewhere
        given["dataset"] = "jsonl:" + str(Path(dataset[len("jsonl:") :]).resolve())
    if resume is not None:
        run = runs.run(resume)
        config = resume_config(EvalConfig.from_dict(run.config), given)
    else:
        run = None
        for required in ("dataset", "strategy"):
            if given[required] is None:
                raise ConfigError(f"eval needs --{required} (or --resume RUN_ID)")
        backend = given["backend"] or Backend.llamacpp.value
        if given["model"] is None:
            from .models import DEFAULT_MODEL

            given["model"] = DEFAULT_MODEL if backend == Backend.llamacpp.value else "scripted"
        config = EvalConfig.from_dict(
            {k: v for k, v in given.items() if v is not None} | {"backend": backend}
        )
    config.build_strategy()  # unknown strategy or parameter: fail now, before any model loads
    return config, run


def _run_with_progress(
    runs: RunStore, run_id: str, config: EvalConfig, examples: Sequence[Example], executor: Executor
) -> None:
    """``run_eval`` under a progress bar on stderr: problems done, running accuracy, tokens/s, ETA."""
    info = runs.run(run_id)
    if not _stderr().is_terminal:
        _run_with_log_lines(runs, run_id, config, examples, executor, info.n_done)
        return
    columns = (
        bar.TextColumn("{task.description}"),
        bar.BarColumn(),
        bar.MofNCompleteColumn(),
        bar.TextColumn("acc {task.fields[acc]}"),
        bar.TextColumn("{task.fields[tps]} tok/s"),
        bar.TimeRemainingColumn(),
    )
    with bar.Progress(*columns, console=_stderr()) as shown:
        acc = f"{info.n_correct / info.n_done:.3f}" if info.n_done else "-"
        task = shown.add_task(f"{run_id}", total=info.n_planned, completed=info.n_done, acc=acc, tps="-")

        def update(p: Progress) -> None:
            tps = p.completion_tokens / p.seconds if p.seconds > 0 else 0.0
            shown.update(task, completed=p.done, acc=f"{p.correct / p.done:.3f}", tps=f"{tps:.1f}")

        run_eval(runs, run_id, config, examples, executor, on_progress=update)


LOG_EVERY = 30.0
"""Seconds between progress lines when stderr is not a terminal."""


def _run_with_log_lines(
    runs: RunStore,
    run_id: str,
    config: EvalConfig,
    examples: Sequence[Example],
    executor: Executor,
    start: int,
) -> None:
    """``run_eval`` with plain progress lines: off a terminal (nohup, CI, a pipe) a live bar draws nothing
    until the end, which leaves an hours-long run silent. One line per finished problem, at most one per
    :data:`LOG_EVERY` seconds, and always the last."""
    console = _stderr()
    last = [-math.inf]

    def update(p: Progress) -> None:
        now = time.monotonic()
        if p.done < p.total and now - last[0] < LOG_EVERY:
            return
        last[0] = now
        tps = p.completion_tokens / p.seconds if p.seconds > 0 else 0.0
        ran = p.done - start  # problems finished in this session: the ETA's rate
        eta = "-" if ran <= 0 else str(timedelta(seconds=round((p.total - p.done) * p.seconds / ran)))
        line = f"{run_id} {p.done}/{p.total} acc {p.correct / p.done:.3f} {tps:.1f} tok/s eta {eta}"
        console.print(line, markup=False)

    run_eval(runs, run_id, config, examples, executor, on_progress=update)


def _report(runs: RunStore, run_id: str, json_output: bool) -> None:
    info = runs.run(run_id)
    metrics = summarize(runs.problems(run_id))
    if json_output:
        typer.echo(json.dumps(_summary(info, metrics), ensure_ascii=False))
        return
    _stdout().print(_metrics_table(f"run {info.run_id} ({info.status})", {"": metrics}))


def _summary(info: RunInfo, metrics: RunMetrics) -> dict[str, Any]:
    head = {"run_id": info.run_id, "status": info.status, "n_planned": info.n_planned}
    config = {k: info.config.get(k) for k in ("dataset", "strategy", "model", "seed")}
    return head | config | metrics.to_dict() | {"wall_seconds": info.wall_seconds}


# -- ttscale runs -------------------------------------------------------------------------------------

runs_app = typer.Typer(help="List, show and compare evaluation runs in the run store.", no_args_is_help=True)
RunArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix of one).")]


@runs_app.command("list")
def list_command(store: StoreOpt = None) -> None:
    """Every run in the store, oldest first."""
    with _errors(), RunStore.open(store, write=False) as runs:
        table = Table("run", "created", "status", "done", "acc", "wall", "dataset", "strategy", "model")
        table.columns[0].no_wrap = True
        for r in runs.runs():
            acc = f"{r.n_correct / r.n_done:.3f}" if r.n_done else "-"
            created = datetime.fromtimestamp(r.created_at).strftime("%m-%d %H:%M")
            head = (r.run_id, created, r.status, f"{r.n_done}/{r.n_planned}", acc, f"{r.wall_seconds:.0f}s")
            table.add_row(*head, *_describe(r.config))
        _stdout().print(table)


@runs_app.command("show")
def show_command(
    run_id: RunArg,
    store: StoreOpt = None,
    json_output: Annotated[bool, Opt("--json", help="Print one JSON object.")] = False,
) -> None:
    """A run's config, versions and metrics."""
    with _errors(), RunStore.open(store, write=False) as runs:
        info = runs.run(run_id)
        metrics = summarize(runs.problems(info.run_id))
        if json_output:
            typer.echo(
                json.dumps({**_summary(info, metrics), "config": info.config, "versions": info.versions})
            )
            return
        out = _stdout()
        out.print(_pairs_table(f"run {info.run_id}: config", info.config))
        out.print(_pairs_table("versions", info.versions))
        out.print(
            _metrics_table(f"metrics ({info.status}, {info.n_done}/{info.n_planned} problems)", {"": metrics})
        )


@runs_app.command("delete")
def delete_command(
    run_id: RunArg,
    store: StoreOpt = None,
    yes: Annotated[bool, Opt("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a run and its problems (sweep and compare then compute it afresh instead of reusing it)."""
    with _errors(), RunStore.open(store) as runs:
        info = runs.run(run_id)
        what = f"run {info.run_id} ({info.n_done}/{info.n_planned} problems, {' | '.join(_describe(info.config))})"
        if not yes and not typer.confirm(f"delete {what}?", default=False, err=True):
            raise typer.Exit(1)
        runs.delete_run(info.run_id)
        _stderr().print(f"deleted {what}")


@runs_app.command("compare")
def compare_command(run_a: RunArg, run_b: RunArg, store: StoreOpt = None) -> None:
    """Two runs' metrics side by side, and the problems whose verdict flipped."""
    with _errors(), RunStore.open(store, write=False) as runs:
        a, b = runs.run(run_a), runs.run(run_b)
        if a.config.get("dataset") != b.config.get("dataset"):  # problem ids would pair by accident
            raise ConfigError(
                f"runs {a.run_id} and {b.run_id} are on different datasets ({a.config.get('dataset')}, "
                f"{b.config.get('dataset')}): compare runs on the same one, or read each with `runs show`"
            )
        problems_a, problems_b = runs.problems(a.run_id), runs.problems(b.run_id)
        out = _stdout()
        out.print(
            _metrics_table("metrics", {a.run_id: summarize(problems_a), b.run_id: summarize(problems_b)})
        )
        for name, info in (("A", a), ("B", b)):
            out.print(f"{name} = {info.run_id}: " + " | ".join(_describe(info.config)))
        diff = compare(problems_a, problems_b)
        out.print(f"common problems: {diff.common} (only in A: {diff.only_a}, only in B: {diff.only_b})")
        out.print(f"answers disagree on: {diff.disagreements}")
        out.print(f"wrong -> correct ({len(diff.fixed)}): {', '.join(diff.fixed) or '-'}")
        out.print(f"correct -> wrong ({len(diff.broken)}): {', '.join(diff.broken) or '-'}")


def _describe(config: Any) -> tuple[str, str, str]:
    """(dataset[slice], strategy params, model) of a run's config, for one table row."""
    params = " ".join(f"{k}={v}" for k, v in config.get("params", {}).items())
    return dataset_slice(config), f"{config.get('strategy')} {params}".strip(), str(config.get("model"))


def _pairs_table(title: str, pairs: Any) -> Table:
    table = Table("key", "value", title=title, title_justify="left")
    for key, value in pairs.items():
        table.add_row(key, Text(json.dumps(value) if isinstance(value, dict | list) else str(value)))
    return table


def _metrics_table(title: str, columns: dict[str, RunMetrics]) -> Table:
    """Metrics as rows, one column per run; @k rows appear for the k any run reports."""
    rows = {name: _metric_rows(m) for name, m in columns.items()}
    labels = list(dict.fromkeys(label for r in rows.values() for label in r))
    table = Table("metric", *(name or "value" for name in columns), title=title, title_justify="left")
    for label in labels:
        table.add_row(label, *(r.get(label, "-") for r in rows.values()))
    return table


def _metric_rows(m: RunMetrics) -> dict[str, str]:
    lo, hi = m.accuracy_ci
    u = m.usage
    rows = {
        "problems": f"{m.n_problems} ({m.n_errors} failed)",
        "accuracy [95% CI]": f"{m.accuracy:.3f} [{lo:.3f}, {hi:.3f}]",
        "tokens / problem": f"{m.per_problem(u.total_tokens):.1f} ({m.per_problem(u.completion_tokens):.1f} generated)",
        "FLOPs / problem": f"{m.per_problem(u.flops):.3e}",
        "total tokens": f"{u.total_tokens} ({u.completion_tokens} generated)",
        "latency p50 / p95": f"{m.latency_p50:.2f} s / {m.latency_p95:.2f} s",
    }
    for name, values in (("pass", m.pass_at_k), ("maj", m.maj_at_k), ("weighted", m.weighted_at_k)):
        rows.update({f"{name}@{k}": f"{v:.3f}" for k, v in values.items()})
    return rows
