"""The final step of a tree search: pick an answer among finished solutions, and assemble the Result.

Selection over the pool of finished solutions, each with its aggregated process score s_i and answer a_i
(``~`` is answer equivalence, :func:`ttscale.answers.group_answers`):

- ``weighted`` (Snell et al. 2024's "best-of-N weighted", the default in search-and-learn's voting):
  ``argmax_a sum_i s_i [a_i ~ a]``; confidence is the winner's share of the summed scores;
- ``naive``: the answer of the single best-scored solution; confidence is its score;
- ``majority``: ``argmax_a sum_i [a_i ~ a]``, scores ignored; confidence is the winner's vote share.

Ties go to the group seen first (naive: the earliest best-scored solution). Solutions without an
extractable answer abstain; when none has one, normalised final lines stand in for answers. The response
returned is the best-scored member of the winning group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..answers import extract_answer, group_answers
from ..strategies.voting import answer_numbers, final_line
from ..types import Candidate, Problem, Result, TraceEvent
from .tree import Node, Tree, choice_event

if TYPE_CHECKING:
    from ..compute import Meter

Selection = Literal["weighted", "naive", "majority"]
SELECTIONS: tuple[Selection, ...] = ("weighted", "naive", "majority")


@dataclass(frozen=True)
class Finished:
    """One finished (or, as a fallback, unfinished) solution in the final pool."""

    node: int
    """The tree node it ends at, or whose rollout it is."""
    text: str
    """The full response."""
    score: float
    """Its aggregated process score (or value), used by weighted and naive selection."""
    tokens: int
    """Policy tokens generated along it."""


@dataclass(frozen=True)
class Pick:
    """The outcome of the final selection."""

    candidates: tuple[Candidate, ...]
    best: int | None
    answers: tuple[str | None, ...]
    method: Literal["answer", "final_line"]
    confidence: float | None
    unforced: bool = False
    """A ``forced`` solution was asked for but had no answer, so the selection rule chose instead."""


def finished(tree: Tree, node: Node) -> Finished:
    """The pool entry of a tree node's solution (scored by its aggregate)."""
    tokens = sum(n.tokens for n in tree.path(node.id))
    return Finished(node.id, tree.response(node.id), node.score or 0.0, tokens)


def salvage(tree: Tree, nodes: Sequence[Node]) -> list[Node]:
    """The finished solutions among ``nodes`` that a budget stop left unjudged, ready for the pool.

    A search that generates a round and is then refused the PRM call for it would otherwise drop
    solutions already paid for, and answer from unfinished beams instead. Each one gets its parent's
    aggregate as a stand-in score (the PRM's latest judgement of the prefix it completes; 0 under the
    root, which is never judged) and is flagged ``unscored`` in its node record.
    """
    out = []
    for node in nodes:
        if node.terminal and node.score is None:
            parent = tree.nodes[node.parent] if node.parent is not None else None
            node.score = parent.score if parent is not None and parent.score is not None else 0.0
            node.extra["unscored"] = True
            out.append(node)
    return out


def pick(pool: Sequence[Finished], problem: Problem, selection: Selection, forced: int | None = None) -> Pick:
    """Select an answer among ``pool`` (see the module docstring).

    ``forced`` (an index into ``pool``) overrides the choice: its group comes first and its text is the
    response, and no confidence is given (MCTS's most-visited path is chosen by visits, not by a vote).
    A forced solution without an answer (a rollout cut off before its ``\\boxed{}``) cannot give one, so
    the selection rule chooses instead, and the Pick says so (``unforced``): the answer and the response
    must come from one solution.
    """
    kind: str = problem.answer_kind
    method: Literal["answer", "final_line"] = "answer"
    answers: list[str | None] = [extract_answer(f.text, kind).value for f in pool]
    if not any(a is not None for a in answers):
        kind, method = "text", "final_line"
        answers = [final_line(f.text) or None for f in pool]
    scores = [f.score for f in pool]
    numbers = answer_numbers(problem) if kind == problem.answer_kind else None

    def top(members: Sequence[int]) -> int:
        return min(members, key=lambda i: (-scores[i], i))

    groups = group_answers(answers, kind, scores if selection == "weighted" else None, numbers=numbers)
    if selection == "naive":
        groups = sorted(groups, key=lambda g: (-scores[top(g.members)], top(g.members)))
        ranked = [Candidate(g.answer, scores[top(g.members)], g.members) for g in groups]
    else:
        ranked = [Candidate(g.answer, g.weight, g.members) for g in groups]
    unforced = forced is not None and answers[forced] is None
    if forced is not None and not unforced:
        ranked.sort(key=lambda c: forced not in c.samples)  # stable: the forced group first
        return Pick(tuple(ranked), forced, tuple(answers), method, None)
    best = top(ranked[0].samples) if ranked else None
    return Pick(tuple(ranked), best, tuple(answers), method, _confidence(ranked, scores, selection), unforced)


def _confidence(ranked: Sequence[Candidate], scores: Sequence[float], selection: Selection) -> float | None:
    if not ranked:
        return None
    if selection == "naive":
        return ranked[0].votes
    if selection == "weighted":
        total = math.fsum(scores[i] for c in ranked for i in c.samples)
        return ranked[0].votes / total if total > 0 else None
    return ranked[0].votes / sum(len(c.samples) for c in ranked)


def build_result(
    name: str,
    meter: Meter,
    problem: Problem,
    tree: Tree,
    pool: Sequence[Finished],
    selection: Selection,
    events: Sequence[TraceEvent] = (),
    *,
    forced: int | None = None,
    **vote_extra: Any,
) -> Result:
    """The Result of a tree search: node events, the strategy's events, samples, vote and choice."""
    chosen = pick(pool, problem, selection, forced)
    samples = [_sample_event(i, f, chosen.answers[i]) for i, f in enumerate(pool)]
    best = pool[chosen.best] if chosen.best is not None else None
    vote = TraceEvent(
        "vote",
        {
            "method": chosen.method,
            "selection": selection,
            "tally": {c.answer: c.votes for c in chosen.candidates},
            "winner": chosen.candidates[0].answer if chosen.candidates else None,
            "winner_sample": chosen.best,
            "pool": len(pool),
            **vote_extra,
            **(
                {
                    "fallback": f"the forced solution (sample {forced}) has no answer; {selection} selection chose"
                }
                if chosen.unforced
                else {}
            ),
        },
    )
    choice = choice_event(tree, best.node if best else None, sample=chosen.best)
    return Result(
        answer=chosen.candidates[0].answer if chosen.candidates else None,
        response=best.text if best else "",
        strategy=name,
        model=meter.model.name,
        candidates=chosen.candidates,
        confidence=chosen.confidence,
        trace=(*tree.events(), *events, *samples, vote, choice),
    )


def _sample_event(index: int, f: Finished, answer: str | None) -> TraceEvent:
    return TraceEvent(
        "sample",
        {
            "index": index,
            "text": f.text,
            "answer": answer,
            "voted": answer is not None,
            "score": f.score,
            "tokens": f.tokens,
            "node": f.node,
        },
    )
