"""Steps: formats, splitting, terminal steps, and how a search generates one step (scripted backend)."""

from __future__ import annotations

import pytest
from search_helpers import PROBLEM, named_policy, nodes, policy_calls, search_gen, separate_judge, solve

from ttscale import ConfigError, Ledger
from ttscale.backends.scripted import ScriptedGenerator, render, tokenize
from ttscale.search.steps import STEP_SYSTEM_PROMPT, StepFormat, is_terminal
from ttscale.strategies.beam_search import BeamSearch
from ttscale.types import Prompt


def test_default_is_paragraphs_with_a_blank_line_stop() -> None:
    fmt = StepFormat.parse("blank_line")
    assert fmt == StepFormat() and fmt.stop == ("\n\n",) and fmt.separator == "\n\n"
    text = "First we add.\n\nThen we multiply.\n \n\n  So \\boxed{42}.\n"
    assert fmt.split(text) == ["First we add.", "Then we multiply.", "So \\boxed{42}."]
    steps = ["a = 1", "b = a + 1\nso b = 2", "\\boxed{2}"]
    assert fmt.split(fmt.join(steps)) == steps  # a step may hold single newlines


def test_newline_and_step_marker_formats() -> None:
    lines = StepFormat.parse("newline")
    assert lines.stop == ("\n",) and lines.split("a\n\nb\nc") == ["a", "b", "c"]
    marks = StepFormat.parse("step_markers")
    assert marks.stop == ("\nStep ",)
    text = "Step 1: add 2\nand 3\nStep 2: so 5\n\nStep 3: \\boxed{5}"
    assert marks.split(text) == ["Step 1: add 2\nand 3", "Step 2: so 5", "Step 3: \\boxed{5}"]


def test_regex_format_splits_and_cuts_at_the_first_separator_after_content() -> None:
    fmt = StepFormat.parse("regex:\\n-{3,}\\n")
    assert (fmt.kind, fmt.stop) == ("regex", ())
    assert fmt.split("a\n---\nb\n-----\nc") == ["a", "b", "c"]
    assert fmt.cut("\n---\nfirst\n---\nsecond") == ("---\nfirst", "\n---\n")
    assert fmt.cut("no separator yet") == ("no separator yet", None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("paragraphs", "steps must be blank_line, newline, step_markers or regex:<pattern>"),
        ("regex:(", "does not compile"),
        ("regex:\\s*", "matches the empty string"),
    ],
)
def test_bad_step_formats_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StepFormat.parse(spec)


def test_step_prompt_asks_for_the_layout_and_a_boxed_answer() -> None:
    prompt = StepFormat.parse("step_markers").prompt("What is 2 + 3?")
    system, user = prompt.messages
    assert system.content == STEP_SYSTEM_PROMPT.format(
        layout="Start each step on a new line with 'Step k:' (Step 1:, Step 2:, ...)."
    )
    assert "\\boxed{}" in system.content and user.content == "What is 2 + 3?"
    assert prompt.assistant_prefix == ""


@pytest.mark.parametrize(
    ("step", "finish", "terminal"),
    [
        ("So the answer is \\boxed{42}.", "stop", True),
        ("So the answer is \\boxed{4", "length", False),  # an unfinished box is no answer yet
        ("We add 2 and 3.", "stop", False),
        ("We add 2 and 3.", "eos", True),  # the model ended its turn
        ("  ", "stop", True),  # an empty step: the model had nothing more to say
    ],
)
def test_terminal_steps(step: str, finish: str, terminal: bool) -> None:
    assert is_terminal(step, finish) is terminal  # type: ignore[arg-type]


def test_a_step_is_generated_with_the_separator_stop_and_the_step_cap() -> None:
    gen = search_gen(named_policy(depth=3))
    solve(BeamSearch(n=2, beam_width=1, max_step_tokens=7, iterations=1), gen)
    [(prompts, params)] = policy_calls(gen)
    assert params.stop == ("\n\n",) and params.max_tokens == 7 and params.n == 2
    assert (params.temperature, params.top_p, params.top_k) == (0.8, 1.0, 0)


def test_a_step_that_never_ends_is_cut_at_the_cap_and_the_solution_goes_on() -> None:
    long_step = " ".join(f"w{i}" for i in range(20))
    gen = search_gen(lambda p, k: long_step if p.assistant_prefix == "" else "\\boxed{1}")
    result = solve(BeamSearch(n=1, beam_width=1, max_step_tokens=5, iterations=3), gen)
    calls = policy_calls(gen)
    first = [e for e in result.trace if e.kind == "node" and e.data["depth"] == 1][0].data
    assert first["finish_reason"] == "length" and first["tokens"] == 5 and not first["terminal"]
    assert first["step"] == "w0 w1 w2 w3 w4"
    # the cut step is kept and followed by the separator: the next step starts a fresh paragraph
    assert calls[1][0][0].assistant_prefix == "w0 w1 w2 w3 w4\n\n"
    assert result.answer == "1"


def test_children_continue_the_parent_prefix_and_hit_the_prefix_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    separate_judge(monkeypatch)  # the judge's usage goes under its own name, so the policy's is clean
    gen = ScriptedGenerator(named_policy(depth=3), prefix_cache=True)
    ledger = Ledger()
    solve(BeamSearch(n=1, beam_width=1, iterations=2, prm_model="judge"), gen, ledger)
    (first, _), (second, _) = gen.calls
    assert second[0].messages == first[0].messages  # same conversation, only the assistant prefix grows
    assert (first[0].assistant_prefix, second[0].assistant_prefix) == ("", "n0\n\n")
    # one sample per call, so nothing is a fork: the cached tokens are the first prompt, found again
    policy = ledger.usage().by_model["scripted"]
    assert policy.cached_prompt_tokens == len(tokenize(render(first[0]))) - 1
    assert policy.prompt_tokens == len(tokenize(render(first[0]))) + 1 + len(
        tokenize(render(second[0]))
    ) - len(tokenize(render(first[0])))


def test_regex_steps_stop_through_a_criterion_that_decodes_the_step() -> None:
    def policy(prompt: object, k: int) -> str:
        prefix = prompt.assistant_prefix  # type: ignore[attr-defined]
        return "one\n---\ntwo" if prefix == "" else "\\boxed{3}"

    gen = search_gen(policy, reentrant=True)
    result = solve(BeamSearch(n=1, beam_width=1, steps="regex:\\n-{3}\\n", iterations=3), gen)
    calls = policy_calls(gen)
    assert calls[0][1].stop == () and len(calls[0][1].stopping_criteria) == 1
    assert calls[1][0][0].assistant_prefix == "one\n---\n"  # the separator found is kept in the prefix
    first = [e.data for e in result.trace if e.kind == "node" and e.data["depth"] == 1][0]
    assert first["step"] == "one" and first["finish_reason"] == "criterion"
    assert result.answer == "3" and PROBLEM.question in calls[0][0][0].messages[-1].content


def test_an_empty_last_step_is_not_judged_and_keeps_the_score_of_the_step_before() -> None:
    def policy(prompt: Prompt, k: int) -> str:
        if prompt.assistant_prefix == "":
            return "Six times seven is 42.\n\nmore"  # a step, cut at the blank line
        return "\n\nthe end"  # a blank line straight away: an empty step, which ends the solution

    judged: list[list[str]] = []

    def judge(steps: list[str]) -> float:
        judged.append(list(steps))
        return 10 if not steps[-1].strip() else 90  # a judge asked about nothing says No

    result = solve(BeamSearch(n=2, beam_width=2, iterations=3), search_gen(policy, judge))
    assert judged and all(all(s.strip() for s in steps) for steps in judged)  # never shown an empty step
    finished = [n for n in nodes(result).values() if n["terminal"]]
    assert finished and all(n["step"] == "" and n["score"] == 0.9 for n in finished)
    assert result.confidence == 1.0  # every solution agrees, each weighted 0.9


def test_an_end_of_turn_after_a_separator_the_stop_missed_does_not_end_the_step() -> None:
    # a whitespace-only line separates steps too, but the stop string ("\n\n") does not catch it
    def policy(prompt: Prompt, k: int) -> str:
        if prompt.assistant_prefix == "":
            return "First compute 6*7.\n \nSo the answer is \\boxed{42}."
        return "So the answer is \\boxed{42}."

    result = solve(BeamSearch(n=2, beam_width=2, iterations=3), search_gen(policy))
    by_id = nodes(result)
    first = [n for n in by_id.values() if n["depth"] == 1]
    assert first and all(n["step"] == "First compute 6*7." and not n["terminal"] for n in first)
    assert result.answer == "42"  # the next step gives the boxed answer the first call's tail held
