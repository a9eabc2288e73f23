"""Hyperparameters every step-wise search shares, and how a solve sets up its searcher.

Beam search, DVTS and MCTS all sample steps from the policy and score them with a process scorer, so the
fields for those two halves are declared once here and inherited; each strategy adds its own. Defaults
follow Hugging Face search-and-learn (``sal/config.py``): temperature 0.8, top_p 1.0 (no top-k), and
``agg_strategy="last"`` (Snell et al. 2024). ``max_step_tokens`` is 256 here, not search-and-learn's 2048:
that cap ends whole solutions there, while here a step that reaches it is cut and the solution goes on
(see :mod:`ttscale.search.steps`), and a paragraph of math rarely needs more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..backends.base import require
from ..scorers.process import (
    AGGREGATIONS,
    Aggregation,
    build_process_scorer,
    check_prm_name,
    prm_needs_judge,
)
from ..strategies.base import check, check_sampling
from ..types import Problem
from .expand import Searcher
from .steps import StepFormat
from .tree import Tree

if TYPE_CHECKING:
    from ..backends.base import Generator
    from ..compute import Meter


@dataclass(frozen=True)
class SearchFields:
    """The step-sampling and process-scoring hyperparameters of a tree search."""

    logprob_summaries: ClassVar[bool] = False
    """A solution is assembled from steps and carries its process score, not a logprob summary, so an
    evaluation does not ask the step calls for logprobs (:func:`~ttscale.strategies.base.logprob_summaries`)."""

    prm: str = field(
        default="llm_judge_prm",
        metadata={
            "help": "Process scorer: llm_judge_prm (a judge's P(Yes) per step), hf:<Hugging Face PRM> "
            "(e.g. hf:Qwen/Qwen2.5-Math-PRM-7B; extra 'hf') or orm:<outcome scorer> (e.g. orm:llm_judge, "
            "applied to each prefix of steps)."
        },
    )
    prm_model: str | None = field(
        default=None,
        metadata={"help": "Judge model of the process scorer; none means the policy model judges itself."},
    )
    aggregation: Aggregation = field(
        default="last",
        metadata={
            "help": "Step scores to one score: last (Snell et al., search-and-learn), min, prod, mean."
        },
    )
    steps: str = field(
        default="blank_line",
        metadata={"help": "Step separator: blank_line (paragraphs), newline, step_markers, regex:<pattern>."},
    )
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of each step."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1 disables it)."})
    top_k: int = field(default=0, metadata={"help": "Keep the k most likely tokens (0 disables it)."})
    max_step_tokens: int = field(
        default=256, metadata={"help": "Most tokens per step; a longer step is cut and the solution goes on."}
    )
    seed: int | None = field(
        default=None,
        metadata={"help": "Base seed; each call takes the next seeds, so a seed reproduces a search."},
    )

    def check_search_fields(self) -> None:
        """Validate the shared fields (strategies call it from ``__post_init__``)."""
        check(self.max_step_tokens >= 1, "max_step_tokens", "an integer >= 1", self.max_step_tokens)
        check_sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)
        check(self.aggregation in AGGREGATIONS, "aggregation", " or ".join(AGGREGATIONS), self.aggregation)
        check_prm_name(self.prm)
        StepFormat.parse(self.steps)
        rule = f"none with prm {self.prm!r}, which calls no judge"
        check(self.prm_model is None or prm_needs_judge(self.prm), "prm_model", rule, self.prm_model)
        check(
            self.prm_model is None or bool(self.prm_model.strip()),
            "prm_model",
            "a name or none",
            self.prm_model,
        )

    @contextmanager
    def searcher(self, who: str, problem: Problem, policy: Meter) -> Iterator[Searcher]:
        """The searcher of one solve; a separate judge model is opened for it and closed after."""
        fmt = StepFormat.parse(self.steps)
        regex = fmt.kind == "regex"
        require(policy, who=who, continue_prefix=True, stopping_criteria=regex, tokenizer=regex)
        with self._judge(policy) as judge:
            # a missing judge capability fails here, before the policy samples anything
            prompt = fmt.prompt(problem.question)
            prm = build_process_scorer(self.prm, policy, judge, separator=fmt.separator, prompt=prompt)
            yield Searcher(
                policy,
                problem,
                Tree(prompt),
                fmt,
                prm,
                self.aggregation,
                self.temperature,
                self.top_p,
                self.top_k,
                self.max_step_tokens,
                self.seed,
                judge=judge if judge is not None else policy,
            )

    @contextmanager
    def _judge(self, policy: Meter) -> Iterator[Generator | None]:
        if not prm_needs_judge(self.prm):
            yield None
        elif self.prm_model is None or self.prm_model == policy.model.name:
            yield policy
        else:
            from ..strategies.best_of_n import open_judge

            opened = open_judge(self.prm_model)
            try:
                yield policy.ledger.meter(opened)  # one ledger: one budget, usage under the judge's name
            finally:
                opened.close()


def check_beam_shape(
    n: int, beam_width: int, iterations: int, lookahead: int, selection: str, kept: str
) -> None:
    """Validate the shape beam search and DVTS share; ``kept`` says what n / beam_width counts."""
    from .select import SELECTIONS

    check(beam_width >= 1, "beam_width", "an integer >= 1", beam_width)
    check(n >= 1, "n", "an integer >= 1", n)
    check(n % beam_width == 0, "n", f"a multiple of beam_width ({beam_width}), so that {kept}", n)
    check(iterations >= 1, "iterations", "an integer >= 1", iterations)
    check(lookahead >= 0, "lookahead", "an integer >= 0", lookahead)
    check(selection in SELECTIONS, "selection", " or ".join(SELECTIONS), selection)
