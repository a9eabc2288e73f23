"""Run a strategy over a dataset slice, grading and storing every problem as it finishes.

``C`` problems are solved at once by an executor (:mod:`ttscale.evals.executors`): threads that share one
generator (the embedded engine batches their requests), or Ray workers with a generator each. Every
problem has its own :class:`~ttscale.compute.Ledger`, so usage never mixes between problems. Only the
calling thread writes to the store, one transaction per finished problem, as each result arrives.

Determinism: problem ``i`` (its position in the dataset) is solved with strategy seed
``problem_seed(run_seed, i)``, never with a seed that depends on which problem finished first, so a
resumed run or a run with other concurrency draws the same samples (on llama.cpp up to the
batch-composition effects described in docs/architecture.md). The scripted backend ignores seeds: a
``--script`` list is answered in turn, by one counter across all problems, so only a script whose answer
depends on the prompt alone (or a single response) replays identically after a resume.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backends.base import Generator, model_checksum
from ..compute import Budget, Ledger
from ..errors import ConfigError, EngineClosed, TTScaleError
from ..strategies import Strategy, build_strategy, configure, strategy_params
from ..strategies.base import logprob_summaries
from ..types import Result
from .datasets import Example
from .records import ProblemRecord, grade
from .store import RunStore

if TYPE_CHECKING:
    from .executors import Executor

SEED_STRIDE = 10_007
"""Seeds of consecutive problems lie this far apart: strategies use ``seed + sample_index`` inside a
problem, so problems never share a sample seed unless one draws over 10,007 samples."""


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides a run's results; recorded with the run and reused by ``--resume``."""

    dataset: str
    """Packaged dataset name or ``jsonl:PATH``."""
    model: str
    """Model name (catalog name, GGUF path, or the scripted model's name)."""
    strategy: str
    """Registered strategy name."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Strategy parameters as given (``key=value`` strings); ``seed`` is not one: see ``seed``."""
    limit: int | None = None
    """Problems to run (None: to the end of the dataset)."""
    offset: int = 0
    """Problems skipped at the start of the dataset."""
    seed: int = 0
    """Run seed; problem i gets strategy seed ``problem_seed(seed, i)``."""
    concurrency: int = 1
    """Problems solved at once."""
    budget_tokens: int | None = None
    """Per-problem token budget (None: unlimited)."""
    budget_flops: float | None = None
    """Per-problem FLOPs budget (None: unlimited)."""
    backend: str = "llamacpp"
    """Generation backend."""
    slots: int | None = None
    """Sequence slots of the embedded engine (None: its default). Recorded because, under a budget, what
    the prefix cache can keep changes what a search pays for its prompts."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.slots is not None and self.slots < 2:
            raise ConfigError(f"slots must be >= 2 (sequences the engine holds at once), got {self.slots}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if "seed" in self.params:
            raise ConfigError(
                "set the seed with --seed, not -p seed=: eval derives each problem's seed from it"
            )

    @property
    def budget(self) -> Budget | None:
        none = self.budget_tokens is None and self.budget_flops is None
        return None if none else Budget(self.budget_tokens, self.budget_flops)

    def build_strategy(self) -> Strategy:
        """The strategy, validated (unknown names and parameters fail here, before any model loads)."""
        return build_strategy(self.strategy, self.params)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {
            "params": dict(self.params)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resume_config(recorded: EvalConfig, given: Mapping[str, Any]) -> EvalConfig:
    """The recorded config, after checking that options given again (not None) agree with it."""
    conflicts = []
    for key, value in given.items():
        if value is None or (key == "params" and not value):
            continue
        old = getattr(recorded, key)
        same = (
            build_strategy(recorded.strategy, value) == recorded.build_strategy()
            if key == "params"
            else value == old
        )
        if not same:
            conflicts.append(f"--{key.replace('_', '-')} {value!r} (the run has {old!r})")
    if conflicts:
        raise ConfigError(
            "--resume continues a run with its recorded options; these differ: "
            + "; ".join(conflicts)
            + ". Drop them, or start a new run."
        )
    return recorded


def problem_seed(run_seed: int, index: int) -> int:
    """The strategy seed of the problem at dataset position ``index``; kept below 2**31 for the engine."""
    return (run_seed + SEED_STRIDE * index) % 2**31


def versions(generator: Generator) -> dict[str, Any]:
    """What ran the evaluation: package versions, model checksum and machine."""

    def dist(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    sha = generator.model.sha256
    if not sha:
        from ..models import CATALOG

        entry = CATALOG.get(generator.model.name)
        sha = entry.sha256 if entry is not None else ""
    if not sha:  # a model opened from a path: hashed here so a resume notices a changed file
        sha = model_checksum(generator)
    return {
        "ttscale": dist("ttscale"),
        "llama_cpp_python": dist("llama-cpp-python"),  # pinned: it names the llama.cpp it vendors
        "llama_cpp_system": _llama_cpp_system(),
        "model": generator.model.name,
        "model_sha256": sha or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def _llama_cpp_system() -> str | None:
    """The CPU features llama.cpp was built for and uses here (``llama_print_system_info``), when the
    run's backend loaded it: kernels differ between, say, AVX2 and AVX-512 builds, and so may the last
    bits of the logits. None for other backends (llama.cpp is not imported for them)."""
    lib = sys.modules.get("llama_cpp.llama_cpp")
    info = getattr(lib, "llama_print_system_info", None)
    return None if info is None else bytes(info()).decode(errors="replace").strip()


def check_versions(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Differences worth a warning on resume; a different model file is an error (other results)."""
    old, new = recorded.get("model_sha256"), current.get("model_sha256")
    if old and new and old != new:
        raise ConfigError(
            f"the run was made with model sha256 {old}, this model file is {new}: start a new run"
        )
    keys = ("ttscale", "llama_cpp_python", "llama_cpp_system", "python", "machine")
    return [  # a key the run did not record (an older ttscale) is not a difference
        f"{k} was {recorded.get(k)}, now {current.get(k)}"
        for k in keys
        if k in recorded and recorded.get(k) != current.get(k)
    ]


# -- one problem ----------------------------------------------------------------------------------------


def takes_seed(strategy: Strategy) -> bool:
    """Whether the strategy has a ``seed`` hyperparameter for the runner to set."""
    return any(p.name == "seed" for p in strategy_params(type(strategy)))


def solve_problem(
    example: Example,
    index: int,
    strategy: Strategy,
    generator: Generator,
    budget: Budget | None,
    seed: int | None,
) -> ProblemRecord:
    """Solve and grade one problem. A named ttscale error is recorded as the problem's failure.

    This is :func:`ttscale.solve` with the ledger kept outside, so a failed solve still reports what it
    spent: honest accounting counts the compute of failures too.
    """
    seeded = configure(strategy, {"seed": seed}) if seed is not None else strategy
    ledger = Ledger(budget)
    start = time.perf_counter()
    result: Result | None = None
    error = None
    try:
        # every sample is stored with a summary of its tokens' logprobs (SampleRecord.logprob_summary)
        meter = ledger.meter(generator, sampled_logprobs=logprob_summaries(strategy))
        result = seeded.solve(example.problem, meter)
    except EngineClosed:
        raise  # the run is being shut down: not a result to record
    except TTScaleError as e:
        error = f"{type(e).__name__}: {e}"
    latency = time.perf_counter() - start
    usage = ledger.usage()
    if result is not None:
        result = dataclasses.replace(result, usage=usage, wall_seconds=latency)
    return grade(example, index, seed, result, usage.total, latency, error)


# -- the run --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What the progress display needs after each finished problem (this session's view)."""

    record: ProblemRecord
    """The problem that just finished."""
    done: int
    """Problems recorded for the run, earlier sessions included."""
    total: int
    """Problems the run covers."""
    correct: int
    """Correct problems recorded for the run."""
    completion_tokens: int
    """Tokens generated in this session."""
    seconds: float
    """Elapsed time of this session."""


def run_eval(
    store: RunStore,
    run_id: str,
    config: EvalConfig,
    examples: Sequence[Example],
    executor: Executor | Generator,
    on_progress: Callable[[Progress], None] | None = None,
) -> None:
    """Solve every problem of ``examples`` that ``run_id`` has not recorded yet, storing each as it ends.

    ``executor`` runs the problems (a bare generator: the local thread pool, ``config.concurrency`` wide);
    whichever it is, the records come back to this thread, which alone writes the store.
    """
    from .executors import Job, LocalExecutor  # executors imports this module

    if isinstance(executor, Generator):
        executor = LocalExecutor(executor, config.concurrency)
    strategy = config.build_strategy()
    seeded = takes_seed(strategy)
    info = store.run(run_id)
    check_slice(store.problem_ids(run_id), examples, config.offset, info.n_planned)
    done = set(store.problem_ids(run_id))
    jobs = [
        Job(index, ex, problem_seed(config.seed, index) if seeded else None)
        for index, ex in enumerate(examples, start=config.offset)
        if index not in done
    ]
    correct, tokens, start = info.n_correct, 0, time.perf_counter()
    for record in executor.map(strategy, config.budget, jobs):
        elapsed = time.perf_counter() - start
        store.add_problem(run_id, record, info.wall_seconds + elapsed)
        correct += record.correct
        tokens += record.usage.completion_tokens
        done.add(record.index)
        if on_progress is not None:
            on_progress(Progress(record, len(done), info.n_planned, correct, tokens, elapsed))
    if len(done) >= info.n_planned:
        store.set_status(run_id, "complete")


def check_slice(recorded: Mapping[int, str], examples: Sequence[Example], offset: int, planned: int) -> None:
    """Refuse to resume over a dataset that changed since the run started (other problems, other size)."""
    if len(examples) != planned:
        raise ConfigError(f"the dataset slice now has {len(examples)} problems, the run planned {planned}")
    for index, problem_id in recorded.items():
        example = examples[index - offset] if 0 <= index - offset < len(examples) else None
        if example is None or (example.problem.id or str(index)) != problem_id:
            raise ConfigError(f"problem {index} of the run was {problem_id!r}; the dataset changed since")
