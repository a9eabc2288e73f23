"""The library's front door: :func:`solve` one problem with one strategy under one budget.

Example, hermetic on the scripted backend::

    >>> from ttscale import solve, Budget
    >>> from ttscale.backends.scripted import ScriptedGenerator
    >>> gen = ScriptedGenerator(["... so the answer is \\\\boxed{4}."])
    >>> result = solve("What is 2 + 2?", "self_consistency", generator=gen, budget=Budget(tokens=4000), n=4)
    >>> result.answer, result.usage.total.completion_tokens > 0  # doctest: +SKIP
    ('4', True)
"""

from __future__ import annotations

import dataclasses
import time

from .backends.base import Generator
from .compute import Budget, Ledger
from .strategies.base import Strategy, build_strategy, configure
from .types import Problem, Result


def solve(
    problem: Problem | str,
    strategy: Strategy | str = "self_consistency",
    *,
    generator: Generator,
    budget: Budget | None = None,
    **params: object,
) -> Result:
    """Solve ``problem`` with ``strategy`` on ``generator`` without exceeding ``budget``.

    ``strategy`` is a strategy object or a registered name; ``params`` set its hyperparameters (typed
    values or ``key=value`` strings, coerced and validated by :func:`~ttscale.build_strategy`). The
    generator is wrapped in a :class:`~ttscale.compute.Meter`, which counts every token and refuses calls
    the budget cannot pay for; the returned :class:`Result` carries that ``usage`` and the ``wall_seconds``
    the call took.
    """
    if isinstance(problem, str):
        problem = Problem(problem)
    strategy = build_strategy(strategy, params) if isinstance(strategy, str) else configure(strategy, params)
    ledger = Ledger(budget)
    start = time.perf_counter()
    result = strategy.solve(problem, ledger.meter(generator))
    elapsed = time.perf_counter() - start
    return dataclasses.replace(result, usage=ledger.usage(), wall_seconds=elapsed)
