"""Group sampled answers into equivalence classes and weigh them: the counting step of self-consistency.

Self-consistency (Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning in Language
Models", arXiv:2203.11171) takes the answer with the most votes, ``argmax_a sum_i w_i [a_i ~ a]``, where
``~`` is answer equivalence, not string equality: ``1/2``, ``0.5`` and ``\\frac{1}{2}`` are one answer.

Cost: each answer's canonical key (exact number, or normalised string) is computed once and looked up in
a dict; only a key not seen before is compared, by :func:`~ttscale.answers.equivalence.forms_equivalent`,
against the representative of each existing group, and math-verify parses each representative once. So
n answers with k distinct keys in g groups cost n key computations and at most k * g comparisons, and
math-verify runs only between buckets of kind ``math`` whose answers are not both plain numbers (a
number such as ``\\sqrt{2}`` is evaluated once and ruled out against a clearly different one).

Equivalence by math-verify need not be transitive; an answer joins the earliest group whose
representative it matches, which keeps the result deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .equivalence import AnswerForm, forms_equivalent
from .extract import check_kind


@dataclass(frozen=True)
class AnswerGroup:
    """Answers that are all the same answer, with their total support."""

    answer: str
    """The representative: the first answer (lowest index) of the group, as given."""
    members: tuple[int, ...]
    """Indices (into the input sequence) of the answers in this group, ascending."""
    weight: float
    """Summed weights of the members, or their count when no weights were given."""


@dataclass
class _Group:
    form: AnswerForm
    members: list[int]
    weight: float


def _find_group(form: AnswerForm, groups: list[_Group]) -> int | None:
    for gi, group in enumerate(groups):
        if forms_equivalent(group.form, form):
            return gi
    return None


def group_answers(
    answers: Sequence[str | None],
    kind: str,
    weights: Sequence[float] | None = None,
    *,
    numbers: Sequence[int] | None = None,
) -> list[AnswerGroup]:
    """Group ``answers`` by equivalence (``kind`` as in :func:`~ttscale.answers.equivalent`).

    ``None`` answers are left out. Groups come heaviest first; ties go to the group whose first member
    appears earliest. ``weights`` (one per answer) default to 1 each; ``numbers`` are a Game-of-24
    puzzle's numbers (two valid solutions of it are one answer).

    >>> [(g.answer, g.members, g.weight) for g in group_answers(["1/2", None, "0.5", "3"], "math")]
    [('1/2', (0, 2), 2.0), ('3', (3,), 1.0)]
    """
    check_kind(kind)
    if weights is not None and len(weights) != len(answers):
        raise ConfigError(f"got {len(weights)} weights for {len(answers)} answers: give one per answer")
    if weights is not None and not all(math.isfinite(w) for w in weights):
        raise ConfigError("weights must be finite numbers")
    nums = tuple(numbers) if numbers is not None else None
    groups: list[_Group] = []
    group_of_key: dict[Hashable, int] = {}
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        form = AnswerForm(answer, kind, nums)
        gi = group_of_key.get(form.key)
        if gi is None:
            gi = _find_group(form, groups)
            if gi is None:
                gi = len(groups)
                groups.append(_Group(form, [], 0.0))
            group_of_key[form.key] = gi
        group = groups[gi]
        group.members.append(i)
        group.weight += 1.0 if weights is None else float(weights[i])
    order = sorted(range(len(groups)), key=lambda gi: (-groups[gi].weight, groups[gi].members[0]))
    return [AnswerGroup(groups[gi].form.raw, tuple(groups[gi].members), groups[gi].weight) for gi in order]
