"""Budget forcing and TIP on the embedded engine with a real model (SmolLM2-135M): short runs only."""

from __future__ import annotations

import pytest

from ttscale import Prompt, SamplingParams, solve
from ttscale.backends.llamacpp import LlamaCppGenerator
from ttscale.processors import tip_processor

pytestmark = pytest.mark.integration

# a prompt that makes the model write switch words at once ("Wait, wait." without the penalty)
ECHO = Prompt.user("Repeat after me: Wait, wait. Alternatively, wait.")
# a prompt that makes it switch over and over: "wait," every other token without the penalty
WAITS = Prompt.user("Write the word wait twenty times.", assistant_prefix="wait, wait, wait, wait, wait,")


def test_budget_forcing_waits_then_cuts_at_the_thinking_budget(small: LlamaCppGenerator) -> None:
    result = solve(
        "What is 12 * 7?",
        "budget_forcing",
        generator=small,
        max_thinking_tokens=64,
        min_thinking_tokens=64,  # every early end is suppressed ...
        max_waits=8,  # ... often enough to reach the budget
        max_answer_tokens=16,
    )
    think = [e.data for e in result.trace if e.kind == "think"]
    assert any(e["wait_appended"] for e in think)  # the model tried to stop early and was told to wait
    assert "Wait" in result.response
    assert sum(e["tokens"] for e in think) == 64  # never more thinking than the budget
    [forced] = [e.data for e in result.trace if e.kind == "force_end"]
    assert forced["reason"] == "max_thinking_tokens"
    assert "</think>\nFinal Answer:" in result.response
    usage = result.usage.total
    assert usage.reasoning_tokens == 64 and usage.completion_tokens > 64  # the answer is not thinking


def test_tip_keeps_switch_tokens_out_of_the_window(small: LlamaCppGenerator) -> None:
    greedy = SamplingParams(temperature=0.0, max_tokens=32)
    plain = small.generate([ECHO], greedy)[0][0]
    ban = tip_processor(small, alpha=1e9)  # beta = 600 covers the whole generation
    assert ban.switches(plain.token_ids)  # without TIP the model switches at once
    penalised = small.generate(
        [ECHO], SamplingParams(temperature=0.0, max_tokens=32, logits_processors=(ban,))
    )
    assert penalised[0][0].token_ids and not ban.switches(penalised[0][0].token_ids)
    # a short window: a switch may come only beta tokens after the start of the current thought
    short = tip_processor(small, alpha=1e9, beta=5)
    params = SamplingParams(temperature=0.0, max_tokens=24, logits_processors=(short,))
    switches = short.switches(small.generate([WAITS], params)[0][0].token_ids)
    assert switches and switches[0] >= 5  # none in the first window; once it closed, switching resumed
    psi = 0
    for i in switches:  # (the restart of the window at each switch is pinned in tests/unit/test_tip.py)
        assert i >= psi + 5
        psi = i


def test_tip_composes_with_sampling_and_the_strategy(small: LlamaCppGenerator) -> None:
    ban = tip_processor(small, alpha=1e9)
    params = SamplingParams(n=4, temperature=1.0, top_k=40, max_tokens=24, seed=5, logits_processors=(ban,))
    samples = small.generate([ECHO], params)[0]
    assert len({c.text for c in samples}) > 1  # still sampling: the forks differ
    assert all(not ban.switches(c.token_ids) for c in samples)  # every fork got the penalty
    result = solve(ECHO.messages[0].content, "tip", generator=small, n=2, alpha=1e9, max_tokens=24, seed=1)
    [tip] = [e.data for e in result.trace if e.kind == "tip"]
    assert tip["switches"] == [0, 0] and " Wait" in tip["penalised"].values()
    assert result.usage.total.completion_tokens > 0
