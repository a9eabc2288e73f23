"""Scaling analysis: subsampled curves and their cost, difficulty bins, FLOPs matching (hand-computed)."""

from __future__ import annotations

import math

import pytest

from ttscale.errors import ConfigError
from ttscale.evals.analysis import (
    accuracy_by_bin,
    agreement,
    confidence,
    flops_matched,
    oracle_bins,
    predicted_bins,
    run_point,
    sample_curve,
    series_of_runs,
    subsample_rule,
    subsampled_point,
)
from ttscale.evals.records import ProblemRecord, SampleRecord
from ttscale.types import ModelUsage


def s(index: int, group: int | None, correct: bool, tokens: int = 10, **extra: float) -> SampleRecord:
    return SampleRecord(index, "", tokens, None if group is None else str(group), correct, group, **extra)


def prob(
    pid: str,
    samples: list[SampleRecord],
    prompt: int = 20,
    flops: float | None = None,
    result: dict[str, object] | None = None,
    completion: int | None = None,
) -> ProblemRecord:
    completion = sum(x.tokens or 0 for x in samples) if completion is None else completion
    usage = ModelUsage(
        1, prompt, 0, completion, 0, flops if flops is not None else 2.0 * (prompt + completion)
    )
    final = samples[0].correct if samples else False
    return ProblemRecord(0, pid, "number", 0, "1", "1", final, usage, 1.0, None, result or {}, tuple(samples))


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


def test_best_of_n_selects_only_among_samples_that_voted() -> None:
    # the best score belongs to a sample without an answer, then to one the budget left unscored: neither
    # can win in best_of_n itself (no answer abstains, an unscored sample has no weight)
    no_answer = s(0, None, False, score=0.9)
    unscored = SampleRecord(2, "", 10, "5", False, 1, score=None, data={"voted": False})
    p = prob("p", [no_answer, s(1, 0, True, score=0.6), unscored])
    naive = subsample_rule("best_of_n", {"selection": "naive"})
    weighted = subsample_rule("best_of_n", {})
    assert naive is not None and weighted is not None
    assert naive(p.samples, 1) is False  # nothing voted yet
    assert naive(p.samples, 3) is True
    assert weighted(p.samples, 3) is True  # the unscored sample's 1.0 fallback weight no longer outvotes
    assert not unscored.voted and s(1, 0, True).voted and not no_answer.voted


def test_best_of_n_borda_ranks_the_first_k_afresh() -> None:
    # answers 3, 5, 5, 7 (groups 0, 1, 1, 2) scored 0.9, 0.2, 0.3, 0.8; only 5 is right
    p = prob(
        "p",
        [
            s(0, 0, False, score=0.9),
            s(1, 1, True, score=0.2),
            s(2, 1, True, score=0.3),
            s(3, 2, False, score=0.8),
        ],
    )
    borda = subsample_rule("best_of_n", {"selection": "borda"})
    majority = subsample_rule("best_of_n", {"selection": "borda", "borda_power": "0"})
    assert borda is not None and majority is not None
    # k=2: ranks 1, 2 -> 3 gets sqrt(2), 5 gets 1; k=3: 3 gets sqrt(3), 5 gets 1 + sqrt(2); k=4 as the strategy
    assert [borda(p.samples, k) for k in (1, 2, 3, 4)] == [False, False, True, True]
    assert [majority(p.samples, k) for k in (1, 2, 3, 4)] == [False, False, True, True]
    steep = subsample_rule("best_of_n", {"selection": "borda", "borda_power": "3"})
    assert steep is not None and steep(p.samples, 4) is False
    # the first 4 are ranked among themselves, not by their ranks among all 6: answers B B A A (B wrong),
    # scores .3 .2 .8 .1 -> votes sqrt(3), sqrt(2), sqrt(4), 1: B 3.15 beats A 3.0; by their ranks among all
    # six (.7 and .3 come after them) they would get sqrt(4), sqrt(2), sqrt(6), 1, and A would win 3.45 to 3.41
    q = prob(
        "q",
        [s(0, 0, False, score=0.3), s(1, 0, False, score=0.2), s(2, 1, True, score=0.8),
         s(3, 1, True, score=0.1), s(4, 0, False, score=0.7), s(5, 1, True, score=0.3)],
    )  # fmt: skip
    assert borda(q.samples, 4) is False
    assert borda(q.samples, 6) is False  # all six: B 5.65 against A 5.18


def test_a_verifier_s_cost_is_split_over_the_samples_it_scored() -> None:
    # policy: 20 prompt tokens shared, samples of 10, 30, 20 tokens; the judge read each sample on its own:
    # 3 * 40 prompt tokens and 3 verdict tokens, 2 FLOPs per token like the rest
    scoring = {"prompt_tokens": 120, "completion_tokens": 3, "flops": 2.0 * 123}
    trace = [{"kind": "sample"}, {"kind": "vote", "scoring": scoring}]
    samples = [s(0, 0, True, 10, score=0.5), s(1, 0, True, 30, score=0.5), s(2, 0, True, 20, score=0.5)]
    p = prob("p", samples, prompt=20 + 120, completion=60 + 3, result={"trace": trace})
    rule = subsample_rule("best_of_n", {})
    assert rule is not None
    at1 = subsampled_point([p], 1, rule, "bon n=1")
    assert at1.tokens_per_problem == pytest.approx(20 + 10 + 123 / 3)
    assert at1.flops_per_problem == pytest.approx(2.0 * (20 + 10) + 2.0 * 123 / 3)
    at3 = subsampled_point([p], 3, rule, "bon n=3")
    assert at3.tokens_per_problem == p.usage.total_tokens and at3.flops_per_problem == p.usage.flops
    # a record without the figure (an older run) is costed as before: every prompt token shared
    old = prob("p", samples, prompt=20 + 120, completion=60 + 3)
    assert subsampled_point([old], 1, rule, "n=1").tokens_per_problem == 20 + 120 + 10


def test_series_never_mix_datasets_and_a_run_without_points_has_none() -> None:
    def config(dataset: str, strategy: str = "cot", limit: int = 2) -> dict[str, object]:
        return {"dataset": dataset, "limit": limit, "offset": 0, "model": "m", "strategy": strategy}

    failed = ProblemRecord(0, "x", "number", 0, None, "1", False, ModelUsage(), 1.0, "Boom: no", {}, ())
    series = series_of_runs(
        [
            ("r1", config("gsm8k"), [P1, P2]),
            ("r2", config("math500"), [P1, P2]),
            ("r3", config("gsm8k", limit=5), [P1, P2]),
            ("r4", config("gsm8k", "self_consistency"), [failed]),
        ]
    )
    assert sorted((x.dataset, x.run_ids) for x in series) == [
        ("gsm8k[0:2]", ("r1",)),
        ("gsm8k[0:5]", ("r3",)),
        ("math500[0:2]", ("r2",)),
    ]
    assert {x.label for x in series} == {
        "gsm8k[0:2] · m · cot",
        "gsm8k[0:5] · m · cot",
        "math500[0:2] · m · cot",
    }
    (alone,) = series_of_runs([("r1", config("gsm8k"), [P1, P2])])
    assert alone.label == "m · cot"  # one slice: no need to name it


def test_a_run_without_its_budget_knob_sits_at_the_strategy_s_default() -> None:
    base = {"dataset": "gsm8k", "limit": 2, "model": "m"}
    runs = [
        ("r1", base | {"strategy": "mcts"}, [P1, P2]),
        ("r2", base | {"strategy": "budget_forcing", "params": {"max_thinking_tokens": "512"}}, [P1, P2]),
    ]
    budgets = {x.strategy: [p.budget for p in x.points] for x in series_of_runs(runs)}
    assert budgets == {"mcts": [16], "budget_forcing": [512]}  # MCTS's default 16 iterations


def test_sample_curve_refuses_what_it_cannot_derive() -> None:
    with pytest.raises(ConfigError, match="cannot be subsampled"):
        sample_curve([P1], "beam_search", {}, [1])
    with pytest.raises(ConfigError, match="4 samples per problem; cannot derive k = \\[8\\]"):
        sample_curve([P1, P2], "self_consistency", {}, [1, 8])
    points = sample_curve([P1, P2], "self_consistency", {}, [1, 2, 4])
    assert [p.budget for p in points] == [1, 2, 4]
    assert [p.flops_per_problem for p in points] == sorted(p.flops_per_problem for p in points)


def test_a_budgeted_sampling_run_gives_every_n_up_to_the_one_it_asked_for() -> None:
    # n=4 under a token budget: p1's budget ran out after 2 samples, p2's after 4
    short = prob("p1", [s(0, 1, False, 10), s(1, 0, True, 30)])
    base = {
        "dataset": "gsm8k",
        "limit": 2,
        "model": "m",
        "strategy": "self_consistency",
        "params": {"n": "4"},
    }
    (unbudgeted,) = series_of_runs([("r1", base, [short, P2])])
    assert [p.budget for p in unbudgeted.points] == [1, 2]  # no budget: k stops at the fewest samples
    (budgeted,) = series_of_runs([("r1", base | {"budget_tokens": 100}, [short, P2])])
    assert [p.budget for p in budgeted.points] == [1, 2, 4]
    assert budgeted.points[2].correct == {"p1": False, "p2": True}  # p1 votes with its 2 samples (a 1-1 tie)
    assert [p.budget for p in sample_curve([short, P2], "self_consistency", {}, [4], budgeted_n=4)] == [4]
    # a budget too small for one sample: every solve failed, there is nothing to derive
    failed = ProblemRecord(
        0, "x", "number", 0, None, "1", False, ModelUsage(), 1.0, "BudgetExhausted", {}, ()
    )
    assert series_of_runs([("r2", base | {"budget_tokens": 1}, [failed])]) == []
    with pytest.raises(ConfigError, match="0 samples per problem"):
        sample_curve([failed], "self_consistency", {}, [1], budgeted_n=4)


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
    bins, how = predicted_bins([split, unanimous], probe=3, n_bins=2)
    assert bins == {"a": 1, "b": 2}  # correctness plays no part: only the first 3 answers' agreement
    assert how == "agreement of the first 3 samples"  # no logprob summaries: agreement alone


def test_predicted_bins_rank_equal_agreement_by_the_probes_confidence() -> None:
    def sure(mean_logprob: float, group: int = 0, correct: bool = False) -> SampleRecord:
        return SampleRecord(0, "", 5, str(group), correct, group, data={"logprob": {"mean": mean_logprob}})

    # all three agree fully; "hesitant" samples its tokens at a geometric-mean probability of e^-2
    confident = prob("confident", [sure(-0.1), sure(-0.2)])
    hesitant = prob("a_hesitant", [sure(-2.0, correct=True), sure(-2.0, correct=True)])
    middling = prob("middling", [sure(-0.5), sure(-1.0)])
    split = prob("split", [sure(-0.01, 0), sure(-0.01, 1)])  # very sure, but of two answers
    bins, how = predicted_bins([hesitant, middling, split, confident], probe=2, n_bins=4)
    assert bins == {"confident": 1, "middling": 2, "a_hesitant": 3, "split": 4}
    assert how == "agreement, then confidence, of the first 2 samples"
    assert confidence(middling.samples) == pytest.approx((math.exp(-0.5) + math.exp(-1.0)) / 2)
    # a probe that ended at once has an empty summary: it counts as no confidence, it does not void it
    empty = SampleRecord(1, "", 0, None, False, None, data={"logprob": {"tokens": 0}})
    quitter = prob("quitter", [sure(-0.1), empty])
    assert confidence(quitter.samples) == pytest.approx(math.exp(-0.1) / 2)
    assert predicted_bins([quitter, confident], probe=2, n_bins=2)[1].startswith("agreement, then confidence")
    # one problem without summaries (recorded by an older version): confidence is left out for all
    old = prob("old", [s(0, 0, False), s(1, 0, False)])
    bins, how = predicted_bins([hesitant, old, confident], probe=2, n_bins=3)
    assert how == "agreement of the first 2 samples" and bins["a_hesitant"] == 1  # ties go by id


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
