"""Self-certainty: how far the policy's next-token distributions are from uniform, averaged over a response.

Kang, Zhao and Song 2025, "Scalable Best-of-N Selection for Large Language Models via Self-Certainty"
(arXiv 2502.18581). For a response of n tokens over a vocabulary of V tokens, with p_i the model's
distribution at position i::

    SC = (1/n) sum_i KL(U || p_i),    KL(U || p_i) = -log V - (1/V) sum_j log p_i(j)

A confident model puts its mass on few tokens, so most log p_i(j) are very negative and KL(U || p_i) is
large; higher is more certain. It needs no extra model and no extra call, only the logprobs of the samples.

Approximation from the top-k. A backend returns the k largest logprobs l_1..l_k (k = 20 here), not all V.
We treat the V - k tokens outside the list as sharing the leftover mass R = 1 - sum_j exp(l_j) equally,
each with probability R / (V - k). Then sum_j log p_i(j) = sum_{j<=k} l_j + (V - k) log(R / (V - k)), so::

    KL(U || p_i)  ~=  -log V - (1/V) [ sum_{j<=k} l_j + (V - k) (log R - log(V - k)) ]

This is exact when the tail really is flat, and otherwise a lower bound: log is concave, so for a fixed
tail mass R the sum of the tail's log-probabilities is largest when R is spread evenly (Jensen), which
makes the approximate KL the smallest KL consistent with the top-k. Real tails are far from flat (many
tokens near probability 0), so the absolute value understates the paper's; best-of-N only compares
samples of one model on one prompt, where the top-k carries the part of the distribution that moves.
R is computed as -expm1(logsumexp(l)) to keep its precision when the top-k holds nearly all the mass,
and floored at ``TAIL_FLOOR`` so a top-k that holds all of it (rounding) gives a large finite value.
Logprobs are the backend's log-softmax of the raw logits (before temperature), the model's distribution.

A response with no token records scores 0, the least certainty possible (KL is never negative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends.base import Generator, require
from ..errors import CapabilityError
from ..strategies.base import check
from ..types import Problem, TokenLogprob
from .base import Sample, ScorerSpec, token_records

TAIL_FLOOR = 1e-12
"""Smallest tail mass R used in the approximation (R can round to 0 when the top-k holds everything)."""


def kl_from_uniform(logprobs: Sequence[float]) -> float:
    """Exact KL(U || p) for a full distribution given as V log-probabilities."""
    v = len(logprobs)
    return -math.log(v) - math.fsum(logprobs) / v


def kl_from_uniform_topk(top: Sequence[float], vocab_size: int) -> float:
    """KL(U || p) from the top-k logprobs; the other V - k tokens share the leftover mass equally."""
    k = len(top)
    v = vocab_size
    known = math.fsum(top)
    if k >= v:
        return -math.log(v) - known / v
    if k == 0:
        return 0.0  # nothing known: the flat tail is the uniform distribution itself
    m = max(top)
    log_mass = m + math.log(math.fsum(math.exp(lp - m) for lp in top))
    tail = max(-math.expm1(min(log_mass, 0.0)), TAIL_FLOOR)
    return -math.log(v) - (known + (v - k) * (math.log(tail) - math.log(v - k))) / v


@dataclass(frozen=True)
class SelfCertainty:
    """Scores a sample by its mean KL(U || p_i) over generated tokens, from the top-k logprobs."""

    vocab_size: int = field(metadata={"help": "V, the policy model's vocabulary size."})
    top_logprobs: int = field(default=20, metadata={"help": "k: logprobs per token the samples carry."})

    def __post_init__(self) -> None:
        check(
            self.vocab_size >= 2, "vocab_size", "an integer >= 2 (the policy's vocabulary)", self.vocab_size
        )
        check(1 <= self.top_logprobs <= 100, "top_logprobs", "between 1 and 100", self.top_logprobs)

    @property
    def policy_logprobs(self) -> int:
        return self.top_logprobs

    def cost(self, problem: Problem, sample_tokens: Sequence[int]) -> tuple[int, float]:
        return 0, 0.0  # reads logprobs the samples already carry

    def certainty(self, records: Sequence[TokenLogprob]) -> float:
        """Mean over token positions of the approximate KL(U || p_i); 0 for no records."""
        if not records:
            return 0.0
        kls = [
            kl_from_uniform_topk([lp for _, lp in r.top[: self.top_logprobs]], self.vocab_size)
            for r in records
        ]
        return math.fsum(kls) / len(kls)

    def score(self, problem: Problem, samples: Sequence[Sample]) -> list[float]:
        return [self.certainty(token_records(s, "the self_certainty scorer")) for s in samples]


def _build(policy: Generator, judge: Generator | None) -> SelfCertainty:
    require(policy, who="the self_certainty scorer", logprobs=20)
    if policy.model.vocab_size < 2:
        raise CapabilityError(
            f"the self_certainty scorer needs the vocabulary size of {policy.model.name!r}, "
            "which its backend does not report"
        )
    return SelfCertainty(policy.model.vocab_size)


SPEC = ScorerSpec(_build, summary="mean KL(uniform || p) of the policy's own tokens (Kang et al. 2025)")
"""The registry entry of ``self_certainty``."""
