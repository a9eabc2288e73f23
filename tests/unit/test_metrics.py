"""Evaluation metrics against values computed by hand (or by the textbook formula they replace)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from ttscale.evals.metrics import (
    compare,
    pass_at_k,
    percentile,
    sample_ks,
    summarize,
    vote_correct,
    wilson_interval,
)
from ttscale.evals.records import ProblemRecord, SampleRecord
from ttscale.types import ModelUsage


def sample(index: int, group: int | None, correct: bool, **weights: float) -> SampleRecord:
    return SampleRecord(
        index, f"text {index}", 5, None if group is None else str(group), correct, group, **weights
    )


def problem(
    pid: str,
    correct: bool,
    samples: tuple[SampleRecord, ...] = (),
    *,
    answer: str | None = "1",
    completion: int = 10,
    latency: float = 1.0,
    error: str | None = None,
) -> ProblemRecord:
    usage = ModelUsage(1, 20, 5, completion, 0, 1e9)
    return ProblemRecord(0, pid, "math", None, answer, "1", correct, usage, latency, error, {}, samples)


# -- Wilson --------------------------------------------------------------------------------------------


def test_wilson_matches_the_textbook_values() -> None:
    # 8 of 10: the interval every Wilson table lists, [0.4902, 0.9433]
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.49016, abs=1e-4), pytest.approx(0.94332, abs=1e-4))
    # 0 of 10: no collapse to a point, upper bound z²/(n + z²) = 0.2775
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(3.841459 / (10 + 3.841459), abs=1e-6)
    # 10 of 10 mirrors 0 of 10
    assert wilson_interval(10, 10)[0] == pytest.approx(1 - hi, abs=1e-12)


def test_wilson_without_problems_is_the_whole_unit_interval() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


# -- pass@k --------------------------------------------------------------------------------------------


def test_pass_at_k_hand_values() -> None:
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(4, 3, 2) == 1.0  # only one wrong sample: every pair holds a correct one
    assert pass_at_k(7, 0, 3) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(20, 7, 5), (200, 13, 100), (64, 1, 64), (3, 3, 1), (100, 50, 1)])
def test_pass_at_k_product_form_equals_the_binomial_ratio(n: int, c: int, k: int) -> None:
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (3, 4, 1), (3, 1, 0)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# -- votes ---------------------------------------------------------------------------------------------


def test_majority_of_the_first_k_samples() -> None:
    # answer classes 0 (wrong), 1 (correct), 1, 0, 0
    s = (
        sample(0, 0, False),
        sample(1, 1, True),
        sample(2, 1, True),
        sample(3, 0, False),
        sample(4, 0, False),
    )
    assert vote_correct(s, 1, weighted=False) is False
    assert vote_correct(s, 2, weighted=False) is False  # 1-1 tie: the class seen first wins
    assert vote_correct(s, 3, weighted=False) is True  # 2 votes to 1
    assert vote_correct(s, 5, weighted=False) is False  # 3 votes to 2


def test_weighted_vote_uses_the_strategy_weights() -> None:
    s = (
        sample(0, 0, False, weight=0.1),
        sample(1, 1, True, weight=1.0),
        sample(2, 0, False, weight=0.1),
        sample(3, 0, False, weight=0.1),
    )
    assert vote_correct(s, 4, weighted=False) is False  # 3 votes to 1
    assert vote_correct(s, 4, weighted=True) is True  # 1.0 against 0.3


def test_weight_falls_back_to_score_then_confidence_then_one() -> None:
    assert sample(0, 0, True, weight=2.0, score=3.0).vote_weight == 2.0
    assert sample(0, 0, True, score=3.0, confidence=4.0).vote_weight == 3.0
    assert sample(0, 0, True, confidence=4.0).vote_weight == 4.0
    assert sample(0, 0, True).vote_weight == 1.0


def test_samples_without_an_answer_abstain() -> None:
    assert vote_correct((sample(0, None, False), sample(1, None, False)), 2, weighted=False) is False
    assert vote_correct((sample(0, None, False), sample(1, 0, True)), 2, weighted=False) is True


# -- percentiles and ks ----------------------------------------------------------------------------------


def test_percentiles_interpolate_linearly() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)  # rank 2.85
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))


def test_ks_are_powers_of_two_up_to_the_fewest_samples() -> None:
    def with_n(n: int) -> ProblemRecord:
        return problem("p", False, tuple(sample(i, 0, False) for i in range(n)))

    assert sample_ks([with_n(8)]) == [1, 2, 4, 8]
    assert sample_ks([with_n(5), with_n(9)]) == [1, 2, 4, 5]
    assert sample_ks([with_n(1), problem("failed", False)]) == [1]  # a failed solve has no samples
    assert sample_ks([problem("a", True)]) == []


# -- a whole run ---------------------------------------------------------------------------------------


def test_summarize_by_hand() -> None:
    a = problem("a", True, (sample(0, 0, True), sample(1, 1, False)), completion=10, latency=1.0)
    b = problem("b", False, (sample(0, 0, False), sample(1, 0, False)), completion=30, latency=3.0)
    c = problem("c", False, answer=None, completion=2, latency=2.0, error="BudgetExhausted: no")
    m = summarize([a, b, c])
    assert (m.n_problems, m.n_correct, m.n_errors) == (3, 1, 1)
    assert m.accuracy == pytest.approx(1 / 3)
    assert m.accuracy_ci == wilson_interval(1, 3)
    assert m.usage == ModelUsage(3, 60, 15, 42, 0, 3e9)
    assert m.to_dict()["tokens_per_problem"] == pytest.approx((60 + 42) / 3)
    assert m.to_dict()["flops_per_problem"] == pytest.approx(1e9)
    assert (m.latency_p50, m.latency_p95) == (pytest.approx(2.0), pytest.approx(2.9))
    # pass@1: a has 1 of 2 correct, b none, c failed (0) -> (0.5 + 0 + 0) / 3; pass@2: a passes
    assert m.pass_at_k == {1: pytest.approx(0.5 / 3), 2: pytest.approx(1 / 3)}
    # maj@2 on a: a 1-1 tie goes to the first class, which is correct
    assert m.maj_at_k == {1: pytest.approx(1 / 3), 2: pytest.approx(1 / 3)}


def test_summarize_weighted_at_k_differs_from_maj_at_k_where_the_weights_decide() -> None:
    # a wrong answer drawn twice at weight 0.1, a correct one once at weight 1.0
    s = (sample(0, 0, False, weight=0.1), sample(1, 1, True, weight=1.0), sample(2, 0, False, weight=0.1))
    m = summarize([problem("p", False, s)])
    assert m.maj_at_k == {1: 0.0, 2: 0.0, 3: 0.0}  # k=2: a 1-1 tie goes to the first class seen
    assert m.weighted_at_k == {1: 0.0, 2: 1.0, 3: 1.0}  # 1.0 against 0.1, then against 0.2
    assert m.to_dict()["weighted_at_k"] == {"1": 0.0, "2": 1.0, "3": 1.0}


def test_summarize_nothing() -> None:
    m = summarize([])
    assert (m.n_problems, m.accuracy, m.accuracy_ci, m.pass_at_k) == (0, 0.0, (0.0, 1.0), {})


def test_compare_finds_flips_and_disagreements() -> None:
    a = [
        problem("p1", True, answer="1/2"),
        problem("p2", False, answer="3"),
        problem("p3", True),
        problem("p4", False),
    ]
    b = [
        problem("p1", True, answer="0.5"),
        problem("p2", True, answer="4"),
        problem("p3", False, answer=None),
    ]
    diff = compare(a, b)
    assert diff.common == 3 and (diff.only_a, diff.only_b) == (1, 0)
    assert diff.disagreements == 2  # 1/2 and 0.5 are the same answer; 3 vs 4 and 1 vs none are not
    assert diff.fixed == ("p2",) and diff.broken == ("p3",)
