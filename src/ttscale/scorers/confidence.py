"""DeepConf trace confidence: how peaked the policy's next-token distributions were along a response.

Fu, Wang, Tian and Zhao 2025, "Deep Think with Confidence" (arXiv 2508.15260). The token confidence at
position i is the negative mean of the top-k log-probabilities (k = 20)::

    C_i = -(1/k) sum_{j=1..k} log P_i(j)

A peaked distribution (one likely token, the rest near zero) has a large C_i; a flat one a small C_i.

Trace score: the *lowest group confidence*. Group confidence is the mean of C_i over a sliding window of
``window`` consecutive tokens, and a trace scores the lowest of its groups. DeepConf reports this local
measure separating correct from incorrect traces better than the whole-trace mean, because one stretch
of confusion (where a reasoning error usually starts) is diluted in a mean over hundreds of confident
tokens. The paper's windows are 2,048 tokens for traces of many thousands; ours are capped by
``max_tokens`` (512 by default), so the default window is 64 tokens, about the same share of a trace.
A trace shorter than the window is one group (its mean confidence). ``aggregate="mean"`` gives the
paper's average trace confidence instead. The formulas live in :mod:`ttscale.strategies.deepconf_confidence`,
shared with the ``deepconf`` strategy.

Positions with fewer than k alternatives (a backend that returns fewer) average over what is there; a
response with no token records scores 0, the least confidence possible (C_i is never negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..backends.base import Generator, require
from ..strategies.base import check
from ..strategies.deepconf_confidence import token_confidence, trace_confidence
from ..types import Problem, TokenLogprob
from .base import Sample, ScorerSpec, token_records


@dataclass(frozen=True)
class Confidence:
    """Scores a sample by its DeepConf confidence (lowest group confidence by default)."""

    top_logprobs: int = field(default=20, metadata={"help": "k: top logprobs averaged per token."})
    window: int = field(default=64, metadata={"help": "Tokens per sliding group (lowest_group only)."})
    aggregate: Literal["lowest_group", "mean"] = field(
        default="lowest_group",
        metadata={"help": "lowest_group: the least confident window; mean: average token confidence."},
    )

    def __post_init__(self) -> None:
        check(1 <= self.top_logprobs <= 100, "top_logprobs", "between 1 and 100", self.top_logprobs)
        check(self.window >= 1, "window", "an integer >= 1", self.window)
        check(self.aggregate in ("lowest_group", "mean"), "aggregate", "lowest_group or mean", self.aggregate)

    @property
    def policy_logprobs(self) -> int:
        return self.top_logprobs

    def cost(self, problem: Problem, sample_tokens: Sequence[int]) -> tuple[int, float]:
        return 0, 0.0  # reads logprobs the samples already carry

    def trace_confidence(self, records: Sequence[TokenLogprob]) -> float:
        """The trace score of one response's token records."""
        conf = [token_confidence(r, self.top_logprobs) for r in records]
        return trace_confidence(conf, self.window, self.aggregate)  # the same measure DeepConf uses

    def score(self, problem: Problem, samples: Sequence[Sample]) -> list[float]:
        return [self.trace_confidence(token_records(s, "the confidence scorer")) for s in samples]


def _build(policy: Generator, judge: Generator | None) -> Confidence:
    require(policy, who="the confidence scorer", logprobs=20)
    return Confidence()


SPEC = ScorerSpec(
    _build, summary="DeepConf lowest group confidence of the policy's own tokens (Fu et al. 2025)"
)
"""The registry entry of ``confidence``."""
