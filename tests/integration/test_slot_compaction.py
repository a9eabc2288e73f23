"""Live sequences are packed onto consecutive sequence ids, and a moved sequence continues exactly.

llama.cpp decodes each run of consecutive ids as its own pass over the weights, so the engine moves
streams into the holes finished sequences leave (see ``backends/llamacpp/slots.py``). These tests run
on SmolLM2-135M: short requests finish first and leave holes below long ones, which are then moved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ttscale import Prompt, SamplingParams
from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator
from ttscale.backends.llamacpp.engine import EngineStats

pytestmark = pytest.mark.integration

PROMPTS = [Prompt.user(f"Count upward from {k}, one number per line.") for k in (1, 20, 300, 4000, 50000)]
LENGTHS = [3, 40, 3, 40, 40]  # the short ones finish first and leave holes below the long ones


def greedy(gen: LlamaCppGenerator, k: int) -> SamplingParams:
    """Greedy for exactly k tokens: end-of-generation tokens are banned, so holes appear where planned."""
    eog = [t for t in range(gen.native.n_vocab) if gen.native.is_eog(t)]
    return SamplingParams(
        n=1, temperature=0.0, max_tokens=k, logit_bias=tuple((t, float("-inf")) for t in eog)
    )


def run(path: Path, *, compact: bool, max_cached: int) -> tuple[list[tuple[int, ...]], EngineStats]:
    config = ContextConfig(n_seq_max=8, seq_len=256, max_cached=max_cached, compact_slots=compact)
    with LlamaCppGenerator(path, config=config) as gen:
        # submitted in order, so request i is admitted i-th and takes the lowest free id
        reqs = [
            gen.engine.submit(gen.tokens(p), greedy(gen, k), 1, 0)
            for p, k in zip(PROMPTS, LENGTHS, strict=True)
        ]
        outs = [r.future.result(timeout=300)[0].token_ids for r in reqs]
        return outs, gen.engine.stats


@pytest.mark.parametrize("max_cached", [0, 2])
def test_moved_sequences_continue_exactly_and_decode_in_fewer_passes(
    small_path: Path, max_cached: int
) -> None:
    packed, on = run(small_path, compact=True, max_cached=max_cached)
    spread, off = run(small_path, compact=False, max_cached=max_cached)
    assert on.slot_moves > 0 and off.slot_moves == 0
    assert on.id_runs < off.id_runs  # fewer llama.cpp passes for the same steps
    if max_cached == 0:  # nothing cached in the way: one run of ids, one pass, at every step
        assert on.id_runs == on.decode_steps
    assert packed == spread
    with LlamaCppGenerator(small_path, config=ContextConfig(n_seq_max=2, seq_len=256)) as gen:
        alone = [
            gen.generate([p], greedy(gen, k))[0][0].token_ids for p, k in zip(PROMPTS, LENGTHS, strict=True)
        ]
    assert packed == alone  # a moved stream holds exactly the KV the sequence had
    assert [len(t) for t in packed] == LENGTHS  # the long ones really ran on after the moves


def test_a_cached_prefix_moved_out_of_the_way_still_serves_its_prompt(small_path: Path) -> None:
    config = ContextConfig(n_seq_max=8, seq_len=256, max_cached=8)  # keep every finished sequence
    with LlamaCppGenerator(small_path, config=config) as gen:
        tokens = [gen.tokens(p) for p in PROMPTS]
        reqs = [gen.engine.submit(t, greedy(gen, k), 1, 0) for t, k in zip(tokens, LENGTHS, strict=True)]
        first = [r.future.result(timeout=300)[0] for r in reqs]
        # the first request finished on id 0 below the live ones and was moved above them, kept
        home = next(s for s in gen.engine._slots.slots if s.tokens[: len(tokens[0])] == tokens[0])
        assert home.id != 0 and gen.engine.stats.slot_moves > 0
        again = gen.generate([PROMPTS[0]], greedy(gen, LENGTHS[0]))[0][0]
        assert again.cached_prompt_tokens == again.prompt_tokens - 1  # the moved KV serves the prompt
        assert again.token_ids == first[0].token_ids


def test_with_every_slot_in_use_cached_prefixes_in_the_way_give_way(small_path: Path) -> None:
    # five requests on five slots, every finished sequence kept: when the first short one finishes on id
    # 0 there is no free slot to move it to, so it is evicted and the top live one moves down into id 0
    config = ContextConfig(n_seq_max=5, seq_len=256, max_cached=8)
    with LlamaCppGenerator(small_path, config=config) as gen:
        reqs = [
            gen.engine.submit(gen.tokens(p), greedy(gen, k), 1, 0)
            for p, k in zip(PROMPTS, LENGTHS, strict=True)
        ]
        outs = [r.future.result(timeout=300)[0].token_ids for r in reqs]
        stats = gen.engine.stats
    assert stats.evictions >= 1 and stats.slot_moves >= 2
    # one pass per step, but for one step at most: the second short one finishes on id 2 and moves up
    # into the slot the first move vacated, and that id is reused only at the next plan (unpacked, the
    # gap it leaves would cost two passes at each of the ~37 steps left)
    assert stats.id_runs <= stats.decode_steps + 1
    packed, _ = run(small_path, compact=True, max_cached=0)
    assert outs == packed  # the moved streams continue exactly
