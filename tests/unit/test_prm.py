"""Process scorers on the scripted backend: the step judge, ORM-as-PRM, aggregation, failures, metering."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import pytest
from search_helpers import (
    PROBLEM,
    ClosableJudge,
    judged_steps,
    named_policy,
    prefer,
    separate_judge,
    verdict_top,
)

from ttscale import ConfigError, Ledger, Problem
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel, render, tokenize
from ttscale.errors import CapabilityError, GenerationError
from ttscale.scorers.llm_judge import FOLLOWUP_QUESTION, LLMJudge
from ttscale.scorers.prm_judge import PRM_JUDGE_QUESTION, PRM_JUDGE_SYSTEM_PROMPT, LLMJudgePRM
from ttscale.scorers.process import (
    OrmAsPrm,
    aggregate,
    build_process_scorer,
    check_prm_name,
    checked_last_scores,
    checked_step_scores,
)
from ttscale.search.steps import StepFormat
from ttscale.strategies.beam_search import BeamSearch
from ttscale.types import Prompt


def judge(scores: dict[str, float], name: str = "judge", **options: object) -> ScriptedGenerator:
    """A step judge answering J<pct> for the last step shown (pct from ``scores``, 50 by default)."""
    pct = prefer(scores)
    return ScriptedGenerator(
        lambda p, k: f"J{pct(judged_steps(p))}", model=ScriptedModel(name=name), top_fn=verdict_top, **options
    )


# -- aggregation ----------------------------------------------------------------------------------------


def test_aggregations() -> None:
    scores = [0.9, 0.5, 0.8]
    assert aggregate(scores, "last") == 0.8
    assert aggregate(scores, "min") == 0.5
    assert aggregate(scores, "prod") == pytest.approx(0.36)
    assert aggregate(scores, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([0.3], "prod") == 0.3
    with pytest.raises(ConfigError, match="no steps"):
        aggregate([], "last")
    with pytest.raises(ConfigError, match="aggregation must be one of last, min, prod, mean"):
        aggregate(scores, "max")  # type: ignore[arg-type]


# -- the step judge -------------------------------------------------------------------------------------


def test_step_judge_scores_every_step_in_one_batched_call() -> None:
    gen = judge({"a": 90, "b": 20, "c": 60})
    prm = LLMJudgePRM(gen)
    scores = prm.score_steps(PROBLEM, [["a", "b"], ["a", "c"], ["b"]])
    assert scores == [pytest.approx([0.9, 0.2]), pytest.approx([0.9, 0.6]), pytest.approx([0.2])]
    [(prompts, params)] = gen.calls
    assert len(prompts) == 4  # [a] once, [a b], [a c], [b]: each distinct prefix judged once
    assert (params.n, params.max_tokens, params.temperature, params.logprobs) == (1, 1, 0.0, 20)
    assert [judged_steps(p) for p in prompts] == [["a"], ["a", "b"], ["a", "c"], ["b"]]
    assert prompts[1].messages[0].content == PRM_JUDGE_SYSTEM_PROMPT
    assert prompts[1].messages[-1].content.endswith(PRM_JUDGE_QUESTION.format(index=2))


def test_prefixes_already_judged_are_not_judged_again() -> None:
    gen = judge({"a": 90, "b": 20, "c": 60})
    prm = LLMJudgePRM(gen)
    prm.score_steps(PROBLEM, [["a", "b"]])
    assert prm.score_steps(PROBLEM, [["a", "b", "c"], ["a"]]) == [
        pytest.approx([0.9, 0.2, 0.6]),
        pytest.approx([0.9]),
    ]
    assert [len(prompts) for prompts, _ in gen.calls] == [2, 1]  # only [a b c] is new
    prm.score_steps(PROBLEM, [["a", "b", "c"]])
    assert len(gen.calls) == 2
    prm.score_steps(Problem("Another problem"), [["a"]])  # same steps, other problem: judged anew
    assert len(gen.calls) == 3


def test_last_step_scoring_judges_only_each_candidates_whole_path_and_shares_the_memo() -> None:
    gen = judge({"a": 90, "b": 20, "c": 60})
    prm = LLMJudgePRM(gen)
    assert prm.score_last(PROBLEM, [["a", "b", "c"], ["b"], ["a", "b", "c"]]) == pytest.approx(
        [0.6, 0.2, 0.6]
    )
    [(prompts, _)] = gen.calls
    assert [judged_steps(p) for p in prompts] == [["a", "b", "c"], ["b"]]  # no shorter prefix
    assert prm.score_steps(PROBLEM, [["a", "b", "c"]]) == [pytest.approx([0.9, 0.2, 0.6])]
    assert [judged_steps(p) for p in gen.calls[1][0]] == [["a"], ["a", "b"]]  # [a b c] remembered
    assert prm.score_last(PROBLEM, [["a", "b"]]) == pytest.approx([0.2]) and len(gen.calls) == 2


def test_the_prompt_of_step_k_plus_1_extends_the_prompt_of_step_k_up_to_its_question() -> None:
    prm = LLMJudgePRM(judge({}))
    one = render(prm.prompt(PROBLEM, ["We add 2 and 3.", "So 5."]))
    two = render(prm.prompt(PROBLEM, ["We add 2 and 3.", "So 5.", "\\boxed{5}"]))
    shared = one[: one.index(PRM_JUDGE_QUESTION.format(index=2))]
    assert two.startswith(shared) and "Step 3: \\boxed{5}" in two[len(shared) :]
    assert "\\boxed{5}" not in one  # the judge of step 2 never sees later steps


def test_scoring_one_more_step_prefills_only_that_step_on_a_prefix_cache() -> None:
    gen = judge({}, prefix_cache=True, native_n=True)
    ledger = Ledger()
    prm = LLMJudgePRM(ledger.meter(gen))
    steps = ["We add two and three to get five."] * 1 + ["Then we double it: ten."]
    prm.score_steps(PROBLEM, [steps[:1]])
    before = ledger.usage().total
    prm.score_steps(PROBLEM, [steps])
    after = ledger.usage().total
    full = len(tokenize(render(prm.prompt(PROBLEM, steps))))
    computed = after.prompt_tokens - before.prompt_tokens
    # the shared prefix (system, header, step 1) comes from cache; the new step and the question do not
    assert after.cached_prompt_tokens - before.cached_prompt_tokens + computed == full
    new_part = len(tokenize("Step 2: Then we double it: ten.\n\n" + PRM_JUDGE_QUESTION.format(index=2)))
    assert computed <= new_part + 2


def test_step_judge_needs_logprobs() -> None:
    with pytest.raises(CapabilityError, match="top-20 logprobs"):
        LLMJudgePRM(ScriptedGenerator(["Yes"]))


def test_nan_verdict_raises_naming_the_model_and_the_step() -> None:
    def top(tok: str, i: int) -> list[tuple[str, float]]:
        return [("Yes", math.nan), ("No", -1.0)] if tok == "JNAN" else verdict_top(tok, i)

    def respond(p: Prompt, k: int) -> str:
        return "JNAN" if len(judged_steps(p)) == 2 else "J70"

    gen = ScriptedGenerator(respond, model=ScriptedModel(name="shaky-judge"), top_fn=top)
    with pytest.raises(GenerationError, match="'shaky-judge'.*step 2 of candidate 1"):
        LLMJudgePRM(gen).score_steps(PROBLEM, [["a"], ["a", "b"]])


def test_a_verdict_without_a_token_record_raises() -> None:
    gen = ScriptedGenerator(lambda p, k: "J80", model=ScriptedModel(name="mute"), top_fn=verdict_top)
    judge = LLMJudgePRM(gen)
    real = gen.generate

    def without_records(prompts: Any, params: Any) -> Any:  # a backend that says it gives logprobs, and not
        return [[dataclasses.replace(c, logprobs=()) for c in group] for group in real(prompts, params)]

    gen.generate = without_records  # type: ignore[method-assign]
    with pytest.raises(GenerationError, match="'mute' returned no verdict token record for step 1"):
        judge.score_steps(PROBLEM, [["a"]])


def test_a_judge_that_ends_its_turn_instead_of_answering_gives_the_midpoint() -> None:
    gen = ScriptedGenerator(lambda p, k: "", model=ScriptedModel(name="mute"), top_fn=verdict_top)
    assert LLMJudgePRM(gen).score_steps(PROBLEM, [["a"]]) == [[0.5]]  # as llm_judge reads a missing verdict


def test_a_nan_prm_stops_a_search_with_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    separate_judge(monkeypatch, lambda steps: math.nan if len(steps) == 2 else 80)
    policy = ScriptedGenerator(lambda p, k: f"s{k}\n\nrest")
    with pytest.raises(GenerationError, match="'judge'.*step 2"):
        BeamSearch(n=2, beam_width=1, iterations=5, prm_model="judge").solve(PROBLEM, Ledger().meter(policy))


# -- any process scorer ---------------------------------------------------------------------------------


class _Fixed:
    """A process scorer returning fixed lists (possibly too short, or with holes)."""

    model_name = "fixed-prm"

    def __init__(self, out: list[list[float]]) -> None:
        self.out = out

    def score_steps(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[list[float]]:
        return self.out


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ([[0.5, 0.5]], "scored 1 of 2 candidate solutions"),
        ([[0.5, 0.5], [0.5]], "'fixed-prm' gave no score for step 2 of candidate 1"),
        (
            [[0.5, math.nan], [0.1, 0.2]],
            "'fixed-prm' gave nan instead of a finite score for step 2 of candidate 0",
        ),
        ([[0.5, 0.5], [None, 0.2]], "gave None instead of a finite score for step 1 of candidate 1"),
    ],
)
def test_missing_or_nan_scores_are_refused(out: list[list[float]], message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        checked_step_scores(_Fixed(out), PROBLEM, [["a", "b"], ["a", "c"]])


class _FixedLast(_Fixed):
    """A process scorer that can score last steps alone, returning fixed values."""

    def __init__(self, out: list[list[float]], last: list[object]) -> None:
        super().__init__(out)
        self.last = last

    def score_last(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[object]:
        return self.last


def test_last_scores_come_from_score_last_where_a_scorer_has_it_and_are_checked_alike() -> None:
    steps = [["a", "b"], ["c"]]
    assert checked_last_scores(_Fixed([[0.1, 0.2], [0.3]]), PROBLEM, steps) == [0.2, 0.3]
    assert checked_last_scores(_FixedLast([], [0.7, 0.4]), PROBLEM, steps) == [0.7, 0.4]
    with pytest.raises(
        GenerationError, match="'fixed-prm' gave nan instead of a finite score for step 1 of candidate 1"
    ):
        checked_last_scores(_FixedLast([], [0.7, math.nan]), PROBLEM, steps)
    with pytest.raises(GenerationError, match="scored 1 of 2 candidate solutions"):
        checked_last_scores(_FixedLast([], [0.7]), PROBLEM, steps)
    with pytest.raises(GenerationError, match="gave no score for step 1 of candidate 1"):
        checked_last_scores(_Fixed([[0.1, 0.2], []]), PROBLEM, steps)
    with pytest.raises(ConfigError, match="candidate 1 has no steps"):
        checked_last_scores(_FixedLast([], [0.7, 0.4]), PROBLEM, [["a"], []])


def test_extra_scores_are_trimmed_to_the_steps() -> None:
    assert checked_step_scores(_Fixed([[0.1, 0.2, 0.3]]), PROBLEM, [["a", "b"]]) == [[0.1, 0.2]]


# -- ORM as PRM -----------------------------------------------------------------------------------------


def test_orm_as_prm_scores_each_prefix_as_a_whole_solution() -> None:
    def respond(p: Prompt, k: int) -> str:
        solution = p.messages[-1].content
        return "J90" if "beta" in solution else "J30"

    gen = ScriptedGenerator(respond, model=ScriptedModel(name="orm"), top_fn=verdict_top)
    prm = OrmAsPrm(LLMJudge(gen), "orm")
    assert prm.score_steps(PROBLEM, [["alpha", "beta", "gamma"]]) == [pytest.approx([0.3, 0.9, 0.9])]
    [(prompts, _)] = gen.calls
    assert "Proposed solution:\nalpha\n\nbeta\n\ngamma" in prompts[2].messages[-1].content
    prm.score_steps(PROBLEM, [["alpha", "beta"]])  # remembered
    assert len(gen.calls) == 1
    assert prm.score_last(PROBLEM, [["alpha", "gamma"], ["alpha", "beta"]]) == pytest.approx([0.3, 0.9])
    [(prompts, _)] = gen.calls[1:]
    assert len(prompts) == 1 and "Proposed solution:\nalpha\n\ngamma" in prompts[0].messages[-1].content


def test_orm_as_prm_refuses_scorers_that_read_policy_logprobs() -> None:
    gen = ScriptedGenerator(["x"], top_fn=verdict_top)
    with pytest.raises(CapabilityError, match="reads text"):
        build_process_scorer("orm:self_certainty", gen, None)


def test_process_scorer_names() -> None:
    check_prm_name("llm_judge_prm")
    check_prm_name("orm:llm_judge")
    for bad in ("orm:nope", "hf_prm", "orm:"):
        with pytest.raises(
            ConfigError,
            match="prm must be llm_judge_prm, hf:<Hugging Face PRM> or one of orm:confidence, orm:followup_judge, orm:llm_judge",
        ):
            check_prm_name(bad)
    gen = judge({})
    assert isinstance(build_process_scorer("llm_judge_prm", gen, None), LLMJudgePRM)
    orm = build_process_scorer("orm:llm_judge", gen, None)
    assert isinstance(orm, OrmAsPrm) and orm.model_name == "judge"


def test_a_judge_model_is_metered_on_the_same_ledger_under_its_name_and_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[ClosableJudge] = separate_judge(monkeypatch, prefer({"s0": 90}))
    policy = ScriptedGenerator(lambda p, k: "so \\boxed{1}." if p.assistant_prefix else f"s{k}\n\nrest")
    ledger = Ledger()
    result = BeamSearch(n=2, beam_width=1, iterations=3, prm_model="big-judge").solve(
        PROBLEM, ledger.meter(policy)
    )
    usage = ledger.usage().by_model
    assert set(usage) == {"scripted", "big-judge"}
    assert usage["big-judge"].calls == 2 and usage["big-judge"].completion_tokens == 4  # 2 rounds x 2 steps
    assert usage["big-judge"].flops > 0 and usage["scripted"].calls == 2
    assert len(opened) == 1 and opened[0].closed
    assert [e.data["prm"] for e in result.trace if e.kind == "vote"] == ["big-judge"]


def test_prm_model_is_refused_with_a_scorer_that_calls_no_judge() -> None:
    with pytest.raises(ConfigError, match="prm_model must be none with prm 'orm:self_certainty'"):
        BeamSearch(prm="orm:self_certainty", prm_model="other")


def test_orm_as_prm_in_a_search_asks_the_followup_judge_in_the_search_conversation() -> None:
    policy = named_policy(depth=3)

    def respond(prompt: Prompt, k: int) -> str:
        return "J70" if prompt.messages[-1].content == FOLLOWUP_QUESTION else policy(prompt, k)

    gen = ScriptedGenerator(respond, top_fn=verdict_top)
    BeamSearch(n=2, beam_width=2, iterations=2, prm="orm:followup_judge").solve(PROBLEM, Ledger().meter(gen))
    asked = [p for prompts, _ in gen.calls for p in prompts if p.messages[-1].content == FOLLOWUP_QUESTION]
    search = StepFormat.parse("blank_line").prompt(PROBLEM.question)
    assert asked and all(p.messages[: len(search.messages)] == search.messages for p in asked)
    for judged in asked:  # everything up to the end of the steps is what the search decoded: a cache hit
        steps = judged.messages[-2].content.split("\n\n")
        decoded = tokenize(render(search.continued("\n\n".join(steps))))
        shared = len(os.path.commonprefix([tokenize(render(judged)), decoded]))
        assert shared >= len(decoded) - 1  # all but the last token (where the turn closes)


def test_the_judge_numbers_steps_once_even_when_the_policy_labelled_them() -> None:
    gen = ScriptedGenerator(["J80"], top_fn=verdict_top)
    prompt = LLMJudgePRM(gen).prompt(PROBLEM, ["Step 1: Multiply 6 by 7.", "**Step 2.** So \\boxed{42}."])
    text = prompt.messages[-1].content
    assert "Step 1: Multiply 6 by 7.\n\nStep 2: So \\boxed{42}.\n\n" in text and "Step 1: Step 1" not in text
    assert (
        "Step 1: Step by step, 6 * 7 = 42."
        in LLMJudgePRM(gen).prompt(PROBLEM, ["Step by step, 6 * 7 = 42."]).messages[-1].content
    )  # "Step by step" is not a label
