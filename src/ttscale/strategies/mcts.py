"""Monte Carlo tree search over reasoning steps, valued by a process reward model.

Kocsis and Szepesvari 2006, "Bandit based Monte-Carlo Planning" (UCT), built on UCB1 (Auer, Cesa-Bianchi
and Fischer 2002, "Finite-time Analysis of the Multiarmed Bandit Problem"); nodes are reasoning steps, as
in rStar (Qi et al. 2024, arXiv 2408.06195) and ReST-MCTS* (Zhang et al. 2024, arXiv 2406.03816). The key
rule is the selection score of a child::

    UCT(child) = Q(child) + c * sqrt(ln N(parent) / N(child))        (unvisited children first)

with Q the mean backed-up value and N the visit counts. ``c`` defaults to sqrt(2), UCB1's constant for
rewards in [0, 1], which PRM probabilities are; larger c explores more.

One iteration:

1. select: from the root, descend by UCT (ties to the earlier child) to a node without children;
2. expand: sample ``k`` next steps of that leaf in one call (a terminal leaf is not expanded: its value is
   backed up again, at no cost);
3. simulate: roll every new child out to the end of its solution in one batched call
   (``rollout_temperature``, default 0: greedy rollouts, which Snell et al. 2024 use for lookahead to cut
   variance; at most ``rollout_max_tokens``). Simulating all k children, not one, uses the batch;
4. evaluate: ``value="prm"`` aggregates the PRM's scores of the path and the rollout's steps
   (``aggregation``); ``value="outcome"`` asks the llm_judge outcome scorer (same judge model) about the
   whole solution;
5. backpropagate: each child's value v updates it and every ancestor: N += 1, W += v, Q = W / N.

The search runs ``iterations`` times (16 by default, our choice: there is no canonical setting) or until
the budget refuses a call, then answers (``answer``): ``most_visited`` (the classic MCTS decision: from the
root, follow the most visited child, ties to the higher Q then the earlier node, to the end of the
visited tree; the answer is that node's solution, its rollout if the node is not terminal; no confidence
is reported; if that solution has no answer, e.g. a rollout cut off before its ``\\boxed{}``, the majority
vote answers instead and the vote event's ``fallback`` says so), ``best_value`` (the simulated solution with the highest value) or ``vote`` (majority over
the answers of all simulated solutions). Every simulated solution is a ``sample`` in the trace; each
iteration adds ``select``, ``expand`` and ``backprop`` events.

Rollouts the budget cannot value (the call that would score them is refused) still join the pool as
solutions, with value 0 and ``unvalued`` in their node's extra, and are not backed up: their tokens were
spent, and a solution nobody scored is still an answer for ``vote`` (and the only one there is when the
budget ends inside the first iteration, as it does for a 3,000-token GSM8K budget on a 0.5B model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from ..errors import BudgetExhausted, GenerationError
from ..scorers.base import Sample
from ..scorers.llm_judge import LLMJudge
from ..search.expand import Searcher
from ..search.fields import SearchFields
from ..search.select import Finished, Selection, build_result
from ..search.tree import Node, Tree
from ..types import Result, TraceEvent
from .base import check

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem

Answer = Literal["most_visited", "best_value", "vote"]


def uct(q: float, n_child: int, n_parent: int, c: float) -> float:
    """UCB1 applied to trees; ``inf`` for an unvisited child, so every child is tried once first."""
    if n_child == 0:
        return math.inf
    return q + c * math.sqrt(math.log(n_parent) / n_child)


def select_path(tree: Tree, c: float) -> tuple[list[int], list[float]]:
    """Node ids from the root down to a leaf by UCT, and the UCT score of each step taken."""
    path, scores = [0], []
    node = tree.root
    while node.children:
        kids = [tree.nodes[i] for i in node.children]
        values = [uct(k.value, k.visits, node.visits, c) for k in kids]
        best = max(range(len(kids)), key=lambda i: (values[i], -i))
        node = kids[best]
        path.append(node.id)
        scores.append(values[best])
    return path, scores


def backprop(tree: Tree, node: int, value: float) -> list[int]:
    """Add one visit of ``value`` to ``node`` and its ancestors; returns the ids updated, leaf first."""
    touched = []
    cur: int | None = node
    while cur is not None:
        n = tree.nodes[cur]
        n.visits += 1
        n.value_sum += value
        touched.append(cur)
        cur = n.parent
    return touched


def most_visited_path(tree: Tree) -> list[int]:
    """From the root, the most visited child (ties: higher Q, then the earlier) down to the visited end."""
    path: list[int] = []
    node = tree.root
    while True:
        kids = [tree.nodes[i] for i in node.children if tree.nodes[i].visits > 0]
        if not kids:
            return path
        node = min(kids, key=lambda k: (-k.visits, -k.value, k.id))
        path.append(node.id)


@dataclass(frozen=True)
class MCTS(SearchFields):
    """UCT search over steps: select, expand k steps, roll out, value by the PRM, back up the mean."""

    name: ClassVar[str] = "mcts"

    iterations: int = field(default=16, metadata={"help": "Select-expand-simulate-backprop iterations."})
    k: int = field(default=4, metadata={"help": "Next steps sampled when a leaf is expanded."})
    c: float = field(
        default=math.sqrt(2),
        metadata={"help": "UCT exploration constant (sqrt(2): UCB1 for values in [0, 1])."},
    )
    rollout_temperature: float = field(
        default=0.0, metadata={"help": "Temperature of the rollouts to the end of a solution (0: greedy)."}
    )
    rollout_max_tokens: int = field(default=512, metadata={"help": "Most tokens of one rollout."})
    value: Literal["prm", "outcome"] = field(
        default="prm",
        metadata={"help": "Value of a rollout: prm (aggregated step scores) or outcome (llm_judge on it)."},
    )
    answer: Answer = field(
        default="most_visited", metadata={"help": "Final answer: most_visited, best_value or vote."}
    )

    def __post_init__(self) -> None:
        check(self.iterations >= 1, "iterations", "an integer >= 1", self.iterations)
        check(self.k >= 1, "k", "an integer >= 1", self.k)
        check(math.isfinite(self.c) and self.c >= 0, "c", "a finite number >= 0", self.c)
        check(
            math.isfinite(self.rollout_temperature) and self.rollout_temperature >= 0,
            "rollout_temperature",
            "a finite number >= 0",
            self.rollout_temperature,
        )
        check(self.rollout_max_tokens >= 1, "rollout_max_tokens", "an integer >= 1", self.rollout_max_tokens)
        check(self.value in ("prm", "outcome"), "value", "prm or outcome", self.value)
        check(
            self.answer in ("most_visited", "best_value", "vote"),
            "answer",
            "most_visited, best_value or vote",
            self.answer,
        )
        self.check_search_fields()

    def solve(self, problem: Problem, generator: Meter) -> Result:
        events: list[TraceEvent] = []
        pool: list[Finished] = []
        with self.searcher(self.name, problem, generator) as s:
            outcome = (
                LLMJudge(s.judge if s.judge is not None else generator) if self.value == "outcome" else None
            )
            self._search(s, outcome, pool, events)
            _statuses(s.tree)
            forced = None
            if self.answer == "most_visited":
                path = most_visited_path(s.tree)
                forced = next((i for i, f in enumerate(pool) if path and f.node == path[-1]), None)
            selection: Selection = "naive" if self.answer == "best_value" else "majority"
            return build_result(
                self.name,
                generator,
                problem,
                s.tree,
                pool,
                selection,
                events,
                forced=forced,
                answer_rule=self.answer,
                prm=s.prm.model_name,
            )

    def _search(
        self, s: Searcher, outcome: LLMJudge | None, pool: list[Finished], events: list[TraceEvent]
    ) -> None:
        for it in range(self.iterations):
            path, scores = select_path(s.tree, self.c)
            events.append(TraceEvent("select", {"iteration": it, "path": path, "uct": scores}))
            leaf = s.tree.nodes[path[-1]]
            if leaf.terminal:
                self._backprop(s.tree, it, leaf, leaf.score or 0.0, events)
                continue
            try:
                (children,) = s.expand([leaf.id], self.k)
                events.append(
                    TraceEvent(
                        "expand", {"iteration": it, "node": leaf.id, "children": [c.id for c in children]}
                    )
                )
                self._simulate(s, outcome, children, pool)
            except BudgetExhausted as e:
                events.append(TraceEvent("stop", {"reason": "budget", "iteration": it, "note": str(e)}))
                return
            for child in children:
                self._backprop(s.tree, it, child, child.score or 0.0, events)

    def _simulate(
        self, s: Searcher, outcome: LLMJudge | None, children: Sequence[Node], pool: list[Finished]
    ) -> None:
        """Roll each child out, value it, and add its solution to the pool (only once valued)."""
        rollouts = s.rollout(children, self.rollout_temperature, self.rollout_max_tokens)
        tails = [s.fmt.split(r.text) if r is not None else [] for r in rollouts]
        texts = [
            s.tree.response(c.id, r.text if r is not None else "")
            for c, r in zip(children, rollouts, strict=True)
        ]
        try:
            if outcome is None:
                s.score(children, tails)
            else:
                _outcome_values(s, outcome, children, texts)
        except BudgetExhausted:
            for child in children:
                child.extra["unvalued"] = True
            raise
        finally:
            for child, r, text in zip(children, rollouts, texts, strict=True):
                tokens = sum(n.tokens for n in s.tree.path(child.id)) + (len(r.token_ids) if r else 0)
                if r is not None:
                    child.extra["rollout"] = r.text
                pool.append(Finished(child.id, text, child.score or 0.0, tokens))

    @staticmethod
    def _backprop(tree: Tree, it: int, node: Node, value: float, events: list[TraceEvent]) -> None:
        touched = backprop(tree, node.id, value)
        events.append(
            TraceEvent("backprop", {"iteration": it, "node": node.id, "value": value, "path": touched[::-1]})
        )


def _outcome_values(s: Searcher, outcome: LLMJudge, children: Sequence[Node], texts: Sequence[str]) -> None:
    verdicts = outcome.verdicts(s.problem, [Sample(t) for t in texts])
    for child, v in zip(children, verdicts, strict=True):
        if not all(math.isfinite(x) for x in (v.yes, v.no, v.score)):
            raise GenerationError(
                f"judge model {outcome.generator.model.name!r} gave a NaN/infinite outcome value for the "
                f"solution through node {child.id} (step {child.depth})"
            )
        child.score = v.score


def _statuses(tree: Tree) -> None:
    """Expanded nodes are chosen, terminal ones complete, the rest open."""
    for node in tree.nodes[1:]:
        node.status = "chosen" if node.children else "complete" if node.terminal else "open"
