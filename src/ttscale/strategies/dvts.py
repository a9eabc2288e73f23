"""Diverse verifier tree search (DVTS): independent greedy subtrees guided by a process reward model.

Beeching, Tunstall and Rush 2024, "Scaling test-time compute with open models" (Hugging Face blog) and
search-and-learn (``sal/search/diverse_verifier_tree_search.py``). Beam search lets a few high-scoring
prefixes take over the whole beam, so its N solutions are often near-copies; DVTS keeps diversity by
splitting the budget into independent subtrees. The key rule, with N = ``n`` and M = ``beam_width``::

    N / M subtrees; in each, every round samples M next steps from the subtree's current node
    and keeps only the single best (by aggregated PRM score)

until the kept step completes the solution (``\\boxed{}`` answer, end of turn) or ``iterations`` rounds
(40) have run. Subtrees never see each other: each one's prompts hold only its own steps, and the first
round draws all N first steps in one call (distinct seeds) and deals them out M per subtree. A subtree's
final candidates are the completed steps of its last round (the kept one and any completed siblings);
only completed candidates enter the final vote. search-and-learn instead returns all M proposals of every
subtree's last round, N in all, finished or not (its last round generates without the step delimiter, so
most finish): here a proposal still unfinished when the subtree ends does not vote, so the vote can run
over fewer than N. If no subtree completed (budget or bound), the subtrees' current nodes stand in and the
vote says so.

The answer: ``weighted`` (default), ``naive`` or ``majority`` selection over the candidates (see
:mod:`ttscale.search.select`). Optional ``lookahead`` scores each proposal by a greedy rollout, as in beam
search. Defaults: n = 16, beam_width = 4 (search-and-learn's config), iterations = 40. Budget: as in beam
search, a refused call ends the search, which answers from what was scored and from the finished
proposals of a round whose scoring was refused (their parent's score standing in, flagged ``unscored``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..errors import BudgetExhausted
from ..search.expand import Searcher
from ..search.fields import SearchFields, check_beam_shape
from ..search.select import Selection, build_result, finished, salvage
from ..search.tree import Node, by_score
from ..types import Result, TraceEvent

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem


@dataclass(frozen=True)
class DVTS(SearchFields):
    """n / beam_width independent subtrees, each keeping its best of beam_width proposals per step."""

    name: ClassVar[str] = "dvts"

    n: int = field(
        default=16, metadata={"help": "Proposals per round over all subtrees (N); a multiple of beam_width."}
    )
    beam_width: int = field(
        default=4, metadata={"help": "Proposals per subtree per round (M); n / beam_width subtrees."}
    )
    iterations: int = field(default=40, metadata={"help": "Most rounds (steps) per subtree."})
    lookahead: int = field(
        default=0, metadata={"help": "Greedy steps rolled ahead to score a proposal (0: none)."}
    )
    selection: Selection = field(
        default="weighted",
        metadata={"help": "Final answer: weighted (summed PRM scores), naive or majority."},
    )

    def __post_init__(self) -> None:
        check_beam_shape(
            self.n,
            self.beam_width,
            self.iterations,
            self.lookahead,
            self.selection,
            "there are n / beam_width subtrees",
        )
        self.check_search_fields()

    @property
    def subtrees(self) -> int:
        return self.n // self.beam_width

    def solve(self, problem: Problem, generator: Meter) -> Result:
        events: list[TraceEvent] = []
        with self.searcher(self.name, problem, generator) as s:
            heads, done = self._search(s, events)
            fallback = not any(done)
            nodes = [h for h in heads if h.id != 0] if fallback else [n for group in done for n in group]
            pool = [finished(s.tree, n) for n in nodes]
            return build_result(
                self.name,
                generator,
                problem,
                s.tree,
                pool,
                self.selection,
                events,
                prm=s.prm.model_name,
                subtrees=self.subtrees,
                unfinished=fallback,
            )

    def _search(self, s: Searcher, events: list[TraceEvent]) -> tuple[list[Node], list[list[Node]]]:
        """Rounds of expand, score and keep-the-best per subtree; returns (current nodes, completed)."""
        heads: list[Node] = [s.tree.root] * self.subtrees
        done: list[list[Node]] = [[] for _ in heads]
        for it in range(self.iterations):
            live = [j for j in range(self.subtrees) if not done[j]]
            if not live:
                break
            proposals: list[list[Node]] = []
            try:
                proposals = self._expand(s, heads, live)
                self._score(s, [c for group in proposals for c in group])
            except BudgetExhausted as e:
                late = []  # finished proposals generated this round, refused their judgement
                for j, group in zip(live, proposals, strict=False):  # none if expansion was refused
                    found = salvage(s.tree, group)
                    for node in found:
                        node.status = "complete"
                    done[j].extend(found)
                    late += [node.id for node in found]
                events.append(
                    TraceEvent(
                        "stop", {"reason": "budget", "iteration": it, "note": str(e), "unscored": late}
                    )
                )
                break
            for j, group in zip(live, proposals, strict=True):
                heads[j] = self._keep_best(group, done[j])
            events.append(_round_event(it, live, proposals, heads))
        return heads, done

    def _expand(self, s: Searcher, heads: Sequence[Node], live: Sequence[int]) -> list[list[Node]]:
        """beam_width proposals for each live subtree (its own node's prompt only)."""
        if all(heads[j].id == 0 for j in live):
            # first round: all subtrees start at the root; one call gives every proposal its own seed
            (flat,) = s.expand([0], self.beam_width * len(live))
            groups = [flat[i * self.beam_width : (i + 1) * self.beam_width] for i in range(len(live))]
        else:
            groups = s.expand([heads[j].id for j in live], self.beam_width)
        for j, group in zip(live, groups, strict=True):
            for node in group:
                node.extra["subtree"] = j
        return groups

    def _score(self, s: Searcher, nodes: Sequence[Node]) -> None:
        if self.lookahead == 0:
            s.score(nodes)
            return
        tails = s.lookahead(nodes, self.lookahead)
        for node, tail in zip(nodes, tails, strict=True):
            if tail:
                node.extra["lookahead"] = list(tail)
        s.score(nodes, tails)

    @staticmethod
    def _keep_best(group: Sequence[Node], done: list[Node]) -> Node:
        """The best proposal goes on; if it completes the solution, the completed proposals are final."""
        best = min(group, key=by_score)
        for node in group:
            node.status = "pruned"
        best.status = "chosen"
        if best.terminal:
            done.extend(node for node in group if node.terminal)
            for node in done:
                node.status = "complete"
        return best


def _round_event(
    it: int, live: Sequence[int], proposals: Sequence[Sequence[Node]], heads: Sequence[Node]
) -> TraceEvent:
    return TraceEvent(
        "round",
        {
            "iteration": it,
            "subtrees": list(live),
            "proposals": [[c.id for c in group] for group in proposals],
            "kept": [heads[j].id for j in live],
        },
    )
