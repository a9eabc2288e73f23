"""Best-of-N on the scripted backend: selection, scorers, the judge's metering, budgets, validation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ttscale import Budget, BudgetExhausted, ConfigError, Ledger, Problem, Result, UnknownNameError
from ttscale.backends.base import Generator
from ttscale.backends.draws import DrawFile, DrawReplay
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.errors import CapabilityError
from ttscale.prompts import MATH_COT_SYSTEM_PROMPT
from ttscale.scorers import Sample
from ttscale.scorers.llm_judge import FOLLOWUP_QUESTION, JUDGE_SYSTEM_PROMPT, FollowupJudge
from ttscale.strategies import best_of_n as bon
from ttscale.strategies import build_strategy
from ttscale.strategies.best_of_n import BestOfN
from ttscale.strategies.voting import borda_votes
from ttscale.types import Message, Prompt

PROBLEM = Problem("What is 2 + 3?")
Boxed = Callable[..., str]


def verdict_top(tok: str, i: int) -> list[tuple[str, float]]:
    """A judge token ``J<pct>`` has P(Yes) = pct / 100 after normalising against Yes + No."""
    p = int(tok.strip()[1:]) / 100
    return [("Yes", math.log(0.8 * p)), ("No", math.log(0.8 * (1 - p))), ("Hmm", math.log(0.2))]


def self_judging(policy: Sequence[str], judge: Callable[[str], int], **options: Any) -> ScriptedGenerator:
    """One scripted model: samples ``policy`` in turn and, asked as a judge, answers J<judge(solution)>."""
    draws = itertools.count()

    def respond(prompt: Prompt, k: int) -> str:
        if prompt.messages[0].content == JUDGE_SYSTEM_PROMPT:
            return f"J{judge(prompt.messages[-1].content)}"
        return policy[next(draws) % len(policy)]

    return ScriptedGenerator(respond, top_fn=verdict_top, **options)


def run(strategy: BestOfN, gen: Generator, budget: Budget | None = None) -> tuple[Result, Ledger]:
    ledger = Ledger(budget)
    return strategy.solve(PROBLEM, ledger.meter(gen)), ledger


def events(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def by_answer(scores: dict[str, int]) -> Callable[[str], int]:
    return lambda text: next(pct for ans, pct in scores.items() if f"\\boxed{{{ans}}}" in text)


# -- selection ------------------------------------------------------------------------------------------


def test_naive_and_weighted_pick_different_winners(boxed: Boxed) -> None:
    policy = [boxed("3"), boxed("5"), boxed("5")]
    judge = by_answer({"3": 90, "5": 60})
    naive, _ = run(BestOfN(n=3, selection="naive"), self_judging(policy, judge))
    weighted, _ = run(BestOfN(n=3), self_judging(policy, judge))
    assert naive.answer == "3" and naive.confidence == pytest.approx(0.9)
    assert weighted.answer == "5" and weighted.confidence == pytest.approx(1.2 / 2.1)
    assert [(c.answer, c.votes) for c in weighted.candidates] == [("5", pytest.approx(1.2)), ("3", 0.9)]
    assert [(c.answer, c.votes) for c in naive.candidates] == [("3", pytest.approx(0.9)), ("5", 0.6)]
    assert "\\boxed{3}" in naive.response and "\\boxed{5}" in weighted.response


def test_borda_votes_by_rank_as_kang_et_al(boxed: Boxed) -> None:
    # scores 90, 20, 30, 80: ranks 1, 4, 3, 2, so votes 4^p, 1, 2^p, 3^p
    policy = [boxed("3"), boxed("5", "First way."), boxed("5", "Second way."), boxed("7")]
    marks = {"boxed{3}": 90, "First way.": 20, "Second way.": 30, "boxed{7}": 80}

    def judge(text: str) -> int:
        return next(pct for mark, pct in marks.items() if mark in text)

    results = {}
    for selection, power in (
        ("naive", 0.5),
        ("weighted", 0.5),
        ("borda", 0.5),
        ("borda", 0.0),
        ("borda", 3.0),
    ):
        strategy = BestOfN(n=4, selection=selection, borda_power=power)  # type: ignore[arg-type]
        results[(selection, power)], _ = run(strategy, self_judging(policy, judge))
    assert results[("naive", 0.5)].answer == results[("weighted", 0.5)].answer == "3"  # 0.9 beats 0.5
    borda = results[("borda", 0.5)]
    assert borda.answer == "5"  # 1 + sqrt(2) = 2.41 beats sqrt(4) = 2 and sqrt(3) = 1.73
    assert [(c.answer, c.votes) for c in borda.candidates] == [
        ("5", pytest.approx(1 + math.sqrt(2))),
        ("3", pytest.approx(2.0)),
        ("7", pytest.approx(math.sqrt(3))),
    ]
    assert borda.confidence == pytest.approx((1 + math.sqrt(2)) / (3 + math.sqrt(2) + math.sqrt(3)))
    assert "\\boxed{5}" in borda.response
    assert results[("borda", 0.0)].answer == "5"  # power 0: a majority vote
    assert results[("borda", 3.0)].answer == "3"  # 64 against 27 and 8 + 1: close to naive
    assert borda_votes([0.5, 0.9, 0.5], 1.0) == [2.0, 3.0, 1.0]  # equal scores: the earlier ranks higher
    with pytest.raises(ConfigError, match="borda_power must be a finite number >= 0"):
        BestOfN(selection="borda", borda_power=-1.0)


def test_weighted_response_is_the_best_scored_member_of_the_winning_group(boxed: Boxed) -> None:
    policy = [boxed("5", "First way."), boxed("3"), boxed("5", "Second way.")]
    scores = {"First way.": 30, "Second way.": 70}

    def judge(text: str) -> int:
        return next((p for key, p in scores.items() if key in text), 80)

    result, _ = run(BestOfN(n=3), self_judging(policy, judge))
    assert result.answer == "5" and "Second way." in result.response
    assert events(result, "vote")[0]["winner_sample"] == 2


def test_trace_records_each_sample_with_score_and_the_selection(boxed: Boxed) -> None:
    policy = [boxed("3"), boxed("5"), "I am not sure."]
    result, _ = run(BestOfN(n=3, seed=4), self_judging(policy, lambda t: 90 if "{3}" in t else 20))
    samples = events(result, "sample")
    assert [s["index"] for s in samples] == [0, 1, 2]
    assert [s["answer"] for s in samples] == ["3", "5", None]
    assert [s["score"] for s in samples] == pytest.approx([0.9, 0.2, 0.2])
    assert [s["voted"] for s in samples] == [True, True, False]
    (vote,) = events(result, "vote")
    assert vote["selection"] == "weighted" and vote["scorer"] == "llm_judge" and vote["judge"] == "scripted"
    assert vote["winner"] == "3" and vote["winner_sample"] == 0 and vote["abstained"] == [2]
    assert vote["tally"] == {"3": pytest.approx(0.9), "5": pytest.approx(0.2)}


def test_no_extractable_answer_votes_over_final_lines() -> None:
    policy = ["Hmm.\nIt is five", "Well.\nIt is four", "So.\nIt is five"]
    result, _ = run(BestOfN(n=3), self_judging(policy, lambda t: 90 if "four" in t else 40))
    assert result.answer == "It is four"  # 0.9 > 0.4 + 0.4
    assert events(result, "vote")[0]["method"] == "final_line"


# -- the judge and the ledger ------------------------------------------------------------------------------


def test_self_judge_is_metered_under_the_policy_model(boxed: Boxed) -> None:
    gen = self_judging([boxed("5")], lambda t: 70)
    result, ledger = run(BestOfN(n=4, max_tokens=64), gen)
    usage = ledger.usage().by_model
    assert list(usage) == ["scripted"]
    assert usage["scripted"].calls == 2  # one draw of 4 samples, one judge call for all 4
    sample_tokens = sum(s["tokens"] for s in events(result, "sample"))
    assert usage["scripted"].completion_tokens == sample_tokens + 4  # plus one verdict token each
    draw_params = gen.calls[0][1]
    judge_prompts, judge_params = gen.calls[1]
    assert draw_params.n == 4 and draw_params.logprobs is None  # the judge reads text only
    assert (draw_params.temperature, draw_params.top_k, draw_params.top_p) == (0.7, 40, 0.95)
    assert len(judge_prompts) == 4 and judge_params.max_tokens == 1 and judge_params.logprobs == 20
    # the vote records what scoring cost, so that a smaller n derived from this run pays its share of it
    (vote,) = events(result, "vote")
    whole = usage["scripted"]
    drawn_prompt = whole.prompt_tokens - vote["scoring"]["prompt_tokens"]
    assert vote["scoring"]["completion_tokens"] == 4
    assert drawn_prompt == gen.count_prompt_tokens([gen.calls[0][0][0]])[0]  # what remains: the policy's
    assert vote["scoring"]["flops"] < whole.flops


def test_a_scorer_without_model_calls_records_no_scoring_cost(boxed: Boxed) -> None:
    gen = ScriptedGenerator([boxed("5")], top_fn=lambda tok, i: [(tok, math.log(0.5))])
    result, _ = run(BestOfN(n=2, scorer="self_certainty"), gen)
    (vote,) = events(result, "vote")
    assert vote["scoring"] == {"prompt_tokens": 0, "completion_tokens": 0, "flops": 0.0}


def test_the_followup_judge_asks_in_the_conversation_that_produced_each_solution(boxed: Boxed) -> None:
    def respond(prompt: Prompt, k: int) -> str:
        if prompt.messages[-1].content == FOLLOWUP_QUESTION:
            return "J90" if "boxed{5}" in prompt.messages[-2].content else "J20"
        return boxed("5")

    gen = ScriptedGenerator(respond, top_fn=verdict_top)
    result, _ = run(BestOfN(n=1, scorer="followup_judge", max_tokens=64), gen)
    (policy_prompts, _), (judge_prompts, _) = gen.calls
    (sample,) = events(result, "sample")
    (asked,) = judge_prompts
    policy = policy_prompts[0]
    assert asked.messages[: len(policy.messages)] == policy.messages  # the policy's own conversation
    assert asked.messages[len(policy.messages) :] == (
        Message("assistant", sample["text"]),  # its response (assistant prefix included), turn closed
        Message("user", FOLLOWUP_QUESTION),
    )
    assert asked.assistant_prefix == ""
    assert sample["score"] == pytest.approx(0.9) and result.answer == "5"
    assert events(result, "vote")[0]["scorer"] == "followup_judge"


def test_a_followup_judge_without_the_policy_prompt_uses_the_cot_conversation() -> None:
    judge = FollowupJudge(ScriptedGenerator(["J50"], top_fn=verdict_top))
    asked = judge.sample_prompt(PROBLEM, Sample("It is 5."))
    assert [m.role for m in asked.messages] == ["system", "user", "assistant", "user"]
    assert (
        asked.messages[0].content == MATH_COT_SYSTEM_PROMPT and PROBLEM.question in asked.messages[1].content
    )


class _Judge(ScriptedGenerator):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_another_judge_model_is_opened_lazily_metered_apart_and_closed(
    boxed: Boxed, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[_Judge] = []

    def open_judge(name: str) -> _Judge:
        judge = _Judge(lambda p, k: "J80", model=ScriptedModel(name=name), top_fn=verdict_top)
        opened.append(judge)
        return judge

    monkeypatch.setattr(bon, "open_judge", open_judge)
    policy = ScriptedGenerator([boxed("5")])
    result, ledger = run(BestOfN(n=3, judge_model="big-judge"), policy)
    assert [s["score"] for s in events(result, "sample")] == pytest.approx([0.8] * 3)
    usage = ledger.usage().by_model
    assert set(usage) == {"scripted", "big-judge"}
    assert usage["big-judge"].calls == 1 and usage["big-judge"].completion_tokens == 3
    assert usage["scripted"].calls == 1 and len(policy.calls) == 1
    assert len(opened) == 1 and opened[0].closed
    assert events(result, "vote")[0]["judge"] == "big-judge"


def test_no_judge_is_opened_when_not_needed(boxed: Boxed, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> None:
        raise AssertionError("no judge model should be opened")

    monkeypatch.setattr(bon, "open_judge", refuse)
    run(BestOfN(n=2, judge_model="scripted"), self_judging([boxed("5")], lambda t: 50))  # the policy's name
    gen = ScriptedGenerator([boxed("5")], top_fn=lambda t, i: [(t, -0.1)])
    result, _ = run(BestOfN(n=2, scorer="self_certainty"), gen)
    assert result.answer == "5"


# -- logprob scorers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scorer", ["self_certainty", "confidence"])
def test_logprob_scorers_draw_with_top20_and_prefer_the_confident_sample(boxed: Boxed, scorer: str) -> None:
    def top(tok: str, i: int) -> list[tuple[str, float]]:
        p = 0.9 if "Surely" in tok else 0.4
        return [(tok, math.log(p)), ("alt", math.log((1 - p) / 2))]

    policy = [boxed("3", "Maybe this."), boxed("5", "Surely Surely Surely Surely Surely.")]
    gen = ScriptedGenerator(policy, top_fn=top)
    result, _ = run(BestOfN(n=2, scorer=scorer, selection="naive"), gen)
    assert gen.calls[0][1].logprobs == 20 and len(gen.calls) == 1  # no judge call
    scores = [s["score"] for s in events(result, "sample")]
    assert all(math.isfinite(s) and s > 0 for s in scores)
    assert scores[1] > scores[0] and result.answer == "5"


@pytest.mark.parametrize("scorer", ["self_certainty", "confidence", "llm_judge"])
def test_missing_logprobs_fail_before_anything_is_drawn(boxed: Boxed, scorer: str) -> None:
    gen = ScriptedGenerator([boxed("5")])
    with pytest.raises(CapabilityError, match=f"{scorer} scorer needs top-20 logprobs"):
        run(BestOfN(n=2, scorer=scorer), gen)
    assert gen.calls == []


# -- budget --------------------------------------------------------------------------------------------


def test_budget_holds_back_the_judges_cost(boxed: Boxed) -> None:
    gen = self_judging([boxed("5")], lambda t: 60)
    unlimited, ledger = run(BestOfN(n=8, max_tokens=40), gen)
    per_sample = ledger.usage().total.total_tokens / 8
    budget = int(3.5 * per_sample) + 200
    result, ledger = run(
        BestOfN(n=8, max_tokens=40), self_judging([boxed("5")], lambda t: 60), Budget(budget)
    )
    spent = ledger.usage().total.total_tokens
    samples = events(result, "sample")
    assert spent <= budget
    assert 1 <= len(samples) < 8 and all(s["score"] == pytest.approx(0.6) for s in samples)
    assert events(result, "stop")[0]["reason"] == "budget" and result.answer == "5"


@pytest.mark.parametrize("budget", [180, 260, 400, 650, 1000, 1500])
def test_every_drawn_sample_is_scored_within_the_budget(boxed: Boxed, budget: int) -> None:
    policy = [boxed("5", "Short."), boxed("4", "A much longer line of reasoning " * 4)]
    result, ledger = run(BestOfN(n=8, max_tokens=60), self_judging(policy, lambda t: 55), Budget(budget))
    assert ledger.usage().total.total_tokens <= budget
    assert all(s["score"] is not None for s in events(result, "sample"))
    assert all("scored" not in e for e in events(result, "stop"))


def test_budget_too_small_for_one_scored_sample_refuses_before_drawing(boxed: Boxed) -> None:
    gen = self_judging([boxed("5")], lambda t: 60)
    with pytest.raises(BudgetExhausted, match="one sample and its scoring"):
        run(BestOfN(n=4), gen, Budget(tokens=60))
    assert gen.calls == []


class _Underestimating:
    """A scorer whose judge refuses more than two samples (as when its cost estimate was too low)."""

    policy_logprobs = 0

    def cost(self, problem: Problem, sample_tokens: Sequence[int]) -> tuple[int, float]:
        return 0, 0.0

    def score(self, problem: Problem, samples: Sequence[Sample]) -> list[float]:
        if len(samples) > 2:
            raise BudgetExhausted("no")
        return [0.5] * len(samples)


def test_unaffordable_scoring_leaves_the_last_samples_unscored() -> None:
    samples = [Sample(f"s{i}") for i in range(4)]
    scores, cut = BestOfN()._score(PROBLEM, _Underestimating(), samples)
    assert scores == [0.5, 0.5]
    assert cut is not None and cut.data["scored"] == 2 and cut.data["drawn"] == 4


# -- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"n": 0}, "n must be an integer >= 1"),
        ({"selection": "best"}, "selection must be weighted, naive or borda"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"judge_model": " "}, "judge_model must be a name or none"),
        ({"scorer": "self_certainty", "judge_model": "x"}, "judge_model must be none with scorer"),
    ],
)
def test_invalid_values_are_refused(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        BestOfN(**params)


def test_unknown_scorer_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        BestOfN(scorer="self_certainly")
    msg = str(info.value)
    assert "Did you mean 'self_certainty'" in msg
    for name in ("llm_judge", "self_certainty", "confidence"):
        assert name in msg


def test_built_from_strings_with_snell_defaults() -> None:
    s = build_strategy("best_of_n", {"n": "4", "selection": "naive", "judge_model": "none"})
    assert isinstance(s, BestOfN) and (s.n, s.selection, s.judge_model) == (4, "naive", None)
    d = BestOfN()
    assert (d.n, d.scorer, d.selection, d.temperature, d.top_k, d.top_p, d.max_tokens) == (
        8,
        "llm_judge",
        "weighted",
        0.7,
        40,
        0.95,
        512,
    )


def test_policy_prompt_is_the_cot_prompt(boxed: Boxed) -> None:
    gen = self_judging([boxed("5")], lambda t: 50)
    run(BestOfN(n=1), gen)
    assert gen.calls[0][0][0].messages[0].content == MATH_COT_SYSTEM_PROMPT


# -- one draw, several scorers (``--draws``) ------------------------------------------------------------


def test_a_judge_scores_the_draw_that_self_certainty_recorded(boxed: Boxed, tmp_path: Path) -> None:
    path = tmp_path / "draws.sqlite"
    first = DrawReplay(
        ScriptedGenerator([boxed("5"), boxed("4"), boxed("5")], top_fn=verdict_top_any), DrawFile(path)
    )
    certain, _ = run(BestOfN(n=3, scorer="self_certainty", seed=3), first)
    first.close()
    # the judge run's policy would sample 9s; it gets the recorded draw, and pays only for its verdicts
    policy = self_judging([boxed("9")], by_answer({"5": 90, "4": 10, "9": 50}))
    second = DrawReplay(policy, DrawFile(path))
    judged, ledger = run(BestOfN(n=3, scorer="llm_judge", seed=3), second)
    texts = [s["text"] for s in events(judged, "sample")]
    assert texts == [s["text"] for s in events(certain, "sample")]
    assert [s["score"] for s in events(judged, "sample")] == pytest.approx([0.9, 0.1, 0.9])
    assert all(p[0].messages[0].content == JUDGE_SYSTEM_PROMPT for p, _ in policy.calls)  # only verdicts
    assert (second.stats.replayed, judged.answer) == (1, "5")
    assert ledger.usage().total.completion_tokens > len(policy.calls)  # the samples' tokens are booked too


def verdict_top_any(tok: str, i: int) -> list[tuple[str, float]]:
    return [(tok, math.log(0.7)), ("alt", math.log(0.3))]
