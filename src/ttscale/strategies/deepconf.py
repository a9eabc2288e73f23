"""DeepConf: vote over reasoning traces weighted by the model's own confidence, dropping unsure ones.

Fu et al. 2025, "Deep Think with Confidence" (arXiv 2508.15260). The confidence of token i is the negative
mean logprob of the k most likely tokens at that position (k = 20)::

    C_i = -(1/k) sum_{j=1..k} log P_i(j)

(a peaked distribution gives a high C_i). A *group* confidence is the mean C_i over a sliding window of
``window`` tokens; a trace's *lowest group confidence* is the minimum over its windows, so one stretch of
confusion marks the whole trace. See :func:`trace_confidence` for the other measures (bottom 10% of
groups, tail, mean).

Offline (``mode="offline"``): sample ``n`` traces, keep the ``eta`` percent most confident, and take a
confidence-weighted vote ``V(a) = sum_t C_t [a_t ~ a]`` over the kept ones. ``eta=90`` is the paper's
DeepConf-high (conservative), ``eta=10`` DeepConf-low (aggressive). Only traces with an extractable
answer compete for the kept places (as in the reference code); the number kept is ``ceil(eta% * m)`` of
the m competing, rounded *up* so at least ``eta`` percent (and one trace) always vote.

Online (``mode="online"``): sample ``n_init`` warm-up traces in full and set the threshold
``s = percentile_{100 - eta}`` of their lowest group confidences (numpy's linear interpolation, as in the
reference code). Later traces carry a stopping criterion that ends a trace inside the engine as soon as
its last ``window`` tokens' mean confidence falls below ``s`` (finish reason ``criterion``); only full
windows are checked, as in the reference vLLM patch. A later trace votes when it was not stopped and its
lowest group confidence is at least ``s`` (this also drops a trace too short to fill one window, as the
reference code does). Every warm-up trace votes: the reference script drops those below ``s``, but with a
few warm-up traces and an aggressive ``eta`` that leaves one voter, whose share is 1, and every run would
end at the warm-up. Traces are drawn ``batch_size`` at a time until the leader's share of the weighted
vote, ``beta = V(a*) / sum_a V(a)``, reaches ``consensus`` (the paper's tau = 0.95; checked after the
warm-up too), or ``n`` traces were drawn.

Defaults and how they differ from the paper: the paper runs hundreds of traces (budget 512), warms up on
16 and uses 2048-token windows over traces of tens of thousands of tokens. Here traces are at most
``max_tokens`` (512) long and the benchmark allows 16 traces, so ``n=16``, ``n_init=4`` (a quarter of the
budget, leaving room for the early stop to save anything) and ``window=64`` (a window must be well under
the trace length for the stop to act at all, and long enough that one uncertain token, a number or a
name, does not end a trace). A trace shorter than the window is one group: its mean confidence. The vote
weight is the lowest group confidence by default (``measure``), the quantity the online threshold is
defined on; the paper also reports bottom-10% and tail confidence as strong offline measures.
``batch_size=4`` decodes four online traces together (a batched engine decodes them in little more time
than one); consensus is checked between batches, so it may overshoot by up to ``batch_size - 1`` traces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from ..answers import extract_answer
from ..backends.base import require
from ..prompts import cot_prompt
from ..types import Completion, Result, SamplingParams, StoppingCriterion, TraceEvent
from .base import check, check_sampling, path_params, sample_event
from .deepconf_confidence import ConfidenceStop, Measure, token_confidence, trace_confidence
from .voting import Vote, answer_numbers, budget_stop_event, draw, vote

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem, Prompt

__all__ = ["ConfidenceStop", "DeepConf", "token_confidence", "trace_confidence"]

Mode = Literal["offline", "online"]
Outcome = tuple[list["_Trace"], list[int], list[TraceEvent]]  # traces, indices of the voters, events


@dataclass(frozen=True)
class _Trace:
    completion: Completion
    text: str
    answer: str | None
    method: str
    confidence: float  # by ``measure``: the vote weight and the offline ranking key
    lowest: float  # lowest group confidence: what the online threshold is compared with
    phase: str

    @property
    def stopped(self) -> bool:
        return self.completion.finish_reason == "criterion"


@dataclass(frozen=True)
class DeepConf:
    """Confidence-filtered, confidence-weighted voting over sampled traces; online early stopping."""

    name: ClassVar[str] = "deepconf"

    mode: Mode = field(
        default="online", metadata={"help": "'offline' (filter after) or 'online' (stop early)."}
    )
    n: int = field(default=16, metadata={"help": "Most traces in all, warm-up included (paper: 512)."})
    eta: float = field(
        default=90.0, metadata={"help": "Percent of traces kept: 90 = DeepConf-high, 10 = DeepConf-low."}
    )
    n_init: int = field(
        default=4, metadata={"help": "Online warm-up traces that set the threshold (paper: 16)."}
    )
    window: int = field(default=64, metadata={"help": "Tokens per confidence group (paper: 2048)."})
    confidence_k: int = field(
        default=20, metadata={"help": "Top-k logprobs per token confidence (paper: 20)."}
    )
    measure: Measure = field(
        default="lowest_group",
        metadata={"help": "Trace confidence used as vote weight: lowest_group, bottom_10, tail or mean."},
    )
    consensus: float = field(
        default=0.95, metadata={"help": "Online: stop once the leader's vote share reaches it."}
    )
    batch_size: int = field(default=4, metadata={"help": "Online traces decoded together after the warm-up."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of each trace."})
    top_k: int = field(default=40, metadata={"help": "Keep the k most likely tokens before top-p."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, applied after top-k."})
    max_tokens: int = field(default=512, metadata={"help": "Most tokens per trace."})
    seed: int | None = field(default=None, metadata={"help": "Base seed; trace i uses seed + i."})

    def __post_init__(self) -> None:
        check(self.mode in ("offline", "online"), "mode", "'offline' or 'online'", self.mode)
        check(self.n >= 1, "n", "an integer >= 1", self.n)
        check(0 < self.eta <= 100, "eta", "in (0, 100]", self.eta)
        check(self.n_init >= 1, "n_init", "an integer >= 1", self.n_init)
        online_ok = self.mode == "offline" or self.n_init <= self.n
        check(online_ok, "n_init", f"at most n={self.n} in online mode", self.n_init)
        check(self.window >= 1, "window", "an integer >= 1", self.window)
        check(1 <= self.confidence_k <= 100, "confidence_k", "an integer in [1, 100]", self.confidence_k)
        measures = ("lowest_group", "bottom_10", "tail", "mean")
        check(self.measure in measures, "measure", " or ".join(measures), self.measure)
        check(0 <= self.consensus <= 1, "consensus", "in [0, 1]", self.consensus)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check_sampling(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, max_tokens=self.max_tokens
        )
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        online = self.mode == "online"
        require(
            generator, who=f"deepconf ({self.mode})", logprobs=self.confidence_k, stopping_criteria=online
        )
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)
        run = _Run(self, prompt, problem, generator)
        traces, voters, events = self._online(run) if online else self._offline(run)
        return self._result(run, traces, voters, events)

    def _offline(self, run: _Run) -> Outcome:
        traces = run.draw(self.n, [], None, "offline")
        # only traces with an answer compete for the kept places (reference code); ceil keeps >= eta%
        eligible = [i for i, t in enumerate(traces) if t.answer is not None] or list(range(len(traces)))
        keep = max(1, math.ceil(Fraction(self.eta) * len(eligible) / 100))
        kept = sorted(sorted(eligible, key=lambda i: (-traces[i].confidence, i))[:keep])
        data = {"eta": self.eta, "measure": self.measure, "eligible": len(eligible), "kept": kept}
        events = [TraceEvent("filter", data)]
        if len(traces) < self.n:
            events.append(budget_stop_event(len(traces), self.n))
        return traces, kept, events

    def _online(self, run: _Run) -> Outcome:
        traces = run.draw(self.n_init, [], None, "warmup")
        lowest = [t.lowest for t in traces]
        s = float(np.percentile(lowest, 100 - self.eta))
        data = {"threshold": s, "percentile": 100 - self.eta, "warmup": len(traces), "lowest_group": lowest}
        events = [TraceEvent("threshold", data)]
        criterion = ConfidenceStop(s, self.window, self.confidence_k)
        while True:
            voters = [
                i for i, t in enumerate(traces) if t.phase == "warmup" or (not t.stopped and t.lowest >= s)
            ]
            events.append(self._consensus_event(run.vote(traces, voters), len(traces)))
            if events[-1].data["reached"]:
                reason = "consensus"
                break
            if len(traces) >= self.n:
                reason = "max_traces"
                break
            more = run.draw(min(len(traces) + self.batch_size, self.n), traces, criterion, "online")
            if len(more) == len(traces):
                reason = "budget"
                break
            traces = more
        return traces, voters, [*events, self._stop_event(reason, traces, s)]

    def params(self, k: int, first_index: int, criterion: StoppingCriterion | None = None) -> SamplingParams:
        """Sampling parameters of a call for ``k`` traces, the first being trace ``first_index``."""
        stops = (criterion,) if criterion is not None else ()
        return path_params(self, k, first_index, logprobs=self.confidence_k, stopping_criteria=stops)

    def _consensus_event(self, result: Vote, traces: int) -> TraceEvent:
        share = vote_share(result)
        leader = result.best.answer if result.best else None
        data = {"traces": traces, "leader": leader, "share": share, "reached": share >= self.consensus}
        return TraceEvent("consensus", data)

    def _stop_event(self, reason: str, traces: Sequence[_Trace], threshold: float) -> TraceEvent:
        data = {
            "reason": reason,
            "traces": len(traces),
            "early_stopped": sum(t.stopped for t in traces),
            "traces_saved": self.n - len(traces),
            "max_traces": self.n,
            "threshold": threshold,
        }
        return TraceEvent("stop", data)

    def _result(self, run: _Run, traces: list[_Trace], voters: list[int], events: list[TraceEvent]) -> Result:
        result = run.vote(traces, voters)
        weights = [t.confidence for t in traces]
        samples = [_sample_event(i, t, i in voters) for i, t in enumerate(traces)]
        tally = result.event(mode=self.mode, measure=self.measure, weights=weights, voters=voters)
        best = result.best
        return Result(
            answer=best.answer if best else None,
            response=traces[best.samples[0]].text if best else traces[0].text,
            strategy=self.name,
            model=run.generator.model.name,
            candidates=result.candidates,
            confidence=vote_share(result) if best else None,
            trace=(*samples, *events, tally),
        )


@dataclass(frozen=True)
class _Run:
    """One solve's fixed inputs, so the steps need not pass them around."""

    strategy: DeepConf
    prompt: Prompt
    problem: Problem
    generator: Meter

    def draw(
        self, total: int, have: list[_Trace], criterion: StoppingCriterion | None, phase: str
    ) -> list[_Trace]:
        """``have`` plus new traces up to ``total`` in all (fewer if the budget runs out)."""

        def params_for(k: int, first: int) -> SamplingParams:
            return self.strategy.params(k, first, criterion)

        new = draw(self.generator, self.prompt, params_for, total, [t.completion for t in have])
        return have + [self.trace(c, phase) for c in new]

    def trace(self, c: Completion, phase: str) -> _Trace:
        text = self.prompt.assistant_prefix + c.text
        e = extract_answer(text, self.problem.answer_kind)
        s = self.strategy
        confs = [token_confidence(r, s.confidence_k) for r in c.logprobs or ()]
        lowest = trace_confidence(confs, s.window, "lowest_group")
        return _Trace(c, text, e.value, e.method, trace_confidence(confs, s.window, s.measure), lowest, phase)

    def vote(self, traces: Sequence[_Trace], voters: Sequence[int]) -> Vote:
        return vote(
            [t.completion.text for t in traces],
            [t.answer for t in traces],
            self.problem.answer_kind,
            weights=[t.confidence for t in traces],
            numbers=answer_numbers(self.problem),
            voters=voters,
        )


def vote_share(result: Vote) -> float:
    """The leader's share of the weighted vote, beta = V(a*) / sum_a V(a); 0 with no votes."""
    total = math.fsum(c.votes for c in result.candidates)
    return result.candidates[0].votes / total if result.candidates and total > 0 else 0.0


def _sample_event(i: int, t: _Trace, voter: bool) -> TraceEvent:
    base = sample_event(i, t.text, t.completion, t.answer, t.method, voter and t.answer is not None)
    extra = {
        "phase": t.phase,
        "confidence": t.confidence,
        "lowest_group": t.lowest,
        "early_stopped": t.stopped,
    }
    return TraceEvent("sample", {**base.data, **extra})
