"""Reasoning tokens: generated tokens inside <think> blocks, reported as usage.reasoning_tokens."""

from __future__ import annotations

from ttscale import Ledger, Prompt, SamplingParams
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.reasoning import opens_inside, reasoning_token_count


def test_tokens_inside_a_think_block_count() -> None:
    assert reasoning_token_count(["<think>", " a", " b", " </think>", " 42"]) == 3  # a, b and the close tag
    assert reasoning_token_count([" a", " </think>", " 42"], prefix="<think>\n") == 2
    assert reasoning_token_count([" a", " b"]) == 0
    assert reasoning_token_count([" a"], prefix="<think> x </think>") == 0
    assert reasoning_token_count(["</", "think", ">", " 7"], prefix="<think>") == 3  # a split close tag


def test_prefix_state() -> None:
    assert opens_inside("<think>\nlet me see") and not opens_inside("<think> a </think> so")
    assert not opens_inside("")


def test_meter_reports_think_tokens_of_a_reasoning_model() -> None:
    gen = ScriptedGenerator(["<think> hmm let me check </think> The answer is 4"])
    ledger = Ledger()
    out = ledger.meter(gen).generate([Prompt.user("2+2?")], SamplingParams(n=2))
    assert [c.reasoning_tokens for c in out[0]] == [5, 5]  # <think> hmm let me check (</think> starts inside)
    total = ledger.usage().total
    assert total.reasoning_tokens == 10 and total.completion_tokens == 2 * 10


def test_continuation_inside_an_open_block_counts_until_it_closes() -> None:
    gen = ScriptedGenerator(["more thought </think> done"])
    ledger = Ledger()
    ledger.meter(gen).generate([Prompt.user("q", assistant_prefix="<think>\n")], SamplingParams())
    assert ledger.usage().total.reasoning_tokens == 3
