"""Recorded draws on the real engine: the sampled tokens do not depend on the logprobs asked for (what lets
a self-certainty draw serve a judge), and a replayed call decodes nothing and books the draw's tokens."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ttscale import Prompt, SamplingParams
from ttscale.backends.draws import DrawFile, DrawReplay
from ttscale.backends.llamacpp import LlamaCppGenerator
from ttscale.compute import Ledger

pytestmark = pytest.mark.integration

PROMPT = Prompt.user("Name three colours of the rainbow.")
PARAMS = SamplingParams(n=3, max_tokens=24, temperature=0.8, top_k=40, top_p=0.95, seed=21)


def test_the_logprobs_asked_for_do_not_change_the_sampled_tokens(small: LlamaCppGenerator) -> None:
    plain = small.generate([PROMPT], PARAMS)[0]
    with_top = small.generate([PROMPT], replace(PARAMS, logprobs=20))[0]
    assert [c.token_ids for c in with_top] == [c.token_ids for c in plain]
    assert len({c.token_ids for c in plain}) > 1  # three different samples, not one repeated


def test_a_replayed_call_decodes_nothing_and_books_the_draws_tokens(
    small: LlamaCppGenerator, tmp_path: Path
) -> None:
    draws = DrawFile(tmp_path / "draws.sqlite")
    replay = DrawReplay(small, draws)
    try:
        first, second = Ledger(), Ledger()
        drawn = first.meter(replay).generate([PROMPT], replace(PARAMS, logprobs=5))[0]
        decoded = small.engine.stats.decoded_tokens
        replayed = second.meter(replay).generate([PROMPT], PARAMS)[0]
        assert small.engine.stats.decoded_tokens == decoded
        assert [c.token_ids for c in replayed] == [c.token_ids for c in drawn]
        assert [c.text for c in replayed] == [c.text for c in drawn]
        booked, drawn_cost = second.usage().total, first.usage().total
        assert booked.completion_tokens == drawn_cost.completion_tokens
        # the draw left its prompt cached: the replay books the one token the engine promised to compute
        assert booked.prompt_tokens == 1 <= drawn_cost.prompt_tokens
        assert (
            booked.prompt_tokens + booked.cached_prompt_tokens
            == drawn_cost.prompt_tokens + drawn_cost.cached_prompt_tokens
        )
        assert not any(s.pins for s in small.engine._slots.slots)  # the meter's hold was given back
        assert (replay.stats.replayed, replay.stats.drawn) == (1, 1)
    finally:
        draws.close()  # not replay.close(): the module's engine outlives this test
