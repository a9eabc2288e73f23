"""Beam search over reasoning steps, guided by a process reward model.

Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally can be More Effective than Scaling Model
Parameters" (arXiv 2408.03314), section 5.1; Hugging Face search-and-learn (Beeching, Tunstall and Rush
2024, ``sal/search/beam_search.py``). With N = ``n`` and M = ``beam_width``, the key rule is::

    sample N first steps; then repeat: score every candidate with the PRM, keep the top N/M,
    and sample M next steps from each kept beam (N/M x M = N candidates again)

until N solutions are complete, no beam is left, or ``iterations`` rounds have run (40 in both). A
candidate whose step completes its solution (a ``\\boxed{}`` answer, end of turn; see
:mod:`ttscale.search.steps`) leaves the beam for the final pool. With ``filter_duplicates`` (the default,
as every search-and-learn recipe sets it), an unfinished candidate whose text equals a better-ranked one's
is dropped before the top N/M are kept, so identical samples of one beam do not take several beams' places
(completed duplicates stay in the pool: how often an answer was reached is what a vote counts). When
completed or duplicate candidates leave fewer than N/M beams, the N samples of the next round are spread
over the survivors, best first, as search-and-learn does by duplicating them. Candidates are ranked by
their aggregated step scores (``aggregation``, default ``last`` as in Snell et al. and search-and-learn);
ties go to the earlier node.

Lookahead (Snell et al.'s "lookahead search", optional): before ranking, each unfinished candidate is
rolled ``lookahead`` steps further at temperature 0 (stopping early at the end of the solution), and the
PRM's aggregate at the end of the rollout scores it (as Snell et al. describe it; search-and-learn's beam
search scores the candidate without its rollout). Rollout steps only score; they are not kept. The default
is 0, Snell et al.'s plain beam search, which they found better than lookahead at equal compute (and
search-and-learn's default too since its config change of 2025).

The answer: ``weighted`` (summed aggregated scores per equivalent answer; Snell et al.'s best-of-N
weighted, the default), ``naive`` (the best-scored solution) or ``majority`` over the completed solutions,
at most N (the best-scored; search-and-learn keeps the first N completed, and runs until no beam is
left rather than stopping once N are complete). Unlike search-and-learn, whose last round generates
without the step delimiter so every surviving beam finishes, a candidate still unfinished after
``iterations`` rounds does not vote; if none completed (a tight budget or bound), the beams alive at the
end stand in and the vote says so. Defaults: n = 16 (our choice: search-and-learn's recipes use 4 and its
blog sweeps 4..256), beam_width = 4 (search-and-learn's default, one of Snell et al.'s two choices with
sqrt(N)).

Budget: policy and PRM draw on one ledger. A call the budget cannot pay for is refused before anything is
spent; the search then stops and answers from the candidates already scored. Of the children generated
but not yet scored, the finished solutions join the pool with their parent's score as a stand-in (flagged
``unscored``: they were paid for, and a finished solution beats an unfinished beam as an answer); the
unfinished ones stay ``open`` and do not vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..errors import BudgetExhausted
from ..search.expand import Searcher
from ..search.fields import SearchFields, check_beam_shape
from ..search.select import Selection, build_result, finished, salvage
from ..search.tree import Node, Tree, by_score
from ..types import Result, TraceEvent

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem


@dataclass(frozen=True)
class BeamSearch(SearchFields):
    """Step-level beam search: N candidates per round, the top N / beam_width kept by the PRM."""

    name: ClassVar[str] = "beam_search"

    n: int = field(
        default=16, metadata={"help": "Candidates sampled per round (N); a multiple of beam_width."}
    )
    beam_width: int = field(
        default=4, metadata={"help": "Proposals per kept beam (M); n / beam_width beams are kept each round."}
    )
    iterations: int = field(default=40, metadata={"help": "Most rounds (steps) of expansion."})
    lookahead: int = field(
        default=0, metadata={"help": "Greedy steps rolled ahead to score a candidate (0: plain beam search)."}
    )
    selection: Selection = field(
        default="weighted",
        metadata={"help": "Final answer: weighted (summed PRM scores), naive or majority."},
    )
    filter_duplicates: bool = field(
        default=True,
        metadata={"help": "Drop an unfinished candidate whose text repeats a better-ranked one's."},
    )

    def __post_init__(self) -> None:
        check_beam_shape(
            self.n,
            self.beam_width,
            self.iterations,
            self.lookahead,
            self.selection,
            "n / beam_width beams are kept",
        )
        self.check_search_fields()

    @property
    def keep(self) -> int:
        """Beams kept per round."""
        return self.n // self.beam_width

    def solve(self, problem: Problem, generator: Meter) -> Result:
        events: list[TraceEvent] = []
        with self.searcher(self.name, problem, generator) as s:
            beams, done = self._search(s, events)
            # no completed solution (budget or bound): the beams alive at the end stand in, flagged
            pool_nodes, fallback = (done, False) if done else ([b for b in beams if b.id != 0], True)
            pool = [finished(s.tree, n) for n in pool_nodes]
            return build_result(
                self.name,
                generator,
                problem,
                s.tree,
                pool,
                self.selection,
                events,
                prm=s.prm.model_name,
                unfinished=fallback,
            )

    def _search(self, s: Searcher, events: list[TraceEvent]) -> tuple[list[Node], list[Node]]:
        """Rounds of expand, score, prune; returns (beams alive, completed solutions)."""
        beams: list[Node] = [s.tree.root]
        done: list[Node] = []
        reason = "iterations"
        for it in range(self.iterations):
            children: list[Node] = []
            try:
                self._expand(s, beams, children)
                self._score(s, children)
            except BudgetExhausted as e:
                reason = "budget"
                late = salvage(s.tree, children)  # generated this round, refused their judgement
                done.extend(late)
                events.append(
                    TraceEvent(
                        "stop",
                        {"reason": reason, "iteration": it, "note": str(e), "unscored": [c.id for c in late]},
                    )
                )
                break
            beams = self._prune(s.tree, children, done)
            events.append(_round_event(it, children, beams))
            if not beams or len(done) >= self.n:
                reason = "complete"
                break
        _keep_best(done, self.n)
        if reason != "budget":
            events.append(TraceEvent("stop", {"reason": reason, "completed": len(done)}))
        return beams, done

    def _expand(self, s: Searcher, beams: Sequence[Node], children: list[Node]) -> None:
        """n new candidates into ``children``: n first steps from the root, then the n samples spread over
        the beams (one call per share size; a refused later call leaves the earlier ones' children)."""
        counts = _spread(self.n, len(beams))
        for k in sorted(set(counts), reverse=True):
            parents = [b.id for b, c in zip(beams, counts, strict=True) if c == k]
            for group in s.expand(parents, k):
                children.extend(group)

    def _score(self, s: Searcher, children: Sequence[Node]) -> None:
        if self.lookahead == 0:
            s.score(children)
            return
        tails = s.lookahead(children, self.lookahead)
        for node, tail in zip(children, tails, strict=True):
            if tail:
                node.extra["lookahead"] = list(tail)
        s.score(children, tails)

    def _prune(self, tree: Tree, children: Sequence[Node], done: list[Node]) -> list[Node]:
        """Completed candidates go to the pool; the top n / beam_width unfinished ones stay as beams."""
        done.extend(c for c in children if c.terminal)
        live = sorted((c for c in children if not c.terminal), key=by_score)
        if self.filter_duplicates:
            live = _unique(tree, live)
        for i, c in enumerate(live):
            c.status = "chosen" if i < self.keep else "pruned"
        return live[: self.keep]


def _unique(tree: Tree, ranked: Sequence[Node]) -> list[Node]:
    """``ranked`` without the candidates whose partial solution repeats an earlier one's, word for word;
    each dropped one is marked pruned with the node it duplicates."""
    first: dict[str, Node] = {}
    out: list[Node] = []
    for c in ranked:
        text = tree.prefix(c.id)
        if text in first:
            c.status = "pruned"
            c.extra["duplicate_of"] = first[text].id
        else:
            first[text] = c
            out.append(c)
    return out


def _spread(n: int, beams: int) -> list[int]:
    """Samples per beam: n over the beams as evenly as possible, the extra ones to the best beams."""
    base, extra = divmod(n, beams)
    return [base + (1 if i < extra else 0) for i in range(beams)]


def _keep_best(done: list[Node], n: int) -> None:
    """Keep the n best-scored completed solutions (Snell et al. end with N candidates)."""
    ranked = sorted(done, key=by_score)
    for node in ranked[:n]:
        node.status = "complete"
    for node in ranked[n:]:
        node.status = "pruned"
    done[:] = ranked[:n]


def _round_event(it: int, children: Sequence[Node], beams: Sequence[Node]) -> TraceEvent:
    return TraceEvent(
        "round",
        {
            "iteration": it,
            "parents": sorted({c.parent for c in children if c.parent is not None}),
            "candidates": [c.id for c in children],
            "kept": [b.id for b in beams],
            "completed": [c.id for c in children if c.terminal],
            "duplicates": [c.id for c in children if "duplicate_of" in c.extra],
        },
    )
