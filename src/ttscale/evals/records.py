"""What an evaluation records: graded problems and samples, and the run they belong to.

:func:`grade` turns a strategy's :class:`~ttscale.types.Result` into a :class:`ProblemRecord`: the final
answer and every ``sample`` trace event are checked against the key here, in the evaluator, which is the
only place the key is read. Samples are also grouped into answer equivalence classes once, so that the
maj@k and weighted@k metrics are pure tallies over stored integers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..answers import group_answers, is_correct
from ..strategies.voting import answer_numbers
from ..types import ModelUsage, Result, TraceEvent
from .datasets import Example


@dataclass(frozen=True)
class SampleRecord:
    """One sample a strategy drew (a ``sample`` trace event), graded against the key."""

    index: int
    """Position among the problem's samples, in trace order (maj@k takes the first k)."""
    text: str
    """The sample's full response text."""
    tokens: int | None
    """Generated tokens, when the strategy reported them."""
    answer: str | None
    """The answer extracted from it, or None."""
    correct: bool
    """Whether that answer matches the key."""
    group: int | None
    """Equivalence class among this problem's sample answers (0 = heaviest); None without an answer."""
    weight: float | None = None
    """The strategy's vote weight for this sample, when it has one."""
    score: float | None = None
    """A verifier's score, when one was used."""
    confidence: float | None = None
    """A confidence measure (DeepConf), when one was computed."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Every other field of the trace event."""

    @property
    def voted(self) -> bool:
        """Whether it took part in its strategy's vote: it has an answer, and the strategy did not leave it
        out (best-of-N's unscored samples, DeepConf's filtered traces: their event says ``voted: false``)."""
        return self.group is not None and self.data.get("voted", True) is not False

    @property
    def logprob_summary(self) -> Mapping[str, Any] | None:
        """Its sampled tokens' logprobs summarised (:func:`~ttscale.strategies.base.logprob_summary`): mean,
        min, tokens; None if the backend gave no logprobs, or the run was recorded before ttscale kept it."""
        summary = self.data.get("logprob")
        return summary if isinstance(summary, Mapping) else None

    @property
    def logprob_mean(self) -> float | None:
        """Mean logprob of its sampled tokens (None without a summary, or for an empty sample)."""
        summary = self.logprob_summary
        return _number(summary.get("mean")) if summary is not None else None

    @property
    def vote_weight(self) -> float:
        """The weight weighted@k uses: weight, else score, else confidence, else 1."""
        for value in (self.weight, self.score, self.confidence):
            if value is not None:
                return value
        return 1.0


@dataclass(frozen=True)
class ProblemRecord:
    """One solved (or failed) problem of a run."""

    index: int
    """Position in the dataset (offset included): the key that makes a problem unique in a run."""
    problem_id: str
    """The dataset's id for it."""
    kind: str
    """Answer kind used to grade it."""
    seed: int | None
    """The strategy seed it was solved with (None when the strategy takes none)."""
    answer: str | None
    """The strategy's final answer."""
    gold: str
    """The answer key."""
    correct: bool
    """Whether ``answer`` matches ``gold``."""
    usage: ModelUsage
    """Everything spent on it, all models together."""
    latency_seconds: float
    """Wall time of its solve (with concurrency, it shares the machine with other problems)."""
    error: str | None = None
    """``ErrorType: message`` when the solve failed; the problem then counts as wrong."""
    result: Mapping[str, Any] = field(default_factory=dict)
    """``Result.to_dict()``: response, candidates, usage by model and the full trace."""
    samples: tuple[SampleRecord, ...] = ()
    """Its samples, in trace order."""


@dataclass(frozen=True)
class RunInfo:
    """A run's row plus its progress."""

    run_id: str
    created_at: float
    """Unix time the run was created."""
    status: str
    """``incomplete`` (running, or interrupted: ``--resume`` continues it) or ``complete``."""
    n_planned: int
    """Problems the run covers."""
    n_done: int
    """Problems recorded so far."""
    n_correct: int
    """Of those, how many are correct."""
    wall_seconds: float
    """Elapsed time summed over the sessions that worked on it (up to the last recorded problem)."""
    config: Mapping[str, Any]
    """What was asked: dataset, slice, strategy, params, seed, model, concurrency..."""
    versions: Mapping[str, Any]
    """What ran it: ttscale, llama-cpp-python, model SHA-256, python, platform."""


# -- grading ----------------------------------------------------------------------------------------------


def grade(
    example: Example,
    index: int,
    seed: int | None,
    result: Result | None,
    usage: ModelUsage,
    latency: float,
    error: str | None,
) -> ProblemRecord:
    """The record of one problem: its answer and samples checked against the key."""
    problem = example.problem
    answer = result.answer if result is not None else None
    return ProblemRecord(
        index=index,
        problem_id=problem.id or str(index),
        kind=problem.answer_kind,
        seed=seed,
        answer=answer,
        gold=example.answer,
        correct=_correct(answer, example),
        usage=usage,
        latency_seconds=latency,
        error=error,
        result=result.to_dict() if result is not None else {},
        samples=tuple(sample_records(example, result.trace)) if result is not None else (),
    )


def _correct(answer: str | None, example: Example) -> bool:
    p = example.problem
    return is_correct(answer, example.answer, p.answer_kind, problem_metadata=p.metadata)


def sample_records(example: Example, trace: Sequence[TraceEvent]) -> Iterator[SampleRecord]:
    """The ``sample`` events of a trace, graded, grouped by answer, with any weights the strategy used."""
    events = [e for e in trace if e.kind == "sample"]
    answers = [_text_or_none(e.data.get("answer")) for e in events]
    groups: dict[int, int] = {}
    for rank, g in enumerate(
        group_answers(answers, example.problem.answer_kind, numbers=answer_numbers(example.problem))
    ):
        groups.update(dict.fromkeys(g.members, rank))
    vote_weights = _vote_weights(trace, len(events))
    for i, (event, answer) in enumerate(zip(events, answers, strict=True)):
        data = dict(event.data)
        yield SampleRecord(
            index=i,
            text=str(data.pop("text", "")),
            tokens=_int_or_none(data.get("tokens")),
            answer=answer,
            correct=_correct(answer, example),
            group=groups.get(i),
            weight=_number(data.get("weight"), vote_weights[i]),
            score=_number(data.get("score")),
            confidence=_number(data.get("confidence")),
            data=data,
        )


def _vote_weights(trace: Sequence[TraceEvent], n: int) -> list[float | None]:
    """Per-sample weights a ``vote`` event lists (self-consistency's length-normalised weighting)."""
    for event in reversed(trace):
        weights = event.data.get("weights") if event.kind == "vote" else None
        if isinstance(weights, list) and len(weights) == n:
            return [_number(w) for w in weights]
    return [None] * n


def _number(value: object, default: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
