"""Scaling analysis: subsampled curves and their cost, difficulty bins, FLOPs matching (hand-computed)."""

from __future__ import annotations

import pytest

from ttscale.errors import ConfigError
from ttscale.evals.analysis import (
    accuracy_by_bin,
    agreement,
    flops_matched,
    oracle_bins,
    predicted_bins,
    run_point,
    sample_curve,
    subsample_rule,
    subsampled_point,
)
from ttscale.evals.records import ProblemRecord, SampleRecord
from ttscale.types import ModelUsage


def s(index: int, group: int | None, correct: bool, tokens: int = 10, **extra: float) -> SampleRecord:
    return SampleRecord(index, "", tokens, None if group is None else str(group), correct, group, **extra)


def prob(
    pid: str, samples: list[SampleRecord], prompt: int = 20, flops: float | None = None
) -> ProblemRecord:
    completion = sum(x.tokens or 0 for x in samples)
    usage = ModelUsage(
        1, prompt, 0, completion, 0, flops if flops is not None else 2.0 * (prompt + completion)
    )
    final = samples[0].correct if samples else False
    return ProblemRecord(0, pid, "number", 0, "1", "1", final, usage, 1.0, None, {}, tuple(samples))


# p1: wrong first, then the right answer wins from k = 3 on; p2: right from the start
P1 = prob("p1", [s(0, 1, False, 10), s(1, 0, True, 30), s(2, 0, True, 20), s(3, 1, False, 40)])
P2 = prob("p2", [s(0, 0, True, 10), s(1, 0, True, 10), s(2, 1, False, 10), s(3, 0, True, 10)])


def test_majority_at_k_and_its_cost_from_the_first_k_samples() -> None:
    rule = subsample_rule("self_consistency", {})
    assert rule is not None
    at1 = subsampled_point([P1, P2], 1, rule, "sc n=1")
    assert at1.correct == {"p1": False, "p2": True} and at1.accuracy == 0.5
    # tokens at k: the prompt once plus the first k samples
    assert at1.tokens_per_problem == ((20 + 10) + (20 + 10)) / 2
    # FLOPs scale with the token share: p1 recorded 2*(20+100) FLOPs for 120 tokens
    assert at1.flops_per_problem == pytest.approx((2 * 120 * 30 / 120 + 2 * 60 * 30 / 60) / 2)
    at3 = subsampled_point([P1, P2], 3, rule, "sc n=3")
    assert at3.correct == {"p1": True, "p2": True}
    at4 = subsampled_point([P1, P2], 4, rule, "sc n=4")
    assert at4.flops_per_problem == pytest.approx((P1.usage.flops + P2.usage.flops) / 2)  # all of it


def test_best_of_n_naive_takes_the_best_scored_of_the_first_k() -> None:
    p = prob("p", [s(0, 0, False, score=0.9), s(1, 1, True, score=0.95), s(2, 1, True, score=0.1)])
    naive = subsample_rule("best_of_n", {"selection": "naive"})
    weighted = subsample_rule("best_of_n", {})
    assert naive is not None and weighted is not None
    assert [naive(p.samples, k) for k in (1, 2, 3)] == [False, True, True]
    # weighted sums scores per answer: group 0 has 0.9, group 1 has 0.95 then 1.05
    assert [weighted(p.samples, k) for k in (1, 2, 3)] == [False, True, True]
    assert subsample_rule("mcts", {}) is None


def test_sample_curve_refuses_what_it_cannot_derive() -> None:
    with pytest.raises(ConfigError, match="cannot be subsampled"):
        sample_curve([P1], "beam_search", {}, [1])
    with pytest.raises(ConfigError, match="4 samples per problem; cannot derive k = \\[8\\]"):
        sample_curve([P1, P2], "self_consistency", {}, [1, 8])
    points = sample_curve([P1, P2], "self_consistency", {}, [1, 2, 4])
    assert [p.budget for p in points] == [1, 2, 4]
    assert [p.flops_per_problem for p in points] == sorted(p.flops_per_problem for p in points)


def test_oracle_bins_rank_by_pass_at_1_easiest_first() -> None:
    probs = [prob(f"q{i}", [s(j, 0, j < c) for j in range(4)]) for i, c in enumerate([0, 4, 1, 3, 2, 2])]
    bins = oracle_bins(probs, n_bins=3)
    # pass@1: q1 1.0, q3 .75, q4 .5, q5 .5, q2 .25, q0 0 -> two per bin, ties by id
    assert bins == {"q1": 1, "q3": 1, "q4": 2, "q5": 2, "q2": 3, "q0": 3}
    with pytest.raises(ConfigError, match="needs a run with samples"):
        oracle_bins([prob("x", [])])


def test_predicted_bins_use_probe_agreement_without_the_key() -> None:
    assert agreement([s(0, 0, True), s(1, 0, False), s(2, 1, True), s(3, None, False)]) == 0.5
    assert agreement([s(0, None, False), s(1, None, False)]) == 0.5  # no answers never agree
    unanimous = prob("a", [s(i, 0, False) for i in range(4)])
    split = prob("b", [s(0, 0, True), s(1, 1, True), s(2, 2, True), s(3, 0, True), s(4, 0, True)])
    bins = predicted_bins([split, unanimous], probe=3, n_bins=2)
    assert bins == {"a": 1, "b": 2}  # correctness plays no part: only the first 3 answers' agreement


def test_accuracy_by_bin_and_flops_matching() -> None:
    point = run_point([P1, P2], "greedy", 1)
    assert point.correct == {"p1": False, "p2": True}
    assert accuracy_by_bin(point, {"p1": 2, "p2": 1}) == {1: (1.0, 1), 2: (0.0, 1)}
    rule = subsample_rule("self_consistency", {})
    assert rule is not None
    curve = [subsampled_point([P1, P2], k, rule, f"n={k}") for k in (1, 2, 4)]
    target = (curve[1].flops_per_problem + curve[2].flops_per_problem) / 2
    matched = flops_matched(curve, target)
    assert matched is not None and matched.budget == 2
    assert flops_matched(curve, curve[0].flops_per_problem / 2) is None
