"""Adaptive consistency on the scripted backend: the Beta stopping rule, batching, budgets, the report."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from ttscale import Budget, BudgetExhausted, ConfigError, Ledger, Problem, Result
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.prompts import cot_prompt
from ttscale.strategies import STRATEGIES, build_strategy
from ttscale.strategies.adaptive_consistency import AdaptiveConsistency, beta_stop_probability

Make = Callable[..., ScriptedGenerator]
Boxed = Callable[..., str]
PROBLEM = Problem("What is 2 + 3?")


def run(
    strategy: AdaptiveConsistency, gen: ScriptedGenerator, budget: Budget | None = None
) -> tuple[Result, Ledger]:
    ledger = Ledger(budget)
    return strategy.solve(PROBLEM, ledger.meter(gen)), ledger


def events(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


# -- the Beta probability -------------------------------------------------------------------------------


def test_beta_probability_known_values() -> None:
    assert beta_stop_probability(0, 0) == Fraction(1, 2)  # no evidence either way
    assert beta_stop_probability(3, 0) == Fraction(15, 16)  # 1 - 2^-4
    assert beta_stop_probability(4, 0) == Fraction(31, 32)  # 1 - 2^-5
    assert beta_stop_probability(0, 1) == Fraction(1, 4)  # Beta(1, 2): P(X > 1/2) = (1/2)^2
    assert beta_stop_probability(2, 2) == Fraction(1, 2)  # symmetric


@pytest.mark.parametrize(("v1", "v2"), [(1, 0), (2, 1), (5, 2), (7, 4), (3, 3), (10, 6)])
def test_beta_probability_matches_monte_carlo(v1: int, v2: int) -> None:
    draws = np.random.default_rng(1234).beta(v1 + 1, v2 + 1, size=200_000)
    estimate = float((draws > 0.5).mean())
    # the standard error of a proportion over 200k draws is below 0.0012; 0.005 is over 4 of them
    assert float(beta_stop_probability(v1, v2)) == pytest.approx(estimate, abs=0.005)


def test_beta_probability_is_complementary_and_grows_with_the_lead() -> None:
    for v1 in range(8):
        for v2 in range(8):
            assert beta_stop_probability(v1, v2) + beta_stop_probability(v2, v1) == 1
    assert [beta_stop_probability(v, 1) for v in range(1, 6)] == sorted(
        beta_stop_probability(v, 1) for v in range(1, 6)
    )
    with pytest.raises(ValueError, match="vote counts"):
        beta_stop_probability(-1, 0)


# -- the stopping rule ----------------------------------------------------------------------------------


def test_stops_at_exactly_four_agreeing_samples_not_three(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5")])
    result, _ = run(AdaptiveConsistency(batch_size=1, threshold=0.95, max_n=16), gen)
    assert [params.n for _, params in gen.calls] == [1, 1, 1, 1]
    checks = events(result, "check")
    assert [(c["samples"], c["stop"]) for c in checks] == [(1, False), (2, False), (3, False), (4, True)]
    assert checks[2]["probability"] == 0.9375 and checks[3]["probability"] == 0.96875
    [stop] = events(result, "stop")
    assert (stop["reason"], stop["samples_used"], stop["samples_saved"]) == ("confident", 4, 12)
    assert result.answer == "5" and result.confidence == 1.0


def test_threshold_boundary_is_inclusive_and_exact(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5")])
    result, _ = run(AdaptiveConsistency(batch_size=1, threshold=0.9375), gen)  # exactly P at 3 votes
    assert events(result, "stop")[0]["samples_used"] == 3


def test_disagreement_draws_max_n(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5"), boxed("6")])
    result, _ = run(AdaptiveConsistency(batch_size=1, max_n=6), gen)
    [stop] = events(result, "stop")
    assert (stop["reason"], stop["samples_used"], stop["samples_saved"]) == ("max_n", 6, 0)
    assert result.answer == "5"  # a 3-3 tie goes to the answer seen first
    assert len(events(result, "sample")) == 6


def test_a_late_majority_stops_when_its_lead_is_clear(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("6")] + [boxed("5")] * 20)
    result, _ = run(AdaptiveConsistency(batch_size=1, max_n=40), gen)
    # v2 = 1: P(5 votes vs 1) = 1 - 8/128 = 0.9375 < 0.95, P(6 vs 1) = 1 - 9/256 = 0.965 >= 0.95
    [stop] = events(result, "stop")
    assert stop["samples_used"] == 7 and result.answer == "5"
    assert result.candidates[0].votes == 6 and result.candidates[1].votes == 1


@pytest.mark.parametrize(("batch_size", "calls", "used"), [(2, [2, 2], 4), (3, [3, 3], 6), (5, [5], 5)])
def test_batches_check_between_calls_and_may_overshoot(
    scripted: Make, boxed: Boxed, batch_size: int, calls: list[int], used: int
) -> None:
    gen = scripted([boxed("5")])
    result, _ = run(AdaptiveConsistency(batch_size=batch_size, max_n=16), gen)
    assert [params.n for _, params in gen.calls] == calls
    assert events(result, "stop")[0]["samples_used"] == used


def test_last_batch_is_trimmed_to_max_n(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5"), boxed("6")])
    run(AdaptiveConsistency(batch_size=4, max_n=6), gen)
    assert [params.n for _, params in gen.calls] == [4, 2]


def test_equivalent_answers_count_together_and_abstainers_do_not(scripted: Make, boxed: Boxed) -> None:
    gen = scripted(["I do not know.", boxed("1/2"), boxed("0.5"), boxed("\\frac{1}{2}"), boxed("2/4")])
    result, _ = run(AdaptiveConsistency(batch_size=1), gen)
    checks = events(result, "check")
    assert [(c["top"], c["second"]) for c in checks] == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]
    assert events(result, "stop")[0]["samples_used"] == 5
    assert result.answer == "1/2" and result.confidence == pytest.approx(4 / 5)
    assert [s["voted"] for s in events(result, "sample")] == [False, True, True, True, True]


def test_seeds_follow_the_sample_index_across_batches(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5"), boxed("6")])
    run(AdaptiveConsistency(batch_size=2, max_n=6, seed=40), gen)
    assert [params.seed for _, params in gen.calls] == [40, 42, 44]
    assert all(params.temperature == 0.7 and params.max_tokens == 512 for _, params in gen.calls)


# -- budget ---------------------------------------------------------------------------------------------


def test_budget_stops_the_sampling_and_is_never_exceeded(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5"), boxed("6")])
    p = gen.count_prompt_tokens([cot_prompt(PROBLEM.question, continue_prefix=True)])[0]
    budget = Budget(tokens=3 * (p + 20))
    result, ledger = run(AdaptiveConsistency(batch_size=1, max_n=16, max_tokens=20), gen, budget)
    [stop] = events(result, "stop")
    assert stop["reason"] == "budget" and 1 <= stop["samples_used"] < 16
    assert stop["samples_saved"] == 16 - stop["samples_used"]
    assert ledger.usage().total.total_tokens <= 3 * (p + 20)


def test_budget_too_small_for_one_sample_raises(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5")])
    with pytest.raises(BudgetExhausted):
        run(AdaptiveConsistency(), gen, Budget(tokens=2))
    assert gen.calls == []


# -- configuration --------------------------------------------------------------------------------------


def test_registered_with_paper_defaults() -> None:
    assert STRATEGIES.get("adaptive_consistency") is AdaptiveConsistency
    ac = build_strategy("adaptive_consistency", {"threshold": "0.9", "max_n": "40", "batch_size": "1"})
    assert isinstance(ac, AdaptiveConsistency) and (ac.threshold, ac.max_n, ac.batch_size) == (0.9, 40, 1)
    default = AdaptiveConsistency()
    assert (default.threshold, default.max_n, default.batch_size) == (0.95, 16, 2)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"threshold": "-0.01"}, "threshold must be in [0, 1]"),
        ({"threshold": "1.01"}, "threshold must be in [0, 1]"),
        ({"max_n": "0"}, "max_n must be an integer >= 1"),
        ({"batch_size": "0"}, "batch_size must be an integer >= 1"),
        ({"temperature": "-1"}, "temperature must be a finite number >= 0"),
        ({"seed": "-3"}, "seed must be an integer >= 0 or none"),
    ],
)
def test_invalid_values_are_refused(params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build_strategy("adaptive_consistency", params)


def test_threshold_zero_stops_after_the_first_batch(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5"), boxed("6")])
    result, _ = run(AdaptiveConsistency(threshold=0.0, batch_size=2), gen)
    assert events(result, "stop")[0]["samples_used"] == 2


def test_game24_answers_group_by_the_puzzles_numbers(scripted: Make) -> None:
    responses = ["\\boxed{4*6}", "\\boxed{6*4}", "\\boxed{(1+2+3)*4}", "\\boxed{1*2*3*4}"]
    problem = Problem("Make 24 from 1 2 3 4.", answer_kind="game24", metadata={"numbers": [1, 2, 3, 4]})
    gen = scripted(responses)
    result = AdaptiveConsistency(batch_size=4, max_n=4).solve(problem, Ledger().meter(gen))
    # with the numbers, 4*6 is not a solution of this puzzle: the two valid solutions lead 2 to 1
    assert result.answer == "(1+2+3)*4"
    assert [(c["top"], c["second"]) for c in events(result, "check")] == [(2, 1)]
