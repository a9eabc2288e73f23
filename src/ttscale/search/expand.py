"""The moves every step-wise search makes: expand a node into sampled next steps, look or roll ahead,
and score paths with the process scorer.

All generation goes through the solve's :class:`~ttscale.compute.Meter`, and the process scorer's judge is
metered on the same ledger, so policy and PRM draw on one budget; a call the budget cannot pay for raises
:class:`~ttscale.errors.BudgetExhausted` before anything is spent, and the strategies catch it and finish
with the nodes they have. Children of a node are sampled from ``tree.prompt(node)``, the step prompt
continued by the node's steps, so with a prefix cache each expansion prefills only the newest step.

Seeds: every generate call takes the next seeds in sequence (``seed + samples drawn so far``), so two
calls never share a seed and a seed reproduces the whole search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..scorers.process import (
    Aggregation,
    LastStepScorer,
    ProcessScorer,
    aggregate,
    checked_last_scores,
    checked_step_scores,
)
from ..types import Completion, FinishReason, Problem, SamplingParams
from .steps import StepFormat, is_terminal
from .tree import Node, Tree

if TYPE_CHECKING:
    from ..backends.base import Generator
    from ..compute import Meter


@dataclass
class Searcher:
    """The policy, the step format, the process scorer and the sampling knobs of one solve."""

    meter: Meter
    problem: Problem
    tree: Tree
    fmt: StepFormat
    prm: ProcessScorer
    aggregation: Aggregation
    temperature: float
    top_p: float
    top_k: int
    max_step_tokens: int
    seed: int | None
    judge: Generator | None = None
    """The judge model's metered generator (the policy when it judges itself), for outcome values."""
    drawn: int = 0

    def params(
        self, k: int, prompts: int, *, temperature: float | None = None, max_tokens: int | None = None
    ) -> SamplingParams:
        """Sampling parameters for one call of ``prompts`` prompts x ``k`` samples; one step unless
        ``max_tokens`` is given (then the sample runs to the end of the solution, no step stop)."""
        seed = None if self.seed is None else self.seed + self.drawn
        self.drawn += k * prompts
        one_step = max_tokens is None
        return SamplingParams(
            n=k,
            max_tokens=self.max_step_tokens if max_tokens is None else max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=seed,
            stop=self.fmt.stop if one_step else (),
            stopping_criteria=self.fmt.criteria(self.meter.decode) if one_step else (),
        )

    def expand(self, parents: Sequence[int], k: int) -> list[list[Node]]:
        """``k`` sampled next steps of each parent, from one generate call."""
        if not parents:
            return []
        prompts = [self.tree.prompt(p) for p in parents]
        out = self.meter.generate(prompts, self.params(k, len(prompts)))
        return [[self.child(p, c) for c in group] for p, group in zip(parents, out, strict=True)]

    def child(self, parent: int, c: Completion) -> Node:
        """The node of one generated step."""
        step, found = self.fmt.cut(c.text)
        terminal = is_terminal(step, _step_finish(c.finish_reason, found))
        text = step if terminal else step + (found or self.fmt.separator)
        return self.tree.add(parent, step, text, c.finish_reason, len(c.token_ids), terminal)

    def lookahead(self, nodes: Sequence[Node], depth: int) -> list[list[str]]:
        """Up to ``depth`` more steps after each node, greedy (temperature 0, as Snell et al. roll out to
        cut variance), one batched call per step, stopping early at a terminal step."""
        tails: list[list[str]] = [[] for _ in nodes]
        texts = ["" for _ in nodes]
        live = [i for i, n in enumerate(nodes) if not n.terminal]
        for _ in range(depth):
            if not live:
                break
            prompts = [self.tree.prompt(nodes[i].id).continued(texts[i]) for i in live]
            out = self.meter.generate(prompts, self.params(1, len(prompts), temperature=0.0))
            still = []
            for i, group in zip(live, out, strict=True):
                step, found = self.fmt.cut(group[0].text)
                if step:
                    tails[i].append(step)
                    texts[i] += step + (found or self.fmt.separator)
                if not is_terminal(step, _step_finish(group[0].finish_reason, found)):
                    still.append(i)
            live = still
        return tails

    def rollout(self, nodes: Sequence[Node], temperature: float, max_tokens: int) -> list[Completion | None]:
        """One completion per non-terminal node, run to the end of its solution (None for terminal nodes)."""
        live = [n for n in nodes if not n.terminal]
        out: list[Completion | None] = [None] * len(nodes)
        if not live:
            return out
        prompts = [self.tree.prompt(n.id) for n in live]
        done = self.meter.generate(
            prompts, self.params(1, len(prompts), temperature=temperature, max_tokens=max_tokens)
        )
        at = {n.id: group[0] for n, group in zip(live, done, strict=True)}
        return [at.get(n.id) for n in nodes]

    def score(self, nodes: Sequence[Node], tails: Sequence[Sequence[str]] | None = None) -> None:
        """Process scores of each node's path (continued by its tail, if any), and their aggregate.

        ``node.scores`` keeps the path's own step scores; ``node.score`` aggregates path and tail, so a
        lookahead or rollout scores the step it started from (Snell et al.'s lookahead rule).

        With ``last`` aggregation only the last step of path and tail is judged, where the scorer can do
        that alone (:class:`~ttscale.scorers.process.LastStepScorer`): ``node.scores`` is then that one
        score, or empty when it is a tail's (in ``extra["tail_scores"]``).
        """
        # an empty step (a blank line, or the turn ended, right after the last step) says nothing to judge:
        # the path is scored without it, so the solution keeps the score its last real step earned
        paths = [[step for step in self.tree.steps(n.id) if step] for n in nodes]
        full = [p + list(t) for p, t in zip(paths, tails, strict=True)] if tails is not None else paths
        if not all(full):  # a solution with no step at all: nothing to judge, no evidence it is right
            for node, steps in zip(nodes, full, strict=True):
                if not steps:
                    node.scores, node.score = (), 0.0
                    node.extra["unjudged"] = "empty solution"
            kept = [i for i, steps in enumerate(full) if steps]
            if kept:
                self.score([nodes[i] for i in kept], [tails[i] for i in kept] if tails is not None else None)
            return
        if self.aggregation == "last" and isinstance(self.prm, LastStepScorer):
            lasts = checked_last_scores(self.prm, self.problem, full)
            for node, path, steps, last in zip(nodes, paths, full, lasts, strict=True):
                node.score = last
                if len(steps) > len(path):  # the last step is the tail's
                    node.scores = ()
                    node.extra["tail_scores"] = [last]
                else:
                    node.scores = (last,)
            return
        scores = checked_step_scores(self.prm, self.problem, full)
        for node, path, s in zip(nodes, paths, scores, strict=True):
            node.scores = tuple(s[: len(path)])
            node.score = aggregate(s, self.aggregation)
            if len(s) > len(path):
                node.extra["tail_scores"] = s[len(path) :]


def _step_finish(finish: FinishReason, separator: str | None) -> FinishReason:
    """How the step itself ended: at a separator the stop strings missed (a whitespace-only line, say),
    the text after it, and so the end of turn, belongs to what was cut off, not to the step."""
    return finish if separator is None else "stop"
