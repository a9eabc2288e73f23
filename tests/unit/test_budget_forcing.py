"""s1 budget forcing on the scripted backend: the paper's rules, counting, budgets and parameters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from ttscale import (
    Budget,
    BudgetExhausted,
    CapabilityError,
    ConfigError,
    Ledger,
    Problem,
    Prompt,
    Result,
    solve,
)
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.strategies import build_strategy
from ttscale.strategies.budget_forcing import BudgetForcing

PROBLEM = Problem("What is 2 + 3?")
ANSWER = "So the answer is \\boxed{5}."


def thinker(segments: Sequence[str], answer: str = ANSWER) -> Any:
    """A responder: the k-th thinking call (k = "Wait"s in the prefix so far) says ``segments[k]``;
    once thinking is closed (``</think>`` in the prefix), it says ``answer``."""

    def respond(prompt: Prompt, draw: int) -> str:
        prefix = prompt.assistant_prefix
        if "</think>" in prefix:
            return answer
        return segments[min(prefix.count("Wait"), len(segments) - 1)]

    return respond


def run(
    strategy: BudgetForcing, gen: ScriptedGenerator, budget: Budget | None = None
) -> tuple[Result, Ledger]:
    ledger = Ledger(budget)
    return strategy.solve(PROBLEM, ledger.meter(gen)), ledger


def events(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def thinking_calls(gen: ScriptedGenerator) -> list[tuple[Prompt, int]]:
    """(prompt, max_tokens) of every call made with the end delimiter as a stop string."""
    return [(prompts[0], params.max_tokens) for prompts, params in gen.calls if "</think>" in params.stop]


def answer_prompt(gen: ScriptedGenerator) -> str:
    [(prompts, _)] = [(p, params) for p, params in gen.calls if not params.stop]
    return prompts[0].assistant_prefix


def test_wait_is_appended_exactly_max_waits_times_and_never_more() -> None:
    gen = ScriptedGenerator(thinker(["I think it is 5. </think>"]))  # always tries to stop early
    result, _ = run(BudgetForcing(max_thinking_tokens=200, min_thinking_tokens=150, max_waits=3), gen)
    assert len(thinking_calls(gen)) == 4  # the first attempt plus one per Wait
    assert [e["wait_appended"] for e in events(result, "think")] == [True, True, True, False]
    prefix = answer_prompt(gen)
    # s1 appends "Wait" straight after the thinking (no separator), and keeps the model's own delimiter
    assert prefix == "<think>\n" + "I think it is 5. Wait" * 3 + "I think it is 5. </think>"
    assert "Final Answer:" not in prefix and not events(result, "force_end")
    assert result.answer == "5"
    assert events(result, "sample")[0]["waits"] == 3


def test_no_wait_when_max_waits_is_zero_or_the_minimum_is_met() -> None:
    gen = ScriptedGenerator(thinker(["Five. </think>"]))
    result, _ = run(BudgetForcing(min_thinking_tokens=100, max_waits=0), gen)
    assert len(thinking_calls(gen)) == 1 and "Wait" not in result.response
    gen = ScriptedGenerator(thinker(["one two three four five six </think>"]))
    result, _ = run(BudgetForcing(min_thinking_tokens=7, max_waits=5), gen)  # 7 tokens with the delimiter
    assert len(thinking_calls(gen)) == 1 and "Wait" not in result.response


def test_min_thinking_tokens_is_respected() -> None:
    gen = ScriptedGenerator(thinker(["a b c d </think>"]))  # 5 tokens per attempt, the delimiter included
    result, ledger = run(BudgetForcing(max_thinking_tokens=100, min_thinking_tokens=12, max_waits=10), gen)
    think = events(result, "think")
    assert [e["thinking_tokens"] for e in think] == [5, 10, 15]  # 15 >= 12: the third end is accepted
    assert [e["wait_appended"] for e in think] == [True, True, False]
    assert ledger.usage().total.reasoning_tokens == 15


def test_a_model_that_never_stops_is_cut_exactly_at_the_budget() -> None:
    gen = ScriptedGenerator(thinker(["w " * 500]))
    result, ledger = run(BudgetForcing(max_thinking_tokens=50, max_answer_tokens=20), gen)
    [(_, cap)] = thinking_calls(gen)
    assert cap == 50
    assert answer_prompt(gen) == "<think>\n" + "w " * 49 + "w\n</think>\nFinal Answer:"
    [forced] = events(result, "force_end")
    assert forced["reason"] == "max_thinking_tokens" and forced["thinking_tokens"] == 50
    usage = ledger.usage().total
    assert usage.reasoning_tokens == 50
    assert usage.completion_tokens == 50 + len(ANSWER.split())  # the answer phase is not thinking
    assert result.answer == "5"


def test_thinking_stops_where_the_context_would_not_hold_the_answer() -> None:
    gen = ScriptedGenerator(thinker([" w" * 2000]), model=ScriptedModel(n_ctx=300))
    strategy = BudgetForcing(max_thinking_tokens=1000, max_answer_tokens=20)
    result, _ = run(strategy, gen)  # before: the answer call did not fit the context
    [forced] = events(result, "force_end")
    assert forced["reason"] == "context" and 0 < forced["thinking_tokens"] < 300
    [(prompts, params)] = [(p, params) for p, params in gen.calls if not params.stop]
    assert gen.count_prompt_tokens(list(prompts))[0] + params.max_tokens <= 300  # the answer fits
    assert result.answer == "5"


def test_waits_then_the_cut_never_exceed_max_thinking_tokens() -> None:
    # stops early twice (5 tokens each), then runs on: the third call may only use the 40 tokens left
    gen = ScriptedGenerator(thinker(["a b c d </think>", "e f g h </think>", "x " * 500]))
    result, ledger = run(BudgetForcing(max_thinking_tokens=50, max_waits=5), gen)
    assert [cap for _, cap in thinking_calls(gen)] == [50, 45, 40]
    assert ledger.usage().total.reasoning_tokens == 50
    assert events(result, "force_end")[0]["reason"] == "max_thinking_tokens"
    assert answer_prompt(gen).endswith("x\n</think>\nFinal Answer:")


def test_forced_end_adds_no_newline_after_one() -> None:
    gen = ScriptedGenerator(thinker(["line\n" * 100]))
    run(BudgetForcing(max_thinking_tokens=3), gen)
    assert answer_prompt(gen) == "<think>\nline\nline\nline\n</think>\nFinal Answer:"


def test_eos_counts_as_an_attempt_to_end_thinking() -> None:
    gen = ScriptedGenerator(thinker(["It is 5.", "Still 5."]))  # no delimiter: the model ends its turn
    result, _ = run(BudgetForcing(min_thinking_tokens=10, max_waits=1), gen)
    assert [e["ended_by"] for e in events(result, "think")] == ["eos", "eos"]
    # the turn ended without a delimiter: thinking is closed and the answer asked for, as at the cap
    assert answer_prompt(gen) == "<think>\nIt is 5.WaitStill 5.\n</think>\nFinal Answer:"
    assert events(result, "force_end") == []  # accepted, not forced


def test_the_models_own_delimiter_is_kept_and_nothing_is_added() -> None:
    gen = ScriptedGenerator(thinker(["It is 5.</think>"]))
    run(BudgetForcing(min_thinking_tokens=2), gen)
    assert answer_prompt(gen) == "<think>\nIt is 5.</think>"


def test_answer_phase_wins_over_thinking_and_thinking_is_the_fallback() -> None:
    gen = ScriptedGenerator(thinker(["maybe \\boxed{3} </think>"], answer="Final Answer: 7"))
    result, _ = run(BudgetForcing(max_waits=0), gen)
    assert result.answer == "7" and events(result, "sample")[0]["from"] == "answer"
    gen = ScriptedGenerator(thinker(["maybe \\boxed{3} </think>"], answer=""))
    result, _ = run(BudgetForcing(max_waits=0), gen)
    assert result.answer == "3" and events(result, "sample")[0]["from"] == "thinking"


def test_a_sample_s_logprob_summary_covers_its_thinking_and_its_answer_but_not_the_wait() -> None:
    gen = ScriptedGenerator(thinker(["a b", "c d e"]), logprob_fn=lambda tok, pos: -0.1 * (pos + 1))
    result, _ = run(BudgetForcing(min_thinking_tokens=100, max_thinking_tokens=200, max_waits=1), gen)
    assert events(result, "sample")[0].get("logprob") is None  # no logprobs asked for: no summary
    meter = Ledger().meter(gen, sampled_logprobs=True)
    result = BudgetForcing(min_thinking_tokens=100, max_thinking_tokens=200, max_waits=1).solve(
        PROBLEM, meter
    )
    (sample,) = events(result, "sample")
    answer_tokens = events(result, "answer")[0]["tokens"]
    summary = sample["logprob"]
    assert summary["tokens"] == sample["thinking_tokens"] + answer_tokens  # sampled tokens, no "Wait"
    parts = [2, 3, answer_tokens]  # the scripted logprob of the token at position p is -0.1 (p + 1)
    values = [-0.1 * (p + 1) for n in parts for p in range(n)]
    assert summary["mean"] == pytest.approx(sum(values) / len(values))
    assert summary["min"] == pytest.approx(min(values))


def test_thinking_calls_are_greedy_with_the_delimiter_as_stop() -> None:
    gen = ScriptedGenerator(thinker(["ok </think>"]))
    result, _ = run(BudgetForcing(max_waits=0, max_answer_tokens=33), gen)
    (prompt, think), (answer_prompts, answer) = gen.calls
    assert (think.temperature, think.stop, answer.temperature, answer.max_tokens) == (0, ("</think>",), 0, 33)
    assert prompt[0].assistant_prefix == "<think>\n"
    assert "<think>" in prompt[0].messages[0].content and "</think>" in prompt[0].messages[0].content
    assert result.strategy == "budget_forcing" and result.confidence is None


def test_reasoning_tokens_count_only_thinking() -> None:
    gen = ScriptedGenerator(thinker(["a b c </think>", "d e </think>"]))
    result = solve(PROBLEM, BudgetForcing(min_thinking_tokens=6, max_waits=3), generator=gen)
    usage = result.usage.total
    assert usage.reasoning_tokens == 4 + 3
    assert usage.completion_tokens == 4 + 3 + len(ANSWER.split())
    assert result.to_dict()["usage"]["reasoning_tokens"] == 7  # what `ttscale solve --json` prints


def test_n_samples_think_in_rounds_and_vote() -> None:
    answers = ["\\boxed{5}", "\\boxed{4}", "\\boxed{5}"]

    def respond(prompt: Prompt, draw: int) -> str:
        if "</think>" not in prompt.assistant_prefix:
            return "x y </think>" if draw < 3 else "z </think>"
        return answers[draw % 3]

    gen = ScriptedGenerator(respond)
    result, ledger = run(BudgetForcing(n=3, min_thinking_tokens=4, max_waits=1, seed=1), gen)
    calls = [(len(prompts), params.n, params.temperature) for prompts, params in gen.calls]
    assert calls == [(1, 3, 0.7), (3, 1, 0.7), (3, 1, 0.7)]  # fork, one Wait round, one answer call
    assert result.answer == "5" and result.confidence == pytest.approx(2 / 3)
    assert ledger.usage().total.reasoning_tokens == 3 * (3 + 2)


def test_a_tight_budget_forces_the_answer_phase_and_is_never_exceeded() -> None:
    gen = ScriptedGenerator(thinker(["w " * 500]))
    base = gen.count_prompt_tokens([Prompt.user("q")])[0]  # only for scale; the real prompt is longer
    budget = Budget(tokens=2 * base + 200)
    result, ledger = run(BudgetForcing(max_thinking_tokens=500, max_answer_tokens=10), gen, budget)
    assert ledger.usage().total.total_tokens <= 2 * base + 200
    assert 0 < ledger.usage().total.reasoning_tokens < 500
    assert [e["reason"] for e in events(result, "force_end")] == ["budget"]
    assert answer_prompt(gen).endswith("\n</think>\nFinal Answer:")  # the answer was still paid for
    assert result.answer == "5"


def test_a_budget_too_small_for_anything_raises() -> None:
    gen = ScriptedGenerator(thinker(["w " * 500]))
    with pytest.raises(BudgetExhausted):
        run(BudgetForcing(), gen, Budget(tokens=5))


def test_refused_without_prefix_continuation_before_any_call() -> None:
    gen = ScriptedGenerator(thinker(["x </think>"]), continue_prefix=False)
    with pytest.raises(CapabilityError, match="budget_forcing needs continuing an assistant prefix"):
        run(BudgetForcing(), gen)
    assert gen.calls == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"max_thinking_tokens": "0"}, "max_thinking_tokens must be an integer >= 1"),
        (
            {"max_thinking_tokens": "10", "min_thinking_tokens": "11"},
            "between 0 and max_thinking_tokens (10)",
        ),
        ({"min_thinking_tokens": "-1"}, "min_thinking_tokens must be none or between 0"),
        ({"max_waits": "-1"}, "max_waits must be an integer >= 0"),
        ({"max_answer_tokens": "0"}, "max_answer_tokens must be an integer >= 1"),
        ({"think_end": ""}, "think_end must be a non-empty string"),
        ({"ignore_string": ""}, "ignore_string must be a non-empty string"),
        ({"n": "0"}, "n must be an integer >= 1"),
        ({"n": "2", "temperature": "0"}, "temperature must be > 0 when n > 1"),
        ({"temperature": "-1"}, "temperature must be a finite number >= 0"),
    ],
)
def test_parameters_are_validated_with_clear_messages(params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build_strategy("budget_forcing", params)


def test_registered_and_built_from_strings() -> None:
    bf = build_strategy("budget_forcing", {"max_thinking_tokens": "64", "min_thinking_tokens": "none"})
    assert isinstance(bf, BudgetForcing)
    assert (bf.max_thinking_tokens, bf.min_tokens, bf.max_waits) == (64, 64, 2)
    assert (bf.think_start, bf.think_end, bf.ignore_string, bf.final_answer) == (
        "<think>\n",
        "</think>",
        "Wait",
        "\nFinal Answer:",
    )
    assert BudgetForcing(n=4).sampling_temperature == 0.7 and BudgetForcing().sampling_temperature == 0


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("tokens", [60, 90, 130, 200, 400, 900])
def test_no_budget_is_ever_overspent(n: int, tokens: int) -> None:
    gen = ScriptedGenerator(thinker(["a b c </think>", "w " * 300]), prefix_cache=True)
    try:
        result, ledger = run(
            BudgetForcing(n=n, max_thinking_tokens=300, max_waits=2), gen, Budget(tokens=tokens)
        )
    except BudgetExhausted:
        return
    assert ledger.usage().total.total_tokens <= tokens
    assert all(e["thinking_tokens"] <= 300 for e in events(result, "think"))
