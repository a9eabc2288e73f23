"""Self-consistency with length-normalised probability weights, and Game-of-24 grouping by puzzle."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ttscale import CapabilityError, ConfigError, Ledger, Problem, Result
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.strategies import build_strategy
from ttscale.strategies.self_consistency import SelfConsistency

PROBLEM = Problem("What is 2 + 3?")
P = {"sure": 0.99, "maybe": 0.3}  # per-token probability; other tokens 0.9


def logprob(tok: str, _index: int) -> float:
    return math.log(P.get(tok.strip(), 0.9))


def run(strategy: SelfConsistency, gen: ScriptedGenerator, problem: Problem = PROBLEM) -> Result:
    return strategy.solve(problem, Ledger().meter(gen))


def vote_event(result: Result) -> dict[str, Any]:
    [vote] = [dict(e.data) for e in result.trace if e.kind == "vote"]
    return vote


def test_weighted_vote_can_overturn_the_majority() -> None:
    responses = ["maybe maybe \\boxed{5}", "maybe maybe \\boxed{5}", "sure sure \\boxed{6}"]
    majority = run(SelfConsistency(n=3), ScriptedGenerator(responses, logprob_fn=logprob))
    assert majority.answer == "5"
    weighted = run(
        SelfConsistency(n=3, weighting="length_normalized"), ScriptedGenerator(responses, logprob_fn=logprob)
    )
    w5 = (0.3 * 0.3 * 0.9) ** (1 / 3)  # geometric mean token probability of each "5" sample
    w6 = (0.99 * 0.99 * 0.9) ** (1 / 3)
    assert vote_event(weighted)["weights"] == pytest.approx([w5, w5, w6])
    assert w6 > 2 * w5  # the script is built so that weights overturn the 2-to-1 majority
    assert weighted.answer == "6"
    assert [c.votes for c in weighted.candidates] == pytest.approx([w6, 2 * w5])
    assert weighted.confidence == pytest.approx(w6 / (w6 + 2 * w5))


def test_weights_are_normalised_by_length_not_raw_sequence_probability() -> None:
    # one token at p = 0.8 against ten at p = 0.9: the raw sequence probability (0.8 > 0.9^10 = 0.35)
    # would pick 5, the per-token (length-normalised) one picks 6
    responses = ["\\boxed{5}", " ".join(["long"] * 9) + " \\boxed{6}"]

    def lp(tok: str, _index: int) -> float:
        return math.log(0.8 if tok.strip() == "\\boxed{5}" else 0.9)

    gen = ScriptedGenerator(responses, logprob_fn=lp)
    result = run(SelfConsistency(n=2, weighting="length_normalized"), gen)
    assert vote_event(result)["weights"] == pytest.approx([0.8, 0.9])
    assert result.answer == "6"


def test_weighting_asks_for_sampled_token_logprobs_only() -> None:
    gen = ScriptedGenerator(["\\boxed{5}"], logprob_fn=logprob)
    run(SelfConsistency(n=2, weighting="length_normalized"), gen)
    assert [params.logprobs for _, params in gen.calls] == [0]
    gen = ScriptedGenerator(["\\boxed{5}"], logprob_fn=logprob)
    run(SelfConsistency(n=2), gen)
    assert [params.logprobs for _, params in gen.calls] == [None]  # majority: no logprobs, no cost


def test_weighting_without_logprobs_is_a_capability_error_before_sampling() -> None:
    gen = ScriptedGenerator(["\\boxed{5}"])  # no logprob_fn: the backend declares no logprobs
    with pytest.raises(CapabilityError, match="logprobs of its sampled tokens"):
        run(SelfConsistency(weighting="length_normalized"), gen)
    assert gen.calls == []
    assert run(SelfConsistency(n=2), gen).answer == "5"  # majority needs none


def test_weighting_is_a_parameter() -> None:
    sc = build_strategy("self_consistency", {"weighting": "length_normalized"})
    assert isinstance(sc, SelfConsistency) and sc.weighting == "length_normalized"
    assert SelfConsistency().weighting == "majority"
    with pytest.raises(ConfigError, match="expects 'majority' | 'length_normalized'"):
        build_strategy("self_consistency", {"weighting": "softmax"})
    with pytest.raises(ConfigError, match="weighting must be"):
        SelfConsistency(weighting="softmax")  # type: ignore[arg-type]


def test_weighted_final_line_fallback_uses_the_weights() -> None:
    responses = ["Hmm.\nmaybe maybe", "Hmm.\nmaybe maybe", "Hmm.\nsure sure"]
    result = run(
        SelfConsistency(n=3, weighting="length_normalized"), ScriptedGenerator(responses, logprob_fn=logprob)
    )
    assert vote_event(result)["method"] == "final_line"
    assert result.answer == "sure sure"  # 0.96 outweighs 2 x 0.43 (the token "Hmm." has p = 0.9)


def test_game24_votes_group_valid_solutions_of_the_puzzle() -> None:
    responses = ["\\boxed{4*6}", "\\boxed{6*4}", "\\boxed{(1+2+3)*4}", "\\boxed{1*2*3*4}"]
    puzzle = Problem("Make 24 from 1 2 3 4.", answer_kind="game24", metadata={"numbers": [1, 2, 3, 4]})
    result = run(SelfConsistency(n=4), ScriptedGenerator(responses), puzzle)
    # 4*6 uses numbers the puzzle does not have: only the two valid solutions are one answer
    assert result.answer == "(1+2+3)*4" and result.candidates[0].samples == (2, 3)
    unknown = Problem(puzzle.question, answer_kind="game24")  # without the numbers 4*6 and 6*4 also group
    assert run(SelfConsistency(n=4), ScriptedGenerator(responses), unknown).answer == "4*6"
