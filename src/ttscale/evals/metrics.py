"""Evaluation metrics: pure functions over graded problems and their samples.

- **Accuracy with a Wilson score interval** (Wilson 1927). For ``x`` correct of ``n`` (``p = x/n``) and
  ``z = 1.96``::

      centre = (p + z²/2n) / (1 + z²/n),    half = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)

  Unlike the normal interval it stays inside [0, 1] and does not collapse to a point at p = 0 or 1, which
  matters for the small slices a 2-core machine can afford.
- **pass@k, unbiased** (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", arXiv
  2107.03374, eq. 1). With ``n`` samples of which ``c`` are correct::

      pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)

  The product form (the paper's numpy snippet) never builds the huge binomials.
- **maj@k / weighted@k**: the vote of a problem's first ``k`` samples over their equivalence classes, with
  weight 1 each (maj) or the strategy's own weights (weighted); ties go to the class seen first, as in
  :func:`ttscale.answers.group_answers`. Subsampling the *first* k replays what the strategy would have
  answered with ``n=k`` under the same seeds.
- **Percentiles** interpolate linearly between order statistics (numpy's default method).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..answers import equivalent
from ..types import ModelUsage, vars_of
from .records import ProblemRecord, SampleRecord

Z95 = 1.959963984540054
"""The standard normal quantile of 0.975."""


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) when ``n == 0``."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct among ``n >= k`` samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def vote_correct(samples: Sequence[SampleRecord], k: int, *, weighted: bool) -> bool:
    """Whether the vote of the first ``k`` samples picks a correct answer (no answer: wrong).

    Unweighted (maj@k), every sample with an answer votes; weighted, only those that voted in the
    strategy's own weighted vote (an unscored best-of-N sample has no weight to give)."""
    tally: dict[int, float] = {}
    first: dict[int, SampleRecord] = {}
    for s in samples[:k]:
        if s.group is None or (weighted and not s.voted):
            continue  # no extractable answer (or no weight): abstains, as in the strategies' own votes
        tally[s.group] = tally.get(s.group, 0.0) + (s.vote_weight if weighted else 1.0)
        first.setdefault(s.group, s)
    if not tally:
        return False
    best = max(tally, key=tally.__getitem__)  # max keeps the first of equals: the class seen first
    return first[best].correct


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def sample_ks(problems: Sequence[ProblemRecord]) -> list[int]:
    """The k reported for @k metrics: powers of two below, and, the fewest samples any problem has.

    Problems with no samples at all (failed solves) are left out of the minimum; they count as wrong.
    """
    counts = [len(p.samples) for p in problems if p.samples]
    if not counts:
        return []
    most = min(counts)
    return sorted({2**i for i in range(most.bit_length()) if 2**i < most} | {most})


@dataclass(frozen=True)
class RunMetrics:
    """The numbers of one run (or of the problems recorded so far)."""

    n_problems: int
    """Problems graded."""
    n_correct: int
    """Of those, correct."""
    n_errors: int
    """Problems whose solve failed (counted as wrong)."""
    accuracy: float
    """n_correct / n_problems (0 without problems)."""
    accuracy_ci: tuple[float, float]
    """95% Wilson interval of the accuracy."""
    usage: ModelUsage
    """Total spending over all problems and models."""
    latency_p50: float
    """Median per-problem latency in seconds."""
    latency_p95: float
    """95th percentile per-problem latency in seconds."""
    pass_at_k: Mapping[int, float] = field(default_factory=dict)
    """Mean unbiased pass@k for each reported k."""
    maj_at_k: Mapping[int, float] = field(default_factory=dict)
    """Accuracy of the unweighted vote of the first k samples."""
    weighted_at_k: Mapping[int, float] = field(default_factory=dict)
    """Accuracy of the weighted vote of the first k samples."""

    def per_problem(self, total: float) -> float:
        return total / self.n_problems if self.n_problems else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with per-problem means of tokens and FLOPs."""
        u = self.usage
        return {
            "n_problems": self.n_problems,
            "n_correct": self.n_correct,
            "n_errors": self.n_errors,
            "accuracy": self.accuracy,
            "accuracy_ci95": list(self.accuracy_ci),
            "usage": {**vars_of(u), "total_tokens": u.total_tokens},
            "tokens_per_problem": self.per_problem(u.total_tokens),
            "completion_tokens_per_problem": self.per_problem(u.completion_tokens),
            "flops_per_problem": self.per_problem(u.flops),
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "maj_at_k": {str(k): v for k, v in self.maj_at_k.items()},
            "weighted_at_k": {str(k): v for k, v in self.weighted_at_k.items()},
        }


def summarize(problems: Sequence[ProblemRecord]) -> RunMetrics:
    """All metrics of a set of graded problems."""
    n = len(problems)
    correct = sum(p.correct for p in problems)
    usage = sum((p.usage for p in problems), ModelUsage())
    latencies = [p.latency_seconds for p in problems]
    ks = sample_ks(problems)

    def mean(values: Sequence[float]) -> float:
        return math.fsum(values) / len(values) if values else 0.0

    def passes(p: ProblemRecord, k: int) -> float:
        return pass_at_k(len(p.samples), sum(s.correct for s in p.samples), k) if p.samples else 0.0

    return RunMetrics(
        n_problems=n,
        n_correct=correct,
        n_errors=sum(p.error is not None for p in problems),
        accuracy=correct / n if n else 0.0,
        accuracy_ci=wilson_interval(correct, n),
        usage=usage,
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        pass_at_k={k: mean([passes(p, k) for p in problems]) for k in ks},
        maj_at_k={k: mean([vote_correct(p.samples, k, weighted=False) for p in problems]) for k in ks},
        weighted_at_k={k: mean([vote_correct(p.samples, k, weighted=True) for p in problems]) for k in ks},
    )


@dataclass(frozen=True)
class Comparison:
    """How two runs differ on the problems both recorded (matched by problem id)."""

    common: int
    """Problems in both runs."""
    disagreements: int
    """Of those, problems whose final answers are not equivalent."""
    fixed: tuple[str, ...]
    """Problem ids wrong in the first run and correct in the second."""
    broken: tuple[str, ...]
    """Problem ids correct in the first run and wrong in the second."""
    only_a: int
    """Problems only the first run has."""
    only_b: int
    """Problems only the second run has."""


def compare(a: Sequence[ProblemRecord], b: Sequence[ProblemRecord]) -> Comparison:
    """Per-problem differences between two runs."""
    by_id = {p.problem_id: p for p in b}
    pairs = [(p, by_id[p.problem_id]) for p in a if p.problem_id in by_id]
    return Comparison(
        common=len(pairs),
        disagreements=sum(not _same_answer(x, y) for x, y in pairs),
        fixed=tuple(x.problem_id for x, y in pairs if not x.correct and y.correct),
        broken=tuple(x.problem_id for x, y in pairs if x.correct and not y.correct),
        only_a=len(a) - len(pairs),
        only_b=len(b) - len(pairs),
    )


def _same_answer(x: ProblemRecord, y: ProblemRecord) -> bool:
    if x.answer is None or y.answer is None:
        return x.answer is None and y.answer is None
    return x.answer == y.answer or equivalent(x.answer, y.answer, x.kind)
