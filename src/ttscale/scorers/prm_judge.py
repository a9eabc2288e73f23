"""An LLM judge as a process reward model: P(Yes) that the latest step of a partial solution is correct.

The verdict is read exactly as the outcome judge reads it (:mod:`ttscale.scorers.llm_judge`, whose
:class:`~ttscale.scorers.llm_judge.LLMJudge` this scorer uses): one greedy token with its top-20
logprobs, ``score = Y / (Y + N)`` over the judge's own first tokens of Yes and No. The difference is the
question. For a candidate with steps s_1..s_K, step k is scored by the judge's answer to::

    [system]  PRM_JUDGE_SYSTEM_PROMPT
    [user]    PRM_JUDGE_HEADER(problem)  "Step 1: s_1\\n\\n" ... "Step k: s_k\\n\\n"  PRM_JUDGE_QUESTION(k)

so the judge sees the problem and the steps up to k (never later ones) and answers for step k alone.

Prefix reuse. Everything before the closing question is the same text for step k and for step k+1, so
the judge prompt of step k+1 is the prompt of step k with its question (and the chat template's
end-of-turn and assistant header, a dozen tokens) replaced by "Step k+1: s_{k+1}\\n\\n" and a new question.
On a backend with a prefix cache, scoring one more step prefills only that step and the question: the
shared token prefix is served from cache. The layout needs no assistant-prefix continuation (the steps sit
in the user message), so any backend with logprobs and a tokenizer can judge.

Memo. Tree search scores the same prefixes over and over (every child repeats its parent's steps), and a
step's score depends only on the steps up to it, so each (problem, steps 1..k) is judged once per scorer
(one scorer lives for one solve); each call to :meth:`LLMJudgePRM.score_steps` sends all new prefixes in
one batched generate call, ordered so that the prefixes of one candidate are adjacent.
:meth:`LLMJudgePRM.score_last` judges only each candidate's whole path (all ``last`` aggregation reads),
through the same memo.

Failures are loud. A judge completion without a token record, or with a NaN logprob, raises
:class:`~ttscale.errors.GenerationError` naming the judge model and the step (the outcome judge's
"no Yes/No among the top-20: 0.5" rule stays: that is a real verdict of no evidence).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..backends.base import Generator
from ..errors import GenerationError
from ..types import Completion, Problem, Prompt, SamplingParams
from .llm_judge import LLMJudge

PRM_JUDGE_SYSTEM_PROMPT = (
    "You are a strict, careful grader of math solutions. You judge one step at a time: a step is correct "
    "when its reasoning and arithmetic are right and it follows from the problem and the steps before it."
)
"""System prompt of the step judge."""

PRM_JUDGE_HEADER = (
    "Below is a math problem and the beginning of a proposed solution, one step per paragraph.\n\n"
    "Problem:\n{question}\n\nSolution so far:\n\n"
)
"""Start of the user message; the same for every step of every candidate (it must not mention k)."""

PRM_STEP_BLOCK = "Step {index}: {text}\n\n"
"""One step of the solution as the judge reads it."""

PRM_JUDGE_QUESTION = "Check step {index} carefully. Is step {index} correct? Answer Yes or No."
"""The closing question; the judge's next token is its verdict on step ``index``."""

Key = tuple[str, tuple[str, ...]]

_STEP_LABEL = re.compile(r"^\s*(?:\*\*)?Step\s*\d+\s*[:.](?:\*\*)?\s*", re.IGNORECASE)


def _unlabelled(step: str) -> str:
    """A step without the "Step k:" label the policy may have written (``steps=step_markers``): the judge's
    prompt numbers the steps itself, and two labels (maybe disagreeing) would only confuse it."""
    return _STEP_LABEL.sub("", step.strip(), count=1) or step.strip()


class LLMJudgePRM:
    """Scores each step by a judge model's P(Yes) to "Is step k correct?". Any generator with logprobs.

    Pass a :class:`~ttscale.compute.Meter` from the solve's ledger so the judge draws on the same budget
    and its tokens count under its own model name.
    """

    def __init__(self, generator: Generator, *, top_logprobs: int = 20) -> None:
        # the outcome judge resolves the Yes/No token ids and checks logprobs + tokenizer capabilities
        self._judge = LLMJudge(generator, top_logprobs=top_logprobs)
        self.generator = generator
        self.top_logprobs = top_logprobs
        self._memo: dict[Key, float] = {}

    @property
    def model_name(self) -> str:
        return self.generator.model.name

    def prompt(self, problem: Problem, steps: Sequence[str]) -> Prompt:
        """The judge prompt asking about the last of ``steps``."""
        header = PRM_JUDGE_HEADER.format(question=problem.question.strip())
        blocks = "".join(PRM_STEP_BLOCK.format(index=i, text=_unlabelled(s)) for i, s in enumerate(steps, 1))
        question = PRM_JUDGE_QUESTION.format(index=len(steps))
        return Prompt.user(header + blocks + question, system=PRM_JUDGE_SYSTEM_PROMPT)

    def score_steps(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[list[float]]:
        where: dict[Key, tuple[int, int]] = {}  # prefix -> (candidate, step) of its first occurrence
        for i, cand in enumerate(steps):
            for k in range(1, len(cand) + 1):
                key = (problem.question, tuple(cand[:k]))
                if key not in self._memo:
                    where.setdefault(key, (i, k))
        if where:
            self._judge_all(problem, where)
        return [
            [self._memo[(problem.question, tuple(cand[:k]))] for k in range(1, len(cand) + 1)]
            for cand in steps
        ]

    def score_last(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[float]:
        """Only each candidate's last step judged (what ``last`` aggregation reads); memo shared."""
        where: dict[Key, tuple[int, int]] = {}
        for i, cand in enumerate(steps):
            key = (problem.question, tuple(cand))
            if key not in self._memo:
                where.setdefault(key, (i, len(cand)))
        if where:
            self._judge_all(problem, where)
        return [self._memo[(problem.question, tuple(cand))] for cand in steps]

    def _judge_all(self, problem: Problem, where: dict[Key, tuple[int, int]]) -> None:
        todo = sorted(where, key=lambda key: where[key])  # a candidate's prefixes side by side
        params = SamplingParams(n=1, max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        out = self.generator.generate([self.prompt(problem, key[1]) for key in todo], params)
        for key, group in zip(todo, out, strict=True):
            self._memo[key] = self._verdict(group[0], *where[key])

    def _verdict(self, completion: Completion, candidate: int, step: int) -> float:
        where = f"step {step} of candidate {candidate}"
        if not completion.logprobs and not completion.token_ids and completion.finish_reason == "eos":
            # the judge ended its turn instead of answering (the engine keeps no record for an end-of-turn
            # token): no evidence either way, the midpoint, as the outcome judge reads a missing verdict
            return 0.5
        if not completion.logprobs:
            raise GenerationError(
                f"judge model {self.model_name!r} returned no verdict token record for {where}; "
                "the process scorer needs the verdict's top logprobs"
            )
        v = self._judge.read(completion)
        if not all(math.isfinite(x) for x in (v.yes, v.no, v.score)):
            raise GenerationError(
                f"judge model {self.model_name!r} gave a NaN/infinite verdict probability for {where}"
            )
        return v.score
