"""DeepConf's confidence measures (Fu et al. 2025, "Deep Think with Confidence", arXiv 2508.15260).

Token confidence is the negative mean logprob of the k most likely tokens at a position::

    C_i = -(1/k) sum_{j=1..k} log P_i(j)

A group confidence is the mean C_i over a sliding window of tokens; a trace is summarised by its lowest
group, the mean of its bottom 10% of groups, its tail (last ``window`` tokens) or its mean, as in the
paper and its reference code. The reference fixes the tail at 2,048 tokens, its group size too; here the
tail follows ``window``, so with a shorter window (this project's default is 64) the tail is shorter
than the paper's. :class:`ConfidenceStop` is the online early-stopping criterion.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..types import TokenLogprob

Measure = Literal["lowest_group", "bottom_10", "tail", "mean"]


def token_confidence(record: TokenLogprob, k: int) -> float:
    """``C_i = -(1/k) sum_j log P_i(j)`` over the record's top ``k`` alternatives (fewer if it has fewer).

    A record without alternatives scores 0, the least confidence possible (C_i is never negative).
    """
    top = record.top[:k]
    return -math.fsum(lp for _, lp in top) / len(top) if top else 0.0


def group_confidences(confs: Sequence[float], window: int) -> list[float]:
    """Mean confidence of every ``window``-token sliding window; one group (the mean) if shorter."""
    if not confs:
        return []
    if len(confs) < window:
        return [math.fsum(confs) / len(confs)]
    sums = [0.0, *itertools.accumulate(confs)]
    return [(sums[i + window] - sums[i]) / window for i in range(len(confs) - window + 1)]


def trace_confidence(confs: Sequence[float], window: int, measure: Measure) -> float:
    """One trace's confidence: its lowest group, the mean of its bottom 10% of groups (at least one, as
    in the reference code), the mean of its last ``window`` tokens (tail), or its mean. 0 if empty."""
    if not confs:
        return 0.0
    if measure in ("mean", "tail"):
        part = confs[-window:] if measure == "tail" else confs
        return math.fsum(part) / len(part)
    groups = group_confidences(confs, window)
    if measure == "lowest_group":
        return min(groups)
    bottom = sorted(groups)[: max(1, len(groups) // 10)]
    return math.fsum(bottom) / len(bottom)


@dataclass
class _Prefix:
    sums: list[float]  # sums[i] = C_0 + ... + C_{i-1}
    last: TokenLogprob | None  # the record behind sums[-1], to tell a reused list id apart


class ConfidenceStop:
    """Stopping criterion: stop once the last ``window`` tokens' mean confidence is below ``threshold``.

    The engine calls it after every token with the growing logprob list of a sequence. Only full windows
    are checked, as in the reference vLLM patch: the first tokens of a trace are too few to judge it.
    Prefix sums of token confidences are cached per list, so a check costs O(1) amortised instead of
    O(window * k) (k = 20 and a 2048-token window would cost more than the decode step); the answer is
    still a function of the arguments alone. One instance serves the samples of one call.
    """

    def __init__(self, threshold: float, window: int, k: int) -> None:
        self.threshold, self.window, self.k = threshold, window, k
        self._prefix: dict[int, _Prefix] = {}

    def __call__(self, generated: Sequence[int], logprobs: Sequence[TokenLogprob]) -> bool:
        n = len(logprobs)
        if n < self.window:
            return False
        sums = self._sums(logprobs)
        return (sums[n] - sums[n - self.window]) / self.window < self.threshold

    def _sums(self, logprobs: Sequence[TokenLogprob]) -> list[float]:
        p = self._prefix.get(id(logprobs))
        done = len(p.sums) - 1 if p is not None else 0
        if p is None or done > len(logprobs) or (done and logprobs[done - 1] is not p.last):
            p = self._prefix[id(logprobs)] = _Prefix([0.0], None)  # new list (or a reused id)
            done = 0
        for record in logprobs[done:]:
            p.sums.append(p.sums[-1] + token_confidence(record, self.k))
        p.last = logprobs[-1]
        return p.sums
