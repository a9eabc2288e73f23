"""TIP, the thought-switching penalty: the processor's window, token resolution, and the strategy's wiring."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import pytest

from ttscale import Capabilities, CapabilityError, ConfigError, Ledger, Problem, Result
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.processors import ThoughtSwitchPenalty, resolve_switch_tokens, spellings, tip_processor
from ttscale.prompts import cot_prompt
from ttscale.strategies import build_strategy
from ttscale.strategies.tip import ThoughtSwitchingPenalty

SWITCH, OTHER, VOCAB = 7, 1, 12


def logits_after(proc: ThoughtSwitchPenalty, generated: Sequence[int]) -> np.ndarray:
    logits = np.zeros(VOCAB, dtype=np.float32)
    proc(list(generated), logits)
    return logits


def penalised(proc: ThoughtSwitchPenalty, generated: Sequence[int]) -> bool:
    return bool(logits_after(proc, generated)[SWITCH] < 0)


def test_penalty_applies_inside_the_window_and_only_to_switch_tokens() -> None:
    proc = ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=2.5, beta=5)
    logits = logits_after(proc, [OTHER] * 3)
    assert logits[SWITCH] == pytest.approx(-2.5)
    assert np.count_nonzero(logits) == 1  # nothing else touched


def test_window_restarts_at_each_switch() -> None:
    proc = ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=3.0, beta=5)
    assert penalised(proc, [OTHER] * 4)  # t = 4 < psi + beta = 0 + 5
    assert not penalised(proc, [OTHER] * 5)  # t = 5: the first thought's window has closed
    switched = [OTHER] * 8 + [SWITCH]  # a new thought starts at psi = 8
    assert penalised(proc, switched + [OTHER] * 3)  # t = 12 < 13
    assert not penalised(proc, switched + [OTHER] * 4)  # t = 13: closed again
    again = switched + [OTHER] * 10 + [SWITCH]  # and another at psi = 19
    assert penalised(proc, again)  # t = 20 < 24: penalised again
    assert penalised(proc, again + [OTHER] * 3) and not penalised(proc, again + [OTHER] * 4)
    assert proc.switches(again) == [8, 19]


def test_alpha_zero_changes_nothing_and_the_processor_is_pure() -> None:
    generated = [OTHER, SWITCH, OTHER]
    logits = np.linspace(-1, 1, VOCAB, dtype=np.float32)
    before = logits.copy()
    ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=0.0, beta=600)(generated, logits)
    assert np.array_equal(logits, before)
    proc = ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=1.0, beta=600)
    assert np.array_equal(logits_after(proc, generated), logits_after(proc, generated))  # no hidden state
    assert generated == [OTHER, SWITCH, OTHER]
    with pytest.raises(dataclasses.FrozenInstanceError):
        proc.alpha = 2.0  # type: ignore[misc]


def test_beta_zero_disables_and_infinite_alpha_bans() -> None:
    assert not penalised(ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=3.0, beta=0), [])
    logits = logits_after(ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=float("inf"), beta=10), [])
    assert logits[SWITCH] == -np.inf


@pytest.mark.parametrize(
    ("alpha", "beta", "fragment"),
    [(-1.0, 600, "alpha must be a number >= 0"), (float("nan"), 600, "alpha"), (3.0, -1, "beta must be")],
)
def test_negative_alpha_or_beta_is_refused(alpha: float, beta: int, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        ThoughtSwitchPenalty(frozenset({SWITCH}), alpha=alpha, beta=beta)


def test_phrase_tokens_are_penalised_and_count_only_after_their_head() -> None:
    but, wait = 5, 9
    proc = ThoughtSwitchPenalty(frozenset(), phrases=(((but,), wait),), alpha=1.0, beta=100)
    assert logits_after(proc, [OTHER, but])[wait] == -1.0
    assert logits_after(proc, [OTHER, OTHER])[wait] == 0.0  # " wait" alone is not this switch
    assert proc.switches([OTHER, but, wait, OTHER, wait]) == [2]


def test_spellings_cover_case_and_leading_space() -> None:
    assert set(spellings("Wait")) == {"Wait", " Wait", "wait", " wait"}
    assert set(spellings("but wait")) == {"but wait", " but wait", "But wait", " But wait"}


def test_resolution_finds_both_wait_tokens_on_the_scripted_vocabulary() -> None:
    gen = ScriptedGenerator(["x"])
    ids, phrases = resolve_switch_tokens(gen, ["Wait", "Alternatively"])
    for spelling in ("Wait", " Wait", "wait", " wait", "Alternatively", " alternatively"):
        [token] = gen.encode(spelling)
        assert token in ids
    assert phrases == ()


def test_a_phrase_penalises_its_last_word_after_its_head_not_its_first_token() -> None:
    gen = ScriptedGenerator(["x"])
    ids, phrases = resolve_switch_tokens(gen, ["But wait"])
    [but, wait] = gen.encode(" But wait")
    assert but not in ids and wait not in ids  # "But" alone is not a switch
    assert ((but,), wait) in phrases
    ids, phrases = resolve_switch_tokens(gen, ["But wait", "Wait"])  # " wait" is a one-word spelling now
    assert wait in ids and all(tok not in ids for _, tok in phrases)


class Pieces:
    """A tokenizer that cuts every word into pieces of at most 4 characters (" Alte", "rnat", ...)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        pieces = [p for word in re.findall(r"\s*\S+", text) for p in re.findall(r"\s*\S{1,4}", word)]
        return [self.vocab.setdefault(p, len(self.vocab)) for p in pieces]

    def decode(self, token_ids: Sequence[int]) -> str:
        names = {i: p for p, i in self.vocab.items()}
        return "".join(names[i] for i in token_ids)


def test_a_multi_token_word_penalises_its_first_piece_only() -> None:
    tok = Pieces()
    ids, _ = resolve_switch_tokens(tok, ["Alternatively"])
    first, second, *_ = tok.encode(" Alternatively")
    assert first in ids and second not in ids
    assert {tok.decode([i]) for i in ids} == {"Alte", " Alte", "alte", " alte"}


def test_switch_words_must_be_given() -> None:
    with pytest.raises(ConfigError, match="non-empty sequence"):
        resolve_switch_tokens(ScriptedGenerator(["x"]), [])
    with pytest.raises(ConfigError, match="words must be a comma-separated list"):
        build_strategy("tip", {"words": " , "})


class ProcessingScripted(ScriptedGenerator):
    """The scripted backend declaring logits processors (it records them; it cannot apply them)."""

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(super().capabilities, logits_processors=True)


def test_backend_without_logits_processors_is_refused_before_any_call() -> None:
    gen = ScriptedGenerator(["x"])
    with pytest.raises(CapabilityError, match="logits processors"):
        tip_processor(gen)
    with pytest.raises(CapabilityError, match=re.escape("thought-switching penalty (TIP) needs")):
        ThoughtSwitchingPenalty().solve(Problem("1 + 1?"), Ledger().meter(gen))
    assert gen.calls == []


def solve_tip(gen: ScriptedGenerator, **params: object) -> Result:
    strategy = build_strategy("tip", params)
    result: Result = strategy.solve(Problem("What is 2 + 2?"), Ledger().meter(gen))
    return result


def test_strategy_decodes_greedily_with_the_processor_and_counts_switches() -> None:
    gen = ProcessingScripted(["Two and two. Wait no, \\boxed{4}."])
    result = solve_tip(gen, alpha="5", beta="100", max_tokens="64")
    [(prompts, params)] = gen.calls
    [proc] = params.logits_processors
    assert isinstance(proc, ThoughtSwitchPenalty) and (proc.alpha, proc.beta) == (5.0, 100)
    assert gen.encode(" Wait")[0] in proc.token_ids
    assert (params.n, params.temperature, params.max_tokens) == (1, 0.0, 64)
    assert prompts[0].assistant_prefix.startswith("Let's think step by step.")  # the cot prompt
    assert result.answer == "4" and result.strategy == "tip" and result.confidence is None
    [tip] = [e.data for e in result.trace if e.kind == "tip"]
    assert tip["switches"] == [1] and " Wait" in tip["penalised"].values()


def test_strategy_samples_and_votes_when_n_is_above_one() -> None:
    gen = ProcessingScripted(["\\boxed{4}", "\\boxed{5}", "\\boxed{4}"])
    result = solve_tip(gen, n="3", seed="2")
    [(_, params)] = gen.calls
    assert (params.n, params.temperature, params.top_k, params.seed) == (3, 0.7, 40, 2)
    assert len(params.logits_processors) == 1
    assert result.answer == "4" and result.confidence == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"alpha": "-1"}, "alpha must be a number >= 0"), ({"beta": "-5"}, "beta must be an integer >= 0")],
)
def test_strategy_parameters_are_validated(params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build_strategy("tip", params)


def test_prompt_is_the_chain_of_thought_prompt() -> None:
    gen = ProcessingScripted(["\\boxed{1}"])
    solve_tip(gen)
    assert gen.calls[0][0][0] == cot_prompt("What is 2 + 2?", continue_prefix=True)
