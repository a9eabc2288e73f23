"""Process scorers: score every step of partial solutions, and the ways to fold step scores into one.

A :class:`ProcessScorer` (a process reward model, PRM) sees candidate solutions as lists of steps and
returns, for each candidate, one score per step so far: the probability that the step is correct given
the steps before it (Lightman et al. 2023, "Let's Verify Step by Step", arXiv 2305.20050). Higher is
better, and every score must be a finite number: a scorer that returns NaN, or no score, for a step
makes :func:`checked_step_scores` raise :class:`~ttscale.errors.GenerationError` naming the model and the
step, never a silent zero that would steer a search.

Registered here by name (:func:`build_process_scorer`):

- ``llm_judge_prm``: P(Yes) of a judge model asked whether the latest step is correct
  (:mod:`ttscale.scorers.prm_judge`), one batched call per scoring round, prefix-cache friendly;
- ``hf:<model id or folder>``: a trained PRM run with transformers (Qwen2.5-Math-PRM, Math-Shepherd;
  :mod:`ttscale.scorers.hf_prm`, optional extra ``hf``), metered under its own name;
- ``orm:<outcome scorer>``: an outcome scorer of :data:`ttscale.scorers.SCORERS` applied to each prefix of
  steps (:class:`OrmAsPrm`), e.g. ``orm:llm_judge``. Only scorers that read text qualify: a partial
  solution has no policy logprobs to read.

Aggregation (:func:`aggregate`) folds a solution's step scores into one number:

- ``last``: the last step's score. Snell et al. 2024 (arXiv 2408.03314, appendix on PRM aggregation)
  found it best, and Hugging Face search-and-learn uses it by default: a PRM trained on reward-to-go
  already judges the whole prefix at each step.
- ``prod``: the product, P(all steps correct) if steps were independent (Lightman et al. 2023).
- ``min``: the weakest step, common in PRM work (e.g. Wang et al. 2024, Math-Shepherd, arXiv 2312.08935).
- ``mean``: the average, a gentler alternative to ``min``.

Under ``last`` the searches ask only for the last step's score (:func:`checked_last_scores`). The step
judge and ORM-as-PRM then judge one prefix per candidate instead of every prefix
(:class:`LastStepScorer`); a trained PRM scores every step in one forward pass anyway and is read as
before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from ..backends.base import Generator
from ..errors import CapabilityError, ConfigError, GenerationError
from ..types import Problem, Prompt
from .base import OutcomeScorer, Sample

Aggregation = Literal["last", "min", "prod", "mean"]
AGGREGATIONS: tuple[Aggregation, ...] = ("last", "min", "prod", "mean")

LLM_JUDGE_PRM = "llm_judge_prm"
ORM_PREFIX = "orm:"
HF_PREFIX = "hf:"


class ProcessScorer(Protocol):
    """Scores the steps of candidate solutions to one problem. Batched, shape-stable, higher is better."""

    @property
    def model_name(self) -> str:
        """The model behind the scores, for error messages and traces."""
        ...

    def score_steps(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each candidate (a sequence of steps), one score per step, in order."""
        ...


@runtime_checkable
class LastStepScorer(ProcessScorer, Protocol):
    """A process scorer that can judge only the last step of each candidate, for less than all of them.

    With ``last`` aggregation a search needs nothing else, and for a judge model the earlier steps cost a
    prompt and a verdict each: an MCTS rollout of six steps would be judged six times to use one score.
    """

    def score_last(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[float]:
        """For each candidate (a non-empty sequence of steps), the score of its last step."""
        ...


def aggregate(scores: Sequence[float], how: Aggregation) -> float:
    """One score for a solution from its step scores (see the module docstring for the choices)."""
    if not scores:
        raise ConfigError("cannot aggregate the step scores of a solution with no steps")
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    if how == "mean":
        return math.fsum(scores) / len(scores)
    raise ConfigError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {how!r}")


def checked_step_scores(
    scorer: ProcessScorer, problem: Problem, steps: Sequence[Sequence[str]]
) -> list[list[float]]:
    """``scorer.score_steps``, refusing a missing or non-finite score with a named GenerationError."""
    if not steps:
        return []
    out = scorer.score_steps(problem, steps)
    if len(out) != len(steps):
        raise GenerationError(
            f"process scorer {scorer.model_name!r} scored {len(out)} of {len(steps)} candidate solutions"
        )
    for i, (cand, scores) in enumerate(zip(steps, out, strict=True)):
        for j in range(len(cand)):
            if j >= len(scores):
                raise GenerationError(
                    f"process scorer {scorer.model_name!r} gave no score for step {j + 1} of candidate {i}"
                )
            value: object = scores[j]
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise GenerationError(
                    f"process scorer {scorer.model_name!r} gave {value!r} instead of a finite score for "
                    f"step {j + 1} of candidate {i}"
                )
    return [list(s[: len(c)]) for c, s in zip(steps, out, strict=True)]


def checked_last_scores(
    scorer: ProcessScorer, problem: Problem, steps: Sequence[Sequence[str]]
) -> list[float]:
    """The last step's score of each candidate: ``score_last`` where the scorer has it (judging nothing
    else), else the last of :func:`checked_step_scores`; a missing or non-finite score is refused alike."""
    for i, cand in enumerate(steps):
        if not cand:
            raise ConfigError(f"candidate {i} has no steps: there is no last step to score")
    if not isinstance(scorer, LastStepScorer):
        return [s[-1] for s in checked_step_scores(scorer, problem, steps)]
    out = scorer.score_last(problem, steps) if steps else []
    if len(out) != len(steps):
        raise GenerationError(
            f"process scorer {scorer.model_name!r} scored {len(out)} of {len(steps)} candidate solutions"
        )
    for i, (cand, value) in enumerate(zip(steps, out, strict=True)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise GenerationError(
                f"process scorer {scorer.model_name!r} gave {value!r} instead of a finite score for "
                f"step {len(cand)} of candidate {i}"
            )
    return [float(v) for v in out]


class OrmAsPrm:
    """An outcome scorer applied to each prefix of steps: step k's score is the score of steps 1..k.

    Prefixes already scored in this solve are remembered (a search scores the same prefixes again and
    again), and everything new goes to the outcome scorer in one batched call. Each prefix is handed over
    with ``prompt``, the search's own conversation, so a judge that continues it (``followup_judge``)
    reads the steps the search already decoded from the prefix cache.
    """

    def __init__(
        self,
        outcome: OutcomeScorer,
        model_name: str,
        *,
        separator: str = "\n\n",
        prompt: Prompt | None = None,
    ) -> None:
        if outcome.policy_logprobs > 0:
            raise CapabilityError(
                "orm_as_prm needs an outcome scorer that reads text (such as llm_judge): a partial solution "
                "carries no policy logprobs"
            )
        self.outcome = outcome
        self.separator = separator
        self.prompt = prompt
        self._model_name = model_name
        self._memo: dict[tuple[str, tuple[str, ...]], float] = {}

    @property
    def model_name(self) -> str:
        return self._model_name

    def score_steps(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[list[float]]:
        self._score_new(
            [(problem.question, tuple(c[:k])) for c in steps for k in range(1, len(c) + 1)], problem
        )
        return [
            [self._memo.get((problem.question, tuple(c[:k])), math.nan) for k in range(1, len(c) + 1)]
            for c in steps
        ]

    def score_last(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[float]:
        """Each candidate's whole text scored once (its last step's score), no shorter prefix."""
        self._score_new([(problem.question, tuple(c)) for c in steps], problem)
        return [self._memo.get((problem.question, tuple(c)), math.nan) for c in steps]

    def _score_new(self, keys: Sequence[tuple[str, tuple[str, ...]]], problem: Problem) -> None:
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        if todo:
            texts = [Sample(self.separator.join(prefix), prompt=self.prompt) for _, prefix in todo]
            scores = self.outcome.score(problem, texts)
            self._memo.update(zip(todo, scores, strict=False))


def check_prm_name(name: str) -> None:
    """Raise ConfigError unless ``name`` is ``llm_judge_prm`` or ``orm:<registered outcome scorer>``."""
    from . import SCORERS

    if name == LLM_JUDGE_PRM:
        return
    if name.startswith(HF_PREFIX):
        if not name[len(HF_PREFIX) :].strip():
            raise ConfigError(
                "prm=hf: needs a model: prm=hf:Qwen/Qwen2.5-Math-PRM-7B or prm=hf:/path/to/model"
            )
        return
    if name.startswith(ORM_PREFIX) and name[len(ORM_PREFIX) :] in SCORERS:
        return
    known = ", ".join(ORM_PREFIX + n for n in SCORERS.names())
    raise ConfigError(f"prm must be {LLM_JUDGE_PRM}, hf:<Hugging Face PRM> or one of {known}, got {name!r}")


def prm_needs_judge(name: str) -> bool:
    """Whether the process scorer ``name`` calls a judge model (the policy itself unless another is named)."""
    from . import SCORERS

    check_prm_name(name)
    if name.startswith(HF_PREFIX):
        return False  # the PRM is its own model, loaded by transformers, not a generator
    return name == LLM_JUDGE_PRM or SCORERS.get(name[len(ORM_PREFIX) :]).needs_judge


def build_process_scorer(
    name: str,
    policy: Generator,
    judge: Generator | None,
    *,
    separator: str = "\n\n",
    prompt: Prompt | None = None,
) -> ProcessScorer:
    """The process scorer ``name`` for one solve; ``judge`` (a metered generator) defaults to the policy.
    ``prompt`` is the search's conversation (an outcome scorer as PRM may continue it)."""
    from . import SCORERS
    from .prm_judge import LLMJudgePRM

    check_prm_name(name)
    if name.startswith(HF_PREFIX):
        from .hf_prm import MeteredHFPRM, load_hf_prm

        return MeteredHFPRM(load_hf_prm(name[len(HF_PREFIX) :]), getattr(policy, "ledger", None))
    grader = judge if judge is not None else policy
    if name == LLM_JUDGE_PRM:
        return LLMJudgePRM(grader)
    spec = SCORERS.get(name[len(ORM_PREFIX) :])
    outcome = spec.build(policy, judge if spec.needs_judge else None)
    who = grader.model.name if spec.needs_judge else f"{name} on {policy.model.name}"
    return OrmAsPrm(outcome, who, separator=separator, prompt=prompt)
