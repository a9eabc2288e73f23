"""Scaling analysis over stored runs: accuracy against compute, difficulty bins, FLOPs-matched comparisons.

Subsampling. A sampling strategy's smaller budgets need no new runs: the first k samples of an n-sample
run are the samples a k-sample run with the same seed draws (sample i uses seed + i), so accuracy at k is
the strategy's own selection rule over those k (Hugging Face search-and-learn derives its curves the same
way). Rules (:data:`SUBSAMPLE_RULES`): ``self_consistency`` votes by majority (or by its weights with
``weighting=length_normalized``); ``best_of_n`` takes the best-scored sample (``selection=naive``), the
score-weighted vote (``selection=weighted``) or the Borda vote over the first k's ranks
(``selection=borda``). Under a per-problem budget, a problem whose budget ran out before k samples takes
part at k with the samples it drew, as a k-sample run with that budget would (:func:`derivable_k`, which
also says where that is approximate).
Adaptive and search strategies change what they do with the budget, so their curves come from one run
per budget.

Cost at k. A problem's policy tokens at k are its computed prompt tokens (shared by every sample) plus
the first k samples' tokens; its policy FLOPs at k are its policy FLOPs times (tokens at k / tokens at n).
That attribution is exact for the 2·N·T term and approximates the attention term (which grows with
position), a few percent of a small model's FLOPs at these lengths. A verifier reads each sample on its
own, so its cost is not shared: best-of-N records what its scoring spent (the vote's ``scoring``), which is
taken out of the policy's share and split evenly over the scored samples, each of the first k paying its
part (samples are exchangeable, so that is the expected cost of scoring k; a judge prompt's head, computed
once and then read from cache, is split too). Runs recorded before best-of-N kept that figure are costed as
if all their prompt tokens were shared.

Difficulty (Snell et al. 2024, arXiv 2408.03314, section 3): problems are put into ``n_bins`` equal-size
bins, bin 1 the easiest. *Oracle* bins rank problems by the model's own pass@1 (the fraction of its samples
that are correct; needs the key, so only for analysis). *Predicted* bins rank them by the agreement of the
first ``probe`` samples (the share of the most common answer, a sample without an answer counting alone),
which needs no key, so a compute-optimal policy could use it. Ties are broken by problem id, so bins are
deterministic.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, UnknownNameError
from ..strategies.voting import borda_votes
from ..types import ModelUsage
from .metrics import vote_correct, wilson_interval
from .records import ProblemRecord, SampleRecord

Rule = Callable[[Sequence[SampleRecord], int], bool]


def _best_scored(samples: Sequence[SampleRecord], k: int) -> bool:
    """best_of_n's naive rule: the best-scored of the first k samples that voted (an answer, a score)."""
    first = [s for s in samples[:k] if s.voted]
    if not first:
        return False
    best = max(range(len(first)), key=lambda i: (first[i].vote_weight, -i))  # earliest on ties
    return first[best].correct


def subsample_rule(strategy: str, params: Mapping[str, Any]) -> Rule | None:
    """How a run of ``strategy`` selects among its first k samples, or None if it cannot be subsampled."""
    if strategy == "self_consistency":
        weighted = str(params.get("weighting", "majority")) == "length_normalized"
        return lambda samples, k: vote_correct(samples, k, weighted=weighted)
    if strategy == "best_of_n":
        selection = str(params.get("selection", "weighted"))
        if selection == "naive":
            return _best_scored
        if selection == "borda":
            power = float(params.get("borda_power", 0.5))
            return lambda samples, k: _borda_correct(samples, k, power)
        return lambda samples, k: vote_correct(samples, k, weighted=True)
    return None


def _borda_correct(samples: Sequence[SampleRecord], k: int, power: float) -> bool:
    """best_of_n's Borda rule on the first k samples: ranks among those scored, votes among those that
    voted (the ranks depend on k, so the weights are computed afresh for each k)."""
    scored = [s for s in samples[:k] if s.score is not None]
    votes = borda_votes([s.score for s in scored if s.score is not None], power)
    tally: dict[int, float] = {}
    first: dict[int, SampleRecord] = {}
    for s, v in zip(scored, votes, strict=True):
        if s.voted and s.group is not None:
            tally[s.group] = tally.get(s.group, 0.0) + v
            first.setdefault(s.group, s)
    if not tally:
        return False
    return first[max(tally, key=tally.__getitem__)].correct  # max keeps the first of equals


SUBSAMPLE_RULES = ("self_consistency", "best_of_n")
"""Strategies whose smaller budgets are derived from their largest run."""


@dataclass(frozen=True)
class CurvePoint:
    """One point of an accuracy-against-compute curve."""

    label: str
    """What produced it, e.g. ``self_consistency n=4``."""
    budget: int
    """The budget knob's value (samples, iterations, thinking tokens, ...)."""
    n_problems: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    """95% Wilson interval."""
    tokens_per_problem: float
    """Computed prompt tokens plus generated tokens, all models."""
    flops_per_problem: float
    correct: Mapping[str, bool]
    """Problem id to whether it was solved at this point (for difficulty bins and paired comparisons)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "budget": self.budget,
            "n_problems": self.n_problems,
            "accuracy": self.accuracy,
            "accuracy_ci95": list(self.accuracy_ci),
            "tokens_per_problem": self.tokens_per_problem,
            "flops_per_problem": self.flops_per_problem,
        }


def _point(label: str, budget: int, rows: Sequence[tuple[str, bool, float, float]]) -> CurvePoint:
    n = len(rows)
    solved = sum(ok for _, ok, _, _ in rows)
    return CurvePoint(
        label=label,
        budget=budget,
        n_problems=n,
        accuracy=solved / n if n else 0.0,
        accuracy_ci=wilson_interval(solved, n),
        tokens_per_problem=math.fsum(t for _, _, t, _ in rows) / n if n else 0.0,
        flops_per_problem=math.fsum(f for _, _, _, f in rows) / n if n else 0.0,
        correct={pid: ok for pid, ok, _, _ in rows},
    )


def run_point(problems: Sequence[ProblemRecord], label: str, budget: int) -> CurvePoint:
    """A run as one point: its final answers and everything it spent."""
    rows = [(p.problem_id, p.correct, float(p.usage.total_tokens), p.usage.flops) for p in problems]
    return _point(label, budget, rows)


def subsampled_point(problems: Sequence[ProblemRecord], k: int, rule: Rule, label: str) -> CurvePoint:
    """The run's accuracy and cost had it drawn only its first ``k`` samples (see the module docstring)."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    rows = []
    for p in problems:
        if not p.samples:  # a failed solve: wrong at every k, and it cost what it cost
            rows.append((p.problem_id, False, float(p.usage.total_tokens), p.usage.flops))
            continue
        scoring = _scoring_spent(p)
        policy_prompt = p.usage.prompt_tokens - scoring.prompt_tokens
        all_tokens = policy_prompt + sum(s.tokens or 0 for s in p.samples)
        k_tokens = policy_prompt + sum(s.tokens or 0 for s in p.samples[:k])
        share = k_tokens / all_tokens if all_tokens else 1.0
        scored = sum(s.score is not None for s in p.samples)
        part = sum(s.score is not None for s in p.samples[:k]) / scored if scored else 1.0
        tokens = k_tokens + scoring.total_tokens * part
        flops = (p.usage.flops - scoring.flops) * share + scoring.flops * part
        rows.append((p.problem_id, rule(p.samples, k), float(tokens), flops))
    return _point(label, k, rows)


def _scoring_spent(p: ProblemRecord) -> ModelUsage:
    """What a problem's verifier spent, as its vote event records it (nothing if it has none)."""
    for event in reversed(p.result.get("trace", ())):
        spent = event.get("scoring") if isinstance(event, Mapping) and event.get("kind") == "vote" else None
        if isinstance(spent, Mapping):
            return ModelUsage(
                prompt_tokens=int(spent.get("prompt_tokens", 0)),
                completion_tokens=int(spent.get("completion_tokens", 0)),
                flops=float(spent.get("flops", 0.0)),
            )
    return ModelUsage()


def derivable_k(problems: Sequence[ProblemRecord], budgeted_n: int | None = None) -> int:
    """The largest k a sampling run's points can be derived at.

    Without a budget that is the fewest samples a problem has. Under a per-problem budget, give the
    run's n as ``budgeted_n``: a problem whose budget ran out after m samples takes part at every k above
    m with its m samples, as a k-sample run with the same budget and seed would (its first m samples,
    then no budget left), so every k up to n can be derived. Below m the derivation is as close as any
    subsampling of a budgeted run: where a later batch of the n-sample run had its ``max_tokens`` lowered
    to fit the budget, a k-sample run's smaller batch may have been cut less.
    """
    counts = [len(p.samples) for p in problems if p.samples]
    if budgeted_n is not None and counts:  # every solve failed: nothing to derive, budget or not
        return budgeted_n
    return min(counts, default=0)


def sample_curve(
    problems: Sequence[ProblemRecord],
    strategy: str,
    params: Mapping[str, Any],
    ks: Sequence[int],
    *,
    budgeted_n: int | None = None,
) -> list[CurvePoint]:
    """Points at each k (up to :func:`derivable_k`) from one sampling run (``budgeted_n``: its n, if it
    ran under a per-problem budget)."""
    rule = subsample_rule(strategy, params)
    if rule is None:
        raise ConfigError(
            f"{strategy} runs cannot be subsampled (only {', '.join(SUBSAMPLE_RULES)}); "
            "run it once per budget instead"
        )
    have = derivable_k(problems, budgeted_n)
    too_big = [k for k in ks if k > have]
    if too_big:
        raise ConfigError(f"the run has {have} samples per problem; cannot derive k = {too_big}")
    return [subsampled_point(problems, k, rule, f"{strategy} n={k}") for k in ks]


def has_budget(config: Mapping[str, Any]) -> bool:
    """Whether a run's config set a per-problem budget (tokens or FLOPs)."""
    return config.get("budget_tokens") is not None or config.get("budget_flops") is not None


# -- difficulty -------------------------------------------------------------------------------------------


def _equal_bins(scores: Mapping[str, float | tuple[float, ...]], n_bins: int) -> dict[str, int]:
    """Bin 1 holds the highest scores (easiest); sizes differ by at most one; ties go by problem id."""
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")

    def key(pid: str) -> tuple[tuple[float, ...], str]:
        score = scores[pid]
        return tuple(-x for x in (score if isinstance(score, tuple) else (score,))), pid

    order = sorted(scores, key=key)
    n = len(order)
    return {pid: 1 + (i * n_bins) // n for i, pid in enumerate(order)} if n else {}


def oracle_bins(problems: Sequence[ProblemRecord], n_bins: int = 5) -> dict[str, int]:
    """Bins by the model's pass@1 on each problem (share of its samples that are correct)."""
    pass1 = {p.problem_id: sum(s.correct for s in p.samples) / len(p.samples) for p in problems if p.samples}
    if not pass1:
        raise ConfigError("oracle difficulty needs a run with samples (a sampling strategy)")
    return _equal_bins(pass1, n_bins)


def agreement(samples: Sequence[SampleRecord]) -> float:
    """Share of the most common answer among ``samples`` (answerless samples each count alone)."""
    if not samples:
        return 0.0
    keys = [("g", s.group) if s.group is not None else ("none", s.index) for s in samples]
    return Counter(keys).most_common(1)[0][1] / len(samples)


def confidence(samples: Sequence[SampleRecord]) -> float | None:
    """Mean geometric-mean token probability of ``samples`` (exp of each one's mean token logprob; an
    empty sample, which gave up at once, counts 0), or None if one has no logprob summary."""
    if not samples or any(s.logprob_summary is None for s in samples):
        return None
    means = [s.logprob_mean for s in samples]
    return math.fsum(0.0 if m is None else math.exp(m) for m in means) / len(means)


PROBES = 4
"""Samples per problem that predicted difficulty reads."""

BIN_METHODS = ("oracle", "predicted")
"""How problems can be ranked into difficulty bins: :func:`oracle_bins` or :func:`predicted_bins`."""


def check_bin_method(method: str) -> None:
    """Refuse a ``--bins`` value other than :data:`BIN_METHODS` (before any run is read or made)."""
    if method not in BIN_METHODS:
        raise ConfigError(f"--bins must be {' or '.join(BIN_METHODS)}, got {method!r}")


def predicted_bins(
    problems: Sequence[ProblemRecord], probe: int = PROBES, n_bins: int = 5
) -> tuple[dict[str, int], str]:
    """Bins by what the model's first ``probe`` samples of each problem say, no answer key involved.

    Agreement (the share of the most common answer) ranks first: a model that keeps giving one answer
    finds the problem easy. Among problems that agree alike (with 4 probes agreement takes 4 values),
    their confidence (:func:`confidence`) ranks next, when every probe has a logprob summary; otherwise
    ties go by problem id. Returns the bins and what ranked them.
    """
    if probe < 1:
        raise ConfigError(f"probe must be >= 1, got {probe}")
    probes = {p.problem_id: p.samples[:probe] for p in problems if p.samples}
    if not probes:
        raise ConfigError("predicted difficulty needs a run with samples (a sampling strategy)")
    confs = {pid: confidence(s) for pid, s in probes.items()}
    if all(c is not None for c in confs.values()):
        scores = {pid: (agreement(s), confs[pid] or 0.0) for pid, s in probes.items()}
        return _equal_bins(scores, n_bins), f"agreement, then confidence, of the first {probe} samples"
    agreed = {pid: agreement(s) for pid, s in probes.items()}
    return _equal_bins(agreed, n_bins), f"agreement of the first {probe} samples"


def accuracy_by_bin(point: CurvePoint, bins: Mapping[str, int]) -> dict[int, tuple[float, int]]:
    """Bin to (accuracy, problems) for the problems of ``point`` that have a bin."""
    tally: dict[int, list[bool]] = {}
    for pid, ok in point.correct.items():
        if pid in bins:
            tally.setdefault(bins[pid], []).append(ok)
    return {b: (sum(v) / len(v), len(v)) for b, v in sorted(tally.items())}


# -- FLOPs matching ---------------------------------------------------------------------------------------


def flops_matched(points: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    """The point with the most FLOPs per problem that does not exceed ``target`` (None if all do)."""
    within = [p for p in points if p.flops_per_problem <= target]
    return max(within, key=lambda p: (p.flops_per_problem, p.budget)) if within else None


# -- runs to curves -----------------------------------------------------------------------------------------

BUDGET_KNOBS: dict[str, str] = {
    "self_consistency": "n",
    "best_of_n": "n",
    "adaptive_consistency": "max_n",
    "deepconf": "n",
    "beam_search": "n",
    "dvts": "n",
    "mcts": "iterations",
    "budget_forcing": "max_thinking_tokens",
}
"""The parameter that sets each strategy's compute (a curve varies it; runs differing only in it and the
seed belong to one series)."""


@dataclass(frozen=True)
class Series:
    """Points of one (dataset slice, model, strategy, other settings) at increasing budgets."""

    model: str
    strategy: str
    label: str
    points: tuple[CurvePoint, ...]
    run_ids: tuple[str, ...]
    dataset: str = ""
    """The problems it was measured on (:func:`dataset_slice`): only series on the same ones compare."""


def dataset_slice(config: Mapping[str, Any]) -> str:
    """A run's problems as ``dataset[offset:end]``, e.g. ``gsm8k[0:100]`` (``gsm8k[0:]``: all of them)."""
    offset, limit = int(config.get("offset") or 0), config.get("limit")
    end = "" if limit is None else str(offset + int(limit))
    return f"{config.get('dataset')}[{offset}:{end}]"


def _powers_up_to(n: int) -> list[int]:
    return sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n}) if n >= 1 else []


def _knob_value(strategy: str, knob: str, params: Mapping[str, Any]) -> int:
    """The budget knob's value in a run: as given, else the strategy's default (0 if it has none)."""
    value = params.get(knob)
    if value is None:
        from ..strategies.base import strategy_class, strategy_params

        try:
            value = next((p.default for p in strategy_params(strategy_class(strategy)) if p.name == knob), 0)
        except UnknownNameError:  # a store written by a version with another strategy of that name
            value = 0
    return int(float(value or 0))


def series_of_runs(runs: Sequence[tuple[str, Mapping[str, Any], Sequence[ProblemRecord]]]) -> list[Series]:
    """Group ``(run_id, config, problems)`` triples into series.

    A sampling run (see :data:`SUBSAMPLE_RULES`) contributes its subsampled points at 1, 2, 4, ... up to
    its sample count; any other run contributes one point at its budget knob's value. Runs on different
    problems (dataset and slice) never share a series, and labels name the slice when there are several.
    Points of a series are sorted by FLOPs; when two runs give the same budget, the later run's point is
    kept. A run with no problem solved (every solve failed) has no points and no series.
    """
    Key = tuple[str, str, str, str]
    groups: dict[Key, dict[int, CurvePoint]] = {}
    ids: dict[Key, list[str]] = {}
    for run_id, config, problems in runs:
        if not problems:
            continue
        strategy, params = str(config["strategy"]), dict(config.get("params", {}))
        knob = BUDGET_KNOBS.get(strategy)
        rest = {k: v for k, v in sorted(params.items()) if k not in (knob, "seed")}
        budget_note = "" if config.get("budget_tokens") is None else f" budget {config['budget_tokens']} tok"
        detail = " ".join(f"{k}={v}" for k, v in rest.items())
        key = (dataset_slice(config), str(config["model"]), strategy, detail + budget_note)
        points = groups.setdefault(key, {})
        ids.setdefault(key, []).append(run_id)
        rule = subsample_rule(strategy, params)
        if rule is not None:
            nominal = _knob_value(strategy, "n", params) if has_budget(config) else None
            for k in _powers_up_to(derivable_k(problems, nominal)):
                points[k] = subsampled_point(problems, k, rule, f"{strategy} {knob}={k}")
        else:
            budget = _knob_value(strategy, knob, params) if knob else 0
            points[budget] = run_point(problems, f"{strategy} {knob}={budget}" if knob else strategy, budget)
    several = len({key[0] for key in groups}) > 1
    out = []
    for key, points in groups.items():
        if not points:
            continue
        dataset, model, strategy, detail = key
        label = (f"{dataset} · " if several else "") + f"{model} · {strategy}"
        label += f" ({detail.strip()})" if detail.strip() else ""
        ordered = tuple(sorted(points.values(), key=lambda p: (p.flops_per_problem, p.budget)))
        out.append(Series(model, strategy, label, ordered, tuple(ids[key]), dataset))
    return out
