"""Parallel-sampling strategies on the real engine (SmolLM2-135M): short runs that check the mechanics."""

from __future__ import annotations

from typing import Any

import pytest

from ttscale import Ledger, Problem, Prompt, Result, SamplingParams
from ttscale.backends.llamacpp import LlamaCppGenerator
from ttscale.strategies.adaptive_consistency import AdaptiveConsistency
from ttscale.strategies.deepconf import DeepConf
from ttscale.strategies.deepconf_confidence import ConfidenceStop
from ttscale.strategies.self_consistency import SelfConsistency

pytestmark = pytest.mark.integration

PROBLEM = Problem("What is 6 + 7?", answer_kind="number")


def solve(strategy: Any, gen: LlamaCppGenerator) -> tuple[Result, Ledger]:
    ledger = Ledger()
    return strategy.solve(PROBLEM, ledger.meter(gen)), ledger


def events(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def test_adaptive_consistency_answers_within_max_n(small: LlamaCppGenerator) -> None:
    result, ledger = solve(AdaptiveConsistency(max_n=6, batch_size=2, max_tokens=32, seed=11), small)
    [stop] = events(result, "stop")
    used = stop["samples_used"]
    assert result.answer is not None
    assert 1 <= used <= 6 and stop["samples_saved"] == 6 - used
    assert len(events(result, "sample")) == used
    assert stop["reason"] in ("confident", "max_n")
    assert ledger.usage().total.completion_tokens == sum(s["tokens"] for s in events(result, "sample"))


def test_confidence_stop_cuts_traces_inside_the_engine(small: LlamaCppGenerator) -> None:
    # a threshold no window can reach: every trace must be cut right after its first full window
    stop = ConfidenceStop(threshold=1e9, window=8, k=20)
    no_eos = tuple((t, float("-inf")) for t in range(small.native.n_vocab) if small.native.is_eog(t))
    params = SamplingParams(
        n=3, max_tokens=40, temperature=1.0, seed=5, logprobs=20, stopping_criteria=(stop,), logit_bias=no_eos
    )
    out = small.generate([Prompt.user("Count from one to twenty.")], params)[0]
    assert [c.finish_reason for c in out] == ["criterion"] * 3
    assert all(len(c.token_ids) == 8 for c in out)


def test_deepconf_online_stops_exactly_the_traces_below_the_threshold(small: LlamaCppGenerator) -> None:
    # whether a given trace is cut depends on the sampled text; the rule does not: an online trace is cut
    # iff one of its full windows fell below the warm-up threshold, and cut traces never vote
    strategy = DeepConf(n=6, n_init=2, eta=1, window=8, batch_size=4, max_tokens=40, temperature=1.0, seed=5)
    result, ledger = solve(strategy, small)
    samples = events(result, "sample")
    [threshold] = events(result, "threshold")
    for s in samples:
        if s["phase"] != "online":
            continue
        cut = s["finish_reason"] == "criterion"
        assert cut == s["early_stopped"]
        if cut:
            assert not s["voted"] and 8 <= s["tokens"] < 40 and s["lowest_group"] < threshold["threshold"]
        elif s["tokens"] >= 8:
            assert s["lowest_group"] >= threshold["threshold"]
    [stop] = events(result, "stop")
    assert stop["early_stopped"] == sum(s["early_stopped"] for s in samples) and stop["traces"] <= 6
    assert ledger.usage().total.completion_tokens == sum(s["tokens"] for s in samples)


def test_length_normalized_self_consistency_uses_real_logprobs(small: LlamaCppGenerator) -> None:
    result, _ = solve(SelfConsistency(n=4, max_tokens=32, weighting="length_normalized", seed=3), small)
    [vote] = events(result, "vote")
    weights = vote["weights"]
    assert len(weights) == 4 and all(0 < w <= 1 for w in weights)
    assert len(set(weights)) > 1  # different samples, different probabilities
    assert result.answer is not None
    assert result.confidence is not None and 0 < result.confidence <= 1
