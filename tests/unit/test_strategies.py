"""Strategies on the scripted backend: registry, parameters, voting, budgets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale import Budget, BudgetExhausted, ConfigError, Ledger, Problem, UnknownNameError
from ttscale.answers import equivalent
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.prompts import DIRECT_SYSTEM_PROMPT, MATH_COT_SYSTEM_PROMPT, ZERO_SHOT_COT_TRIGGER, cot_prompt
from ttscale.strategies import STRATEGIES, build_strategy, strategy_params
from ttscale.strategies.base import coerce_params
from ttscale.strategies.self_consistency import SelfConsistency, final_line_vote

Make = Callable[..., ScriptedGenerator]
Boxed = Callable[..., str]
PROBLEM = Problem("What is 1 divided by 2?")


def run(strategy: object, gen: ScriptedGenerator, budget: Budget | None = None, problem: Problem = PROBLEM):
    ledger = Ledger(budget)
    result = strategy.solve(problem, ledger.meter(gen))  # type: ignore[attr-defined]
    return result, ledger


def events(result, kind: str) -> list[dict]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def test_registry_lists_the_three_strategies() -> None:
    assert {"cot", "direct", "self_consistency"} <= set(STRATEGIES.names())  # others register too
    for name in STRATEGIES.names():
        assert STRATEGIES.get(name).name == name


def test_unknown_strategy_lists_names_and_suggests() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_strategy("self_consistancy", {})
    msg = str(info.value)
    assert "Did you mean 'self_consistency'" in msg
    for name in ("cot", "direct", "self_consistency"):
        assert name in msg


def test_unknown_param_lists_the_strategys_params() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_strategy("self_consistency", {"temprature": "0.5"})
    msg = str(info.value)
    assert "unknown parameter 'temprature'" in msg
    assert "Did you mean 'temperature'" in msg
    for name in ("n", "top_k", "top_p", "max_tokens", "seed"):
        assert name in msg


def test_string_params_are_coerced_to_field_types() -> None:
    sc = build_strategy("self_consistency", {"n": "4", "temperature": "0.5", "top_k": "0", "seed": "7"})
    assert isinstance(sc, SelfConsistency)
    assert (sc.n, sc.temperature, sc.top_k, sc.seed) == (4, 0.5, 0, 7)
    assert isinstance(sc.temperature, float)
    assert build_strategy("self_consistency", {"seed": "none"}).seed is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("n", "four", "int"),
        ("temperature", "hot", "float"),
        ("seed", "1.5", "int | None"),
        ("n", True, "int"),
    ],
)
def test_bad_value_names_parameter_and_type(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_strategy("self_consistency", {key: value})
    assert f"parameter {key!r}" in str(info.value)
    assert f"expects {expected}" in str(info.value)


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("self_consistency", {"n": "0"}, "n must be an integer >= 1"),
        ("self_consistency", {"temperature": "-0.1"}, "temperature must be a finite number >= 0"),
        ("self_consistency", {"temperature": "inf"}, "temperature must be a finite number >= 0"),
        ("self_consistency", {"top_p": "0"}, "top_p must be in (0, 1]"),
        ("self_consistency", {"top_k": "-1"}, "top_k must be an integer >= 0"),
        ("self_consistency", {"max_tokens": "0"}, "max_tokens must be an integer >= 1"),
        ("direct", {"max_tokens": 0}, "max_tokens must be an integer >= 1"),
        ("cot", {"seed": -1}, "seed must be an integer >= 0 or none"),
    ],
)
def test_invalid_values_are_refused(name: str, params: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build_strategy(name, params)


@dataclass(frozen=True)
class Toy:
    name: ClassVar[str] = "toy"
    flag: bool = field(default=False, metadata={"help": "a switch"})
    limit: float | None = field(default=None, metadata={"help": "a cap"})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "speed"})
    label: str = field(default="x", metadata={"help": "a label"})


def test_bool_optional_literal_and_str_coercion() -> None:
    for text, value in [("true", True), ("YES", True), ("1", True), ("no", False), ("0", False)]:
        assert coerce_params(Toy, {"flag": text}, owner="toy") == {"flag": value}
    got = coerce_params(Toy, {"limit": "2.5", "mode": "slow", "label": "hi=there"}, owner="toy")
    assert got == {"limit": 2.5, "mode": "slow", "label": "hi=there"}
    assert coerce_params(Toy, {"limit": "null"}, owner="toy") == {"limit": None}
    with pytest.raises(ConfigError, match="expects bool"):
        coerce_params(Toy, {"flag": "maybe"}, owner="toy")
    with pytest.raises(ConfigError, match=re.escape("expects 'fast' | 'slow', got 'medium'")):
        coerce_params(Toy, {"mode": "medium"}, owner="toy")


def test_strategy_params_describe_every_field() -> None:
    specs = {s.name: s for s in strategy_params(SelfConsistency)}
    assert list(specs) == [
        "n",
        "temperature",
        "top_k",
        "top_p",
        "max_tokens",
        "seed",
        "weighting",
        "tip",
        "tip_alpha",
        "tip_beta",
    ]
    assert (specs["n"].type, specs["n"].default) == ("int", 8)
    assert specs["seed"].type == "int | None"
    for name in STRATEGIES.names():
        assert all(s.help for s in strategy_params(STRATEGIES.get(name))), name


def test_direct_is_one_greedy_sample(scripted: Make) -> None:
    gen = scripted(["\\boxed{42}"])
    result, _ = run(build_strategy("direct", {}), gen)
    assert (result.answer, result.strategy, result.model) == ("42", "direct", "scripted")
    assert result.response == "\\boxed{42}"
    [(prompts, params)] = gen.calls
    assert (params.n, params.temperature, params.max_tokens) == (1, 0.0, 256)
    assert prompts[0].messages[0].content == DIRECT_SYSTEM_PROMPT
    assert result.usage.total.calls == 0  # strategies never report usage; solve() attaches it
    [sample] = events(result, "sample")
    assert (sample["answer"], sample["finish_reason"], sample["tokens"]) == ("42", "eos", 1)


def test_cot_uses_trigger_as_answer_prefix(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("7")])
    result, _ = run(build_strategy("cot", {"seed": 3}), gen)
    [(prompts, params)] = gen.calls
    assert (params.temperature, params.max_tokens, params.seed) == (0.0, 512, 3)
    assert prompts[0].messages[0].content == MATH_COT_SYSTEM_PROMPT
    assert prompts[0].assistant_prefix.startswith(ZERO_SHOT_COT_TRIGGER)
    assert result.answer == "7"
    assert result.response.startswith(ZERO_SHOT_COT_TRIGGER)
    gen = scripted([boxed("7")], continue_prefix=False)  # no prefix continuation: trigger ends the question
    run(build_strategy("cot", {}), gen)
    prompt = gen.calls[0][0][0]
    assert prompt.assistant_prefix == ""
    assert prompt.messages[-1].content.endswith(ZERO_SHOT_COT_TRIGGER)


def test_majority_over_equivalent_answers(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("3"), boxed("1/2"), boxed("0.5"), boxed("3"), boxed("\\frac{1}{2}")])
    result, _ = run(SelfConsistency(n=5), gen)
    assert result.answer is not None and equivalent(result.answer, "1/2", "math")
    assert [c.votes for c in result.candidates] == [3, 2]
    assert result.candidates[0].samples == (1, 2, 4)
    assert result.candidates[1].answer == "3"
    assert result.confidence == pytest.approx(3 / 5)
    assert result.response.startswith(ZERO_SHOT_COT_TRIGGER)  # the whole assistant turn
    assert result.response.endswith(boxed("1/2"))  # sample 1, the first to give the winning answer
    [vote] = events(result, "vote")
    assert sorted(vote["tally"].values()) == [2, 3]


def test_one_generate_call_with_the_sampling_settings(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("5")])
    result, _ = run(SelfConsistency(seed=11), gen)
    [(prompts, params)] = gen.calls
    assert len(prompts) == 1
    assert (params.n, params.temperature, params.top_k, params.top_p) == (8, 0.7, 40, 0.95)
    assert (params.max_tokens, params.seed) == (512, 11)
    assert result.confidence == 1.0
    assert [e["index"] for e in events(result, "sample")] == list(range(8))


@pytest.mark.parametrize("order", [("7", "9", "9", "7"), ("9", "7", "7", "9")])
def test_ties_break_deterministically(scripted: Make, boxed: Boxed, order: tuple[str, ...]) -> None:
    answers = set()
    for _ in range(3):
        result, _ = run(SelfConsistency(n=4), scripted([boxed(a) for a in order]))
        answers.add(result.answer)
        assert result.confidence == 0.5
    assert answers == {order[0]}  # the answer seen first wins a tie


def test_samples_without_answer_do_not_vote(scripted: Make, boxed: Boxed) -> None:
    gen = scripted(["I am not sure.", boxed("5"), "Hmm, hard to say.", boxed("6"), boxed("5")])
    result, _ = run(SelfConsistency(n=5), gen)
    assert result.answer == "5"
    assert result.confidence == pytest.approx(2 / 5)
    samples = events(result, "sample")
    assert [s["voted"] for s in samples] == [False, True, False, True, True]
    assert samples[0]["answer"] is None
    [vote] = events(result, "vote")
    assert vote["abstained"] == [0, 2]
    assert "did not vote" in vote["note"]
    assert vote["method"] == "answer"


def test_no_answers_fall_back_to_final_lines(scripted: Make) -> None:
    texts = ["Thinking.\nIt is blue.", "Hmm.\n  it is   BLUE ", "Well.\nIt is red."]
    result, _ = run(SelfConsistency(n=3), scripted(texts))
    [vote] = events(result, "vote")
    assert vote["method"] == "final_line"
    assert result.answer == "It is blue."
    assert result.confidence == pytest.approx(2 / 3)
    assert "final lines" in vote["note"]
    result, _ = run(SelfConsistency(n=2), scripted(["   "]))  # nothing at all to vote on
    assert result.answer is None and result.confidence is None and result.candidates == ()


def test_final_line_vote_normalises_and_breaks_ties_by_first_seen() -> None:
    got = final_line_vote(["a\nThe End.", "the  end", "", "x\nother", "other."])
    assert [(c.answer, c.votes, c.samples) for c in got] == [("The End.", 2, (0, 1)), ("other", 2, (3, 4))]


def prompt_tokens(gen: ScriptedGenerator) -> int:
    return gen.count_prompt_tokens([cot_prompt(PROBLEM.question, continue_prefix=True)])[0]


def test_budget_limited_sc_draws_fewer_samples(scripted: Make, boxed: Boxed) -> None:
    gen = scripted([boxed("2")])
    p, length = prompt_tokens(gen), len(boxed("2").split())
    budget = Budget(tokens=p + 3 * 40 + 5)  # pays for three full-length samples of 40 tokens, not four
    result, ledger = run(SelfConsistency(n=8, max_tokens=40), gen, budget)
    # then, with 125 - 3 * length tokens left, as many more as fit at the longest length seen so far
    second = (125 - 3 * length - p) // length
    assert [params.n for _, params in gen.calls] == [3, second]
    assert gen.calls[1][1].max_tokens >= length
    drawn = len(events(result, "sample"))
    assert drawn == 3 + second < 8
    assert ledger.usage().total.total_tokens <= budget.tokens  # type: ignore[operator]
    [stop] = events(result, "stop")
    assert (stop["reason"], stop["drawn"], stop["requested"]) == ("budget", drawn, 8)
    assert result.confidence == 1.0  # votes / samples drawn


def test_budget_replans_after_short_samples(scripted: Make) -> None:
    gen = scripted(["\\boxed{2}"])  # one token each: far below max_tokens, so more batches fit
    p = prompt_tokens(gen)
    budget = Budget(tokens=2 * p + 3 * 10)
    result, ledger = run(SelfConsistency(n=8, max_tokens=10, seed=100), gen, budget)
    assert len(gen.calls) >= 2
    assert gen.calls[1][1].seed == 100 + gen.calls[0][1].n  # sample i keeps seed + i across batches
    assert len(events(result, "sample")) > gen.calls[0][1].n
    assert sum(params.n for _, params in gen.calls) == len(events(result, "sample"))
    assert ledger.usage().total.total_tokens <= budget.tokens  # type: ignore[operator]


def test_budget_below_one_full_sample_draws_one_shortened_sample_or_raises(
    scripted: Make, boxed: Boxed
) -> None:
    gen = scripted([boxed("2")])
    budget = Budget(tokens=prompt_tokens(gen) + 5)
    result, ledger = run(SelfConsistency(n=8, max_tokens=40), gen, budget)
    [(_, params)] = gen.calls
    assert (params.n, params.max_tokens) == (1, 5)
    assert events(result, "sample")[0]["finish_reason"] == "length"
    assert ledger.usage().total.total_tokens <= budget.tokens  # type: ignore[operator]
    gen = scripted(["\\boxed{1}"])
    with pytest.raises(BudgetExhausted):  # not even the prompt fits: the error propagates
        run(SelfConsistency(), gen, Budget(tokens=3))
    assert gen.calls == []


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.integers(min_value=0, max_value=600),
    flops=st.one_of(st.none(), st.floats(min_value=0, max_value=2e7)),
    lengths=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=5),
    n=st.integers(min_value=1, max_value=10),
)
def test_sc_never_exceeds_the_budget(tokens: int, flops: float | None, lengths: list[int], n: int) -> None:
    model = ScriptedModel(n_params=10_000, n_layers=4, d_model=64)  # with the attention term
    gen = ScriptedGenerator([" ".join(["w"] * (k - 1) + ["\\boxed{1}"]) for k in lengths], model=model)
    budget = Budget(tokens=tokens, flops=flops)
    try:
        result, ledger = run(SelfConsistency(n=n, max_tokens=25), gen, budget)
    except BudgetExhausted:
        assert gen.calls == []
        return
    spent = ledger.usage().total
    assert spent.total_tokens <= tokens
    assert flops is None or spent.flops <= flops * (1 + 1e-12)
    assert 1 <= len(events(result, "sample")) <= n
    assert spent.completion_tokens == sum(e["tokens"] for e in events(result, "sample"))
