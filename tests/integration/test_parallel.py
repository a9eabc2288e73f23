"""Parallel-sampling strategies on the real engine (SmolLM2-135M): short runs that check the mechanics."""

from __future__ import annotations

from typing import Any

import pytest

from ttscale import Ledger, Problem, Result
from ttscale.backends.llamacpp import LlamaCppGenerator
from ttscale.strategies.adaptive_consistency import AdaptiveConsistency
from ttscale.strategies.deepconf import DeepConf
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


def test_deepconf_online_stops_traces_inside_the_engine(small: LlamaCppGenerator) -> None:
    # eta=1: the threshold is the 99th percentile of the warm-up's lowest group confidences, so a later
    # trace survives only if its weakest 8-token window beats nearly the best warm-up trace's weakest one
    # (about 1 in 3 for exchangeable traces); the others are cut mid-generation
    strategy = DeepConf(n=6, n_init=2, eta=1, window=8, batch_size=4, max_tokens=40, temperature=1.0, seed=5)
    result, ledger = solve(strategy, small)
    samples = events(result, "sample")
    stopped = [s for s in samples if s["finish_reason"] == "criterion"]
    assert stopped, [(s["phase"], s["finish_reason"], s["lowest_group"]) for s in samples]
    assert all(s["early_stopped"] and not s["voted"] and s["phase"] == "online" for s in stopped)
    assert all(8 <= s["tokens"] < 40 for s in stopped)  # a full window was seen, then generation ended
    [threshold] = events(result, "threshold")
    assert all(s["lowest_group"] < threshold["threshold"] for s in stopped)
    [stop] = events(result, "stop")
    assert stop["early_stopped"] == len(stopped) and stop["traces"] <= 6
    assert ledger.usage().total.completion_tokens == sum(s["tokens"] for s in samples)


def test_length_normalized_self_consistency_uses_real_logprobs(small: LlamaCppGenerator) -> None:
    result, _ = solve(SelfConsistency(n=4, max_tokens=32, weighting="length_normalized", seed=3), small)
    [vote] = events(result, "vote")
    weights = vote["weights"]
    assert len(weights) == 4 and all(0 < w <= 1 for w in weights)
    assert len(set(weights)) > 1  # different samples, different probabilities
    assert result.answer is not None
    assert result.confidence is not None and 0 < result.confidence <= 1
