"""DeepConf on the scripted backend: confidence formulas, offline filtering, online early stopping."""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from ttscale import Budget, CapabilityError, ConfigError, Ledger, Problem, Result, TokenLogprob
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.prompts import cot_prompt
from ttscale.strategies import STRATEGIES, build_strategy
from ttscale.strategies.deepconf import DeepConf
from ttscale.strategies.deepconf_confidence import (
    ConfidenceStop,
    group_confidences,
    token_confidence,
    trace_confidence,
)

PROBLEM = Problem("What is 3 + 4?")
P = {"sure": 0.99, "maybe": 0.6}  # probability of the sampled token; everything else 0.9


def logprob(tok: str, _index: int) -> float:
    return math.log(P.get(tok.strip(), 0.9))


def conf_of(p: float) -> float:
    """Token confidence of a scripted token with probability p (its top-2: p and 1 - p)."""
    return -(math.log(p) + math.log1p(-p)) / 2


SURE, MAYBE, OTHER = conf_of(0.99), conf_of(0.6), conf_of(0.9)


def scripted(responses: Sequence[str] | Callable[[Any, int], str], **options: Any) -> ScriptedGenerator:
    return ScriptedGenerator(responses, logprob_fn=logprob, **options)


def run(strategy: DeepConf, gen: ScriptedGenerator, budget: Budget | None = None) -> tuple[Result, Ledger]:
    ledger = Ledger(budget)
    return strategy.solve(PROBLEM, ledger.meter(gen)), ledger


def events(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def record(*probs: float) -> TokenLogprob:
    top = tuple((i, math.log(p)) for i, p in enumerate(probs))
    return TokenLogprob(0, top[0][1], top)


# -- confidence formulas --------------------------------------------------------------------------------


def test_token_confidence_is_minus_the_mean_top_k_logprob() -> None:
    r = record(0.5, 0.25, 0.125, 0.125)
    assert token_confidence(r, 4) == pytest.approx(
        -(math.log(0.5) + math.log(0.25) + 2 * math.log(0.125)) / 4
    )
    assert token_confidence(r, 2) == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)  # only the top k
    assert token_confidence(r, 20) == token_confidence(r, 4)  # fewer than k given: mean of what is there
    assert token_confidence(TokenLogprob(3, -0.1), 20) == 0.0  # no alternatives: least confident
    # a peaked distribution is more confident than a flat one
    assert token_confidence(record(0.97, 0.01, 0.01, 0.01), 4) > token_confidence(
        record(0.25, 0.25, 0.25, 0.25), 4
    )


def test_group_confidences_slide_a_window_or_take_the_whole_short_trace() -> None:
    assert group_confidences([1.0, 2.0, 3.0, 4.0, 5.0], 2) == pytest.approx([1.5, 2.5, 3.5, 4.5])
    assert group_confidences([1.0, 2.0, 3.0], 3) == pytest.approx([2.0])
    assert group_confidences([1.0, 2.0, 3.0], 10) == pytest.approx([2.0])  # shorter than the window
    assert group_confidences([], 4) == []


def test_trace_confidence_measures() -> None:
    confs = [5.0, 5.0, 1.0, 1.0, 5.0, 5.0]
    assert trace_confidence(confs, 2, "lowest_group") == pytest.approx(1.0)
    assert trace_confidence(confs, 2, "mean") == pytest.approx(22 / 6)
    assert trace_confidence(confs, 2, "tail") == pytest.approx(5.0)
    assert trace_confidence(confs, 2, "bottom_10") == pytest.approx(1.0)  # 5 groups: the lowest one
    many = [float(i) for i in range(21)]  # 20 windows of 2: the bottom 10% is the lowest two
    assert trace_confidence(many, 2, "bottom_10") == pytest.approx((0.5 + 1.5) / 2)
    assert trace_confidence([], 2, "lowest_group") == 0.0


def brute_force_stop(records: Sequence[TokenLogprob], threshold: float, window: int, k: int) -> bool:
    if len(records) < window:
        return False
    return sum(token_confidence(r, k) for r in records[-window:]) / window < threshold


def test_confidence_stop_matches_the_definition_on_interleaved_sequences() -> None:
    rng = random.Random(7)
    stop = ConfidenceStop(threshold=1.0, window=3, k=2)
    seqs: list[list[TokenLogprob]] = [[], [], []]
    for _ in range(60):
        seq = rng.choice(seqs)  # sequences of one call grow in any order
        p = rng.uniform(0.3, 0.999)
        seq.append(record(p, 1 - p))
        assert stop([0] * len(seq), seq) == brute_force_stop(seq, 1.0, 3, 2)
    fresh = list(seqs[0][:2])  # a new list: no stale cache
    assert stop([0, 0], fresh) is False


# -- offline --------------------------------------------------------------------------------------------


def offline_responses() -> list[str]:
    # 2 confident traces say 7, 8 hesitant ones say 8, 1 very confident one gives no answer
    return ["sure sure sure \\boxed{7}"] * 2 + ["maybe maybe maybe \\boxed{8}"] * 8 + ["sure sure sure sure"]


def test_offline_majority_follows_the_crowd_but_deepconf_low_follows_confidence() -> None:
    result, _ = run(DeepConf(mode="offline", n=11, eta=100, window=2), scripted(offline_responses()))
    assert result.answer == "8"  # eta=100 keeps everything: 8 hesitant traces outweigh 2 confident ones
    result, _ = run(DeepConf(mode="offline", n=11, eta=10, window=2), scripted(offline_responses()))
    [flt] = events(result, "filter")
    assert flt["eligible"] == 10 and flt["kept"] == [0]  # ceil(10% of 10) = 1; the answerless trace can't win
    assert result.answer == "7" and result.confidence == 1.0


@pytest.mark.parametrize(("eta", "kept"), [(10, 1), (20, 2), (25, 3), (90, 9), (91, 10), (100, 10)])
def test_offline_keeps_ceil_eta_percent_of_the_traces_with_answers(eta: float, kept: int) -> None:
    result, _ = run(DeepConf(mode="offline", n=11, eta=eta, window=2), scripted(offline_responses()))
    [flt] = events(result, "filter")
    assert len(flt["kept"]) == kept
    voted = [s["index"] for s in events(result, "sample") if s["voted"]]
    assert voted == flt["kept"]
    assert voted[: min(kept, 2)] == [0, 1][:kept]  # the confident ones first


def test_offline_weights_are_trace_confidences() -> None:
    result, _ = run(DeepConf(mode="offline", n=11, eta=100, window=2), scripted(offline_responses()))
    tally = events(result, "vote")[0]["tally"]
    # lowest window of 2: (sure, sure) never; (sure, \\boxed) is the lowest for a confident trace
    assert tally["7"] == pytest.approx(2 * (SURE + OTHER) / 2)
    assert tally["8"] == pytest.approx(8 * MAYBE)  # lowest window: (maybe, maybe)
    assert result.confidence == pytest.approx(tally["8"] / (tally["7"] + tally["8"]))


def test_offline_draws_n_traces_in_one_call_with_top_k_logprobs() -> None:
    gen = scripted(offline_responses())
    run(DeepConf(mode="offline", n=11, seed=5), gen)
    [(_, params)] = gen.calls
    assert (params.n, params.logprobs, params.seed, params.stopping_criteria) == (11, 20, 5, ())


# -- online ---------------------------------------------------------------------------------------------


def online_responder(prompt: Any, k: int) -> str:
    if k < 4:  # warm-up: confident, split between 7 and 8
        return "sure sure sure sure \\boxed{" + ("7" if k % 2 == 0 else "8") + "}"
    # later: an answer first, then hesitation; if these voted, 9 would win
    return "\\boxed{9} maybe maybe maybe maybe maybe maybe maybe"


def test_online_early_stop_happens_inside_generation_and_stopped_traces_do_not_vote() -> None:
    gen = scripted(online_responder)
    result, _ = run(DeepConf(n=12, n_init=4, window=4, batch_size=4), gen)
    samples = events(result, "sample")
    online = [s for s in samples if s["phase"] == "online"]
    assert len(online) == 8
    # the window is full after 4 tokens, and (boxed + 3 x maybe) is below the threshold: cut at once
    assert all(s["finish_reason"] == "criterion" and s["tokens"] == 4 for s in online)
    assert all(s["early_stopped"] and not s["voted"] and s["answer"] == "9" for s in online)
    assert "9" not in events(result, "vote")[0]["tally"]
    assert result.answer == "7"  # 7 and 8 tie on weight; the first seen wins
    [stop] = events(result, "stop")
    assert (stop["reason"], stop["traces"], stop["early_stopped"]) == ("max_traces", 12, 8)
    # warm-up without a criterion, then calls of batch_size carrying it
    assert [(p.n, len(p.stopping_criteria)) for _, p in gen.calls] == [(4, 0), (4, 1), (4, 1)]


def test_online_threshold_is_the_100_minus_eta_percentile_of_warmup_lowest_groups() -> None:
    def responder(prompt: Any, k: int) -> str:
        return ["sure \\boxed{7}", "maybe \\boxed{7}", "maybe maybe \\boxed{7}", "x \\boxed{8}"][k % 4]

    for eta, q in [(90, 10), (10, 90), (50, 50)]:
        result, _ = run(DeepConf(n=4, n_init=4, window=2, eta=eta), scripted(responder))
        warm = [s["lowest_group"] for s in events(result, "sample")]
        expected = [(SURE + OTHER) / 2, (MAYBE + OTHER) / 2, MAYBE, OTHER]
        assert warm == pytest.approx(expected)
        [thr] = events(result, "threshold")
        assert thr["percentile"] == q and thr["threshold"] == pytest.approx(float(np.percentile(expected, q)))
        assert all(s["voted"] for s in events(result, "sample"))  # every warm-up trace votes


def test_online_traces_below_the_threshold_do_not_vote_even_when_too_short_to_be_stopped() -> None:
    def responder(prompt: Any, k: int) -> str:
        if k < 4:
            return "sure sure sure sure \\boxed{" + ("7" if k % 2 == 0 else "8") + "}"
        return "maybe \\boxed{9}"  # 2 tokens: never a full window of 4, so the criterion never fires

    result, _ = run(DeepConf(n=8, n_init=4, window=4), scripted(responder))
    online = [s for s in events(result, "sample") if s["phase"] == "online"]
    assert len(online) == 4
    assert all(s["finish_reason"] == "eos" and not s["early_stopped"] for s in online)
    assert all(s["lowest_group"] < events(result, "threshold")[0]["threshold"] for s in online)
    assert not any(s["voted"] for s in online) and "9" not in events(result, "vote")[0]["tally"]
    assert result.answer == "7"


def test_online_stops_at_consensus_after_warmup() -> None:
    gen = scripted(["sure sure \\boxed{7}"])
    result, _ = run(DeepConf(n=16, n_init=4), gen)
    assert len(gen.calls) == 1  # nothing drawn after the warm-up
    [stop] = events(result, "stop")
    assert (stop["reason"], stop["traces"], stop["traces_saved"]) == ("consensus", 4, 12)
    assert events(result, "consensus")[-1] == {"traces": 4, "leader": "7", "share": 1.0, "reached": True}


def test_online_stops_when_the_weighted_share_reaches_consensus() -> None:
    def responder(prompt: Any, k: int) -> str:
        return "sure sure \\boxed{" + ("8" if k == 3 else "7") + "}"

    gen = scripted(responder)
    result, _ = run(DeepConf(n=16, n_init=4, batch_size=2, consensus=0.8), gen)
    shares = [(c["traces"], c["share"]) for c in events(result, "consensus")]
    assert shares == [(4, pytest.approx(0.75)), (6, pytest.approx(5 / 6))]
    assert events(result, "stop")[0]["reason"] == "consensus"
    assert result.answer == "7" and result.confidence == pytest.approx(5 / 6)


def test_online_respects_the_budget() -> None:
    gen = scripted(online_responder)
    p = gen.count_prompt_tokens([cot_prompt(PROBLEM.question, continue_prefix=True)])[0]
    budget = Budget(tokens=p + 4 * 16 + 10)
    result, ledger = run(DeepConf(n=16, n_init=4, window=4, max_tokens=16), gen, budget)
    assert ledger.usage().total.total_tokens <= budget.tokens  # type: ignore[operator]
    [stop] = events(result, "stop")
    assert stop["reason"] == "budget" and stop["traces"] < 16


# -- capabilities and configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_no_logprobs_is_a_capability_error_before_sampling(mode: str) -> None:
    gen = ScriptedGenerator(["\\boxed{1}"])  # no logprob_fn: the backend declares no logprobs
    with pytest.raises(CapabilityError, match="top-20 logprobs"):
        run(DeepConf(mode=mode), gen)  # type: ignore[arg-type]
    assert gen.calls == []


def test_online_needs_stopping_criteria_offline_does_not() -> None:
    gen = scripted(["sure \\boxed{1}"])
    gen._caps = dataclasses.replace(gen.capabilities, stopping_criteria=False)
    with pytest.raises(CapabilityError, match="stopping criteria"):
        run(DeepConf(mode="online"), gen)
    assert run(DeepConf(mode="offline", n=2), gen)[0].answer == "1"


def test_registered_with_documented_defaults() -> None:
    assert STRATEGIES.get("deepconf") is DeepConf
    d = DeepConf()
    assert (d.mode, d.n, d.eta, d.n_init, d.window, d.confidence_k) == ("online", 16, 90.0, 4, 64, 20)
    assert (d.consensus, d.measure, d.batch_size) == (0.95, "lowest_group", 4)
    built = build_strategy("deepconf", {"mode": "offline", "eta": "10", "measure": "tail"})
    assert isinstance(built, DeepConf) and (built.mode, built.eta, built.measure) == ("offline", 10.0, "tail")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"eta": "0"}, "eta must be in (0, 100]"),
        ({"eta": "100.5"}, "eta must be in (0, 100]"),
        ({"window": "0"}, "window must be an integer >= 1"),
        ({"n": "0"}, "n must be an integer >= 1"),
        ({"n_init": "0"}, "n_init must be an integer >= 1"),
        ({"n": "4", "n_init": "5"}, "n_init must be at most n=4 in online mode"),
        ({"consensus": "1.5"}, "consensus must be in [0, 1]"),
        ({"consensus": "-0.1"}, "consensus must be in [0, 1]"),
        ({"confidence_k": "0"}, "confidence_k must be an integer in [1, 100]"),
        ({"batch_size": "0"}, "batch_size must be an integer >= 1"),
        ({"top_p": "0"}, "top_p must be in (0, 1]"),
        ({"measure": "median"}, "expects 'lowest_group' | 'bottom_10' | 'tail' | 'mean'"),
    ],
)
def test_invalid_values_are_refused(params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build_strategy("deepconf", params)


def test_direct_construction_checks_literals_too() -> None:
    with pytest.raises(ConfigError, match="measure must be"):
        DeepConf(measure="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mode must be"):
        DeepConf(mode="batch")  # type: ignore[arg-type]


def test_offline_without_answers_ranks_all_traces_and_votes_on_final_lines() -> None:
    responses = ["Hmm.\nmaybe maybe maybe", "Hmm.\nmaybe maybe maybe", "Hmm.\nsure sure sure"]
    result, _ = run(DeepConf(mode="offline", n=3, eta=50, window=2), scripted(responses))
    [flt] = events(result, "filter")
    # ceil(50% of 3) = 2: the most confident, then the first of two equally confident ones
    assert flt["eligible"] == 3 and flt["kept"] == [0, 2]
    assert events(result, "vote")[0]["method"] == "final_line"
    assert result.answer == "sure sure sure"
