"""The library entry point: ``ttscale.solve`` wires strategy, meter, budget and timing together."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

import ttscale
from ttscale import Budget, BudgetExhausted, Problem, UnknownNameError, build_strategy, solve
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.strategies.self_consistency import SelfConsistency

Make = Callable[..., ScriptedGenerator]
Boxed = Callable[..., str]


def test_solve_attaches_usage_and_wall_time(scripted: Make) -> None:
    gen = scripted(["so it is \\boxed{4}"])
    result = solve("What is 2 + 2?", "direct", generator=gen)
    assert (result.answer, result.strategy, result.model) == ("4", "direct", "scripted")
    total = result.usage.total
    [(prompts, _)] = gen.calls
    assert total.calls == 1
    assert total.prompt_tokens == gen.count_prompt_tokens(prompts)[0]
    assert total.completion_tokens == 4
    assert total.flops == pytest.approx(2 * 1_000_000 * (total.prompt_tokens + 4))  # 2 N T, no attention
    assert result.wall_seconds > 0
    assert prompts[0].messages[-1].content == "What is 2 + 2?"


def test_solve_builds_named_strategy_with_params(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("4")])
    result = solve(Problem("2+2?"), "self_consistency", generator=gen, n="3", seed=5)
    assert gen.calls[0][1].n == 3 and gen.calls[0][1].seed == 5
    assert result.usage.by_model["scripted"].completion_tokens == 3 * len(boxed("4").split())
    assert result.confidence == 1.0


def test_solve_reconfigures_a_strategy_object(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("4")])
    solve("2+2?", SelfConsistency(n=6), generator=gen, n=2)
    assert gen.calls[0][1].n == 2


def test_default_strategy_is_self_consistency(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("4")])
    assert solve("2+2?", generator=gen).strategy == "self_consistency"
    assert gen.calls[0][1].n == 8


def test_solve_rejects_unknown_params(scripted: Make) -> None:
    with pytest.raises(UnknownNameError, match="Known parameter names: max_tokens, seed"):
        solve("2+2?", "direct", generator=scripted(["x"]), n=4)


def test_solve_respects_the_budget(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("4")])
    budget = Budget(tokens=100)
    result = solve("2+2?", "self_consistency", generator=gen, budget=budget, max_tokens=64)
    assert 0 < result.usage.total.total_tokens <= 100
    assert sum(p.n for _, p in gen.calls) < 8
    with pytest.raises(BudgetExhausted):
        solve("2+2?", "cot", generator=gen, budget=Budget(tokens=1))


def test_build_strategy_is_exported() -> None:
    assert {"solve", "build_strategy"} <= set(ttscale.__all__)
    assert build_strategy("cot", {"max_tokens": "64"}).max_tokens == 64  # type: ignore[attr-defined]


def test_import_stays_light() -> None:
    heavy = ("llama_cpp", "typer", "rich", "numpy", "ttscale.answers")
    code = f"import ttscale, sys; heavy = [m for m in {heavy!r} if m in sys.modules]; assert not heavy, heavy"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
