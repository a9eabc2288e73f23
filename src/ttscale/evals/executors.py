"""Where an evaluation's problems are solved: a thread pool here, or Ray workers elsewhere.

:func:`~ttscale.evals.runner.run_eval` decides *what* to solve (the problems the store lacks, each with its
own seed) and records each result; an :class:`Executor` decides *where*. Both executors yield graded
:class:`~ttscale.evals.records.ProblemRecord` objects back to the caller's thread in completion order, so
the store has one writer whatever runs the problems, and a crash or Ctrl-C loses only problems in flight.

- :class:`LocalExecutor`: ``C`` threads sharing one generator (the embedded engine batches their requests).
- :class:`RayExecutor`: ``C`` Ray actors, each opening its own generator once (a model load per worker, not
  per problem) from a picklable factory, and solving one problem at a time with the same
  :func:`~ttscale.evals.runner.solve_problem` the local executor uses, so the records are the same.

Ray is an optional dependency: it is imported only when a :class:`RayExecutor` is made.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from ..backends.base import Generator
from ..compute import Budget
from ..errors import ConfigError, TTScaleError, WorkerLost
from ..strategies import Strategy
from .datasets import Example
from .records import ProblemRecord
from .runner import solve_problem, versions

GeneratorFactory = Callable[[], Generator]
"""A zero-argument callable that opens a generator. For Ray it must pickle (a module-level function, or a
``functools.partial`` of one): it is sent to each worker, which calls it there."""


@dataclass(frozen=True)
class Job:
    """One problem to solve: its dataset position, the example, and its strategy seed (None: no seed)."""

    index: int
    example: Example
    seed: int | None


class Executor(Protocol):
    """Solves problems and hands back their records; the caller stores them."""

    def start(self) -> dict[str, Any]:
        """Open the generator(s); :func:`~ttscale.evals.runner.versions` of what will solve the problems."""
        ...

    def map(self, strategy: Strategy, budget: Budget | None, jobs: Iterable[Job]) -> Iterator[ProblemRecord]:
        """Records in completion order. ``jobs`` is consumed lazily, only as capacity frees, so on an
        interrupt only the problems in flight have started (and are abandoned, not waited for)."""
        ...

    def close(self) -> None:
        """Release the workers; safe to call twice and after a failed ``start``."""
        ...


# -- here: threads over one generator -------------------------------------------------------------------


class LocalExecutor:
    """``width`` problems at once in threads sharing ``generator`` (which the caller opened and closes)."""

    def __init__(self, generator: Generator, width: int) -> None:
        self.generator = generator
        self.width = width

    def start(self) -> dict[str, Any]:
        return versions(self.generator)

    def map(self, strategy: Strategy, budget: Budget | None, jobs: Iterable[Job]) -> Iterator[ProblemRecord]:
        pool = ThreadPoolExecutor(self.width, thread_name_prefix="ttscale-eval")
        futures = (
            pool.submit(solve_problem, j.example, j.index, strategy, self.generator, budget, j.seed)
            for j in jobs
        )
        return _as_finished(pool, futures, self.width)

    def close(self) -> None:
        pass


def _as_finished(
    pool: ThreadPoolExecutor, futures: Iterable[Future[ProblemRecord]], width: int
) -> Iterator[ProblemRecord]:
    """Results in completion order, with at most ``width`` problems submitted at a time.

    ``futures`` is lazy (a generator over submit), so a problem is only submitted when a slot frees: on an
    interrupt nothing but the problems in flight has started, and those are abandoned, not waited for.
    """
    pending = iter(futures)
    running: set[Future[ProblemRecord]] = set()
    try:
        while True:
            while len(running) < width and (f := next(pending, None)) is not None:
                running.add(f)
            if not running:
                return
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()
    finally:
        # not ``with pool``: its exit would wait for the problems in flight, minutes on a slow model
        pool.shutdown(wait=False, cancel_futures=True)


# -- elsewhere: Ray actors, one generator each ----------------------------------------------------------


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it.

    Imported through ``importlib`` and typed ``Any``: Ray is optional, and its partial annotations are not
    worth type-checking against in strict mode.
    """
    try:
        return importlib.import_module("ray")
    except ImportError as e:
        raise ConfigError(
            f"--executor ray needs Ray ({e}); install it with: pip install 'ttscale[ray]'"
        ) from None


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse a ``HOST:PORT`` address where nothing listens: ``ray.init`` would retry it for minutes.

    Other forms (``auto``, ``ray://...``) are left to Ray.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({e}); start one there with `ray start --head`"
        ) from None


class _Worker:
    """The Ray actor: opens its generator once, then solves the problems the driver sends, one at a time.

    A failure to open the generator is kept and raised by every call rather than killing the actor, so
    the driver receives the original error (say, a missing model file) instead of a bare "actor died".
    At the end of a run the actor is killed, not asked to close: a close would queue behind a running solve.
    """

    def __init__(self, factory: GeneratorFactory) -> None:
        self._generator: Generator | None = None
        self._error: BaseException | None = None
        try:
            self._generator = factory()
        except Exception as e:  # re-raised by every call: see the class docstring
            self._error = e

    def _opened(self) -> Generator:
        if self._generator is None:
            raise self._error or RuntimeError("the worker has no generator")
        return self._generator

    def versions(self) -> dict[str, Any]:
        return versions(self._opened())

    def solve(self, job: Job, strategy: Strategy, budget: Budget | None) -> ProblemRecord:
        return solve_problem(job.example, job.index, strategy, self._opened(), budget, job.seed)


class RayExecutor:
    """``width`` Ray actors (fewer if the cluster has fewer CPUs), each with its own generator.

    ``address`` goes to ``ray.init(address=...)`` (``HOST:6379`` of a cluster started with ``ray start``);
    without it, ``ray.init()`` joins the cluster this machine runs, or starts a local one. If Ray is
    already initialised in this process (a test, a notebook) that session is used and left running.
    Each actor reserves one CPU and the actors are spread over the nodes, so on a cluster whose nodes
    were started with ``--num-cpus 1`` every machine holds exactly one model.
    """

    POLL_SECONDS = 1.0
    """``ray.wait`` returns at least this often, so Ctrl-C is seen promptly in the driver."""
    START_SECONDS = 1800.0
    """How long the workers may take to start: a first run on a machine downloads its model (a 1.5B model
    is 1.1 GB). Past it, the run is refused with :class:`WorkerLost` rather than waiting for CPUs that
    another job holds."""
    RETRIES = 2
    """A worker process that dies (out of memory, a crash in native code) is restarted and its problem
    tried again; Ray counts the restarts per worker over the whole run (``max_restarts``), so past this
    many deaths of one worker the run stops with :class:`WorkerLost`."""

    def __init__(self, factory: GeneratorFactory, width: int, address: str | None = None) -> None:
        self._ray = import_ray()  # fails here, before any cluster or model, when Ray is missing
        if address is not None:
            check_reachable(address)
        self.factory = factory
        self.width = width
        self.address = address
        self._actors: list[Any] = []
        self._owns_ray = False

    def start(self) -> dict[str, Any]:
        """Connect (or start a local cluster), create the actors and wait until each has its model."""
        ray = self._ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address)
            except ConnectionError as e:
                raise ConfigError(f"cannot join the Ray cluster at {self.address or 'auto'}: {e}") from None
            self._owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.width = max(1, min(self.width, cpus))  # more actors than CPUs would wait forever
        actor = ray.remote(
            num_cpus=1, scheduling_strategy="SPREAD", max_restarts=self.RETRIES, max_task_retries=self.RETRIES
        )(_Worker)
        self._actors = [actor.remote(self.factory) for _ in range(self.width)]
        try:
            found = self._get([a.versions.remote() for a in self._actors], timeout=self.START_SECONDS)
        except ray.exceptions.GetTimeoutError:
            raise WorkerLost(
                f"the {self.width} Ray workers did not start within {self.START_SECONDS:g} s: each needs "
                "one free CPU of the cluster (`ray status` shows who holds them) and its model"
            ) from None
        shas = {v.get("model_sha256") for v in found} - {None}
        if len(shas) > 1:
            raise ConfigError(
                f"the Ray workers have different model files (sha256 {', '.join(sorted(shas))})"
            )
        return dict(found[0])

    def map(self, strategy: Strategy, budget: Budget | None, jobs: Iterable[Job]) -> Iterator[ProblemRecord]:
        """One problem per idle actor; the next job is taken only when an actor's result has arrived."""
        ray = self._ray
        pending = iter(jobs)
        idle = list(self._actors)
        running: dict[Any, Any] = {}  # object ref -> the actor computing it
        while True:
            while idle and (job := next(pending, None)) is not None:
                actor = idle.pop()
                running[actor.solve.remote(job, strategy, budget)] = actor
            if not running:
                return
            ready, _ = ray.wait(list(running), num_returns=1, timeout=self.POLL_SECONDS)
            for ref in ready:
                idle.append(running.pop(ref))
                yield self._get(ref)

    def close(self) -> None:
        """Kill the actors (abandoning problems in flight) and, if this executor started Ray, stop it."""
        ray = self._ray
        actors, self._actors = self._actors, []
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if self._owns_ray:
            self._owns_ray = False
            ray.shutdown()

    def _get(self, refs: Any, timeout: float | None = None) -> Any:
        """``ray.get``, re-raising a worker's named ttscale error as itself (not wrapped in a traceback),
        and a worker lost for good (its process died more often than it may be restarted, its node went
        away) as :class:`WorkerLost`."""
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(refs, timeout=timeout)
        except exceptions.RayTaskError as e:
            if isinstance(e.cause, TTScaleError):
                raise e.cause from None
            raise
        except exceptions.GetTimeoutError:
            raise
        except exceptions.RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise WorkerLost(
                f"a Ray worker was lost ({type(e).__name__}: {first}) after {self.RETRIES} restarts; the run "
                "stopped with every finished problem stored"
            ) from None
