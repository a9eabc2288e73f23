"""LLM-as-a-judge outcome scorer: the probability that a model answers "Yes" to "Is this solution correct?".

Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena" (arXiv 2306.05685), grade an
answer by prompting a model as the grader. To get a graded score rather than a binary verdict we read the
verdict token's probability, as generative verifiers do (Zhang et al. 2024, "Generative Verifiers: Reward
Modeling as Next-Token Prediction", arXiv 2408.15240, score a solution by p("Yes" | question, solution,
"Is the answer correct (Yes/No)?")). One batched call decodes a single token per candidate (temperature
0, top-20 logprobs), and::

    Y = sum of p(t) over "Yes" tokens in the top-20,  N = the same over "No" tokens,
    score = Y / (Y + N)

"Yes" tokens are the first token of each of "Yes", " Yes", "yes", " yes" in the judge's own vocabulary
(a chat model may open its turn with or without a space, capitalised or not); "No" tokens likewise. A
first token the two sets share (a bare space) says nothing and is dropped from both.

Normalising against Y + N (instead of using Y alone) removes the mass the judge puts on other openings
("The", "**", "Let"), which reflects how it likes to *start* an answer, not whether the solution is right.
A token outside the top-20 has less probability than every listed one, so treating it as 0 moves the score
by little. When neither a Yes nor a No token is in the top-20 (or the judge produced no token record at
all), there is no evidence either way and the score is 0.5, the uninformed midpoint: never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..backends.base import Generator, Tokenizer, require
from ..compute import span_flops
from ..errors import CapabilityError
from ..prompts import cot_prompt
from ..types import Completion, Message, Problem, Prompt, SamplingParams
from .base import Sample, ScorerSpec

YES_WORDS = ("Yes", " Yes", "yes", " yes")
NO_WORDS = ("No", " No", "no", " no")

JUDGE_SYSTEM_PROMPT = (
    "You are a strict, careful grader of math solutions. You check each step of the reasoning and the "
    "final answer, and you never accept a solution that is merely plausible."
)
"""System prompt of the judge."""

JUDGE_TEMPLATE = (
    "Below is a math problem and a proposed solution.\n\n"
    "Problem:\n{question}\n\n"
    "Proposed solution:\n{solution}\n\n"
    "Check the reasoning step by step and check the final answer. "
    "Is this solution correct? Answer Yes or No."
)
"""User message of the judge: the Yes/No question comes last, so the judge's next token is its verdict."""

FOLLOWUP_QUESTION = (
    "Check the solution above step by step and check its final answer. "
    "Is the solution correct? Answer Yes or No."
)
"""The user turn :class:`FollowupJudge` adds after the solution; the verdict is the reply's first token."""

COST_MARGIN = 32
"""Judge tokens allowed per sample beyond its policy tokens when estimating the judging cost (the response
prefix and re-tokenisation at the seams; a judge with a different tokenizer may need more, and then the
meter, not this estimate, has the last word)."""


@dataclass(frozen=True)
class Verdict:
    """The judge's answer to one candidate."""

    score: float
    """Y / (Y + N), or 0.5 when neither was among the top logprobs."""
    yes: float
    """Probability mass on "Yes" tokens among the top logprobs."""
    no: float
    """Probability mass on "No" tokens among the top logprobs."""


def verdict_token_ids(tokenizer: Tokenizer) -> tuple[frozenset[int], frozenset[int]]:
    """The first-token ids of the Yes words and of the No words, minus any id the two share."""
    yes = frozenset(ids[0] for w in YES_WORDS if (ids := tokenizer.encode(w)))
    no = frozenset(ids[0] for w in NO_WORDS if (ids := tokenizer.encode(w)))
    return yes - no, no - yes


class LLMJudge:
    """Scores candidates by a judge model's P(Yes). Any generator works: the policy itself or another model.

    Pass a :class:`~ttscale.compute.Meter` from the solve's ledger (``ledger.meter(judge)``) so the judge's
    tokens are counted under its model name and drawn from the same budget.
    """

    def __init__(self, generator: Generator, *, top_logprobs: int = 20) -> None:
        who = "the llm_judge scorer"
        require(generator, who=who, logprobs=top_logprobs, tokenizer=True)
        if not isinstance(generator, Tokenizer):
            raise CapabilityError(f"{who} needs encode/decode on its generator; wrap the judge in a Meter")
        self.generator = generator
        self.top_logprobs = top_logprobs
        self.yes_ids, self.no_ids = verdict_token_ids(generator)
        if not (self.yes_ids and self.no_ids):
            raise CapabilityError(f"{who}: the judge's tokenizer gives Yes and No the same first token")

    @property
    def policy_logprobs(self) -> int:
        return 0  # the judge reads the text; the policy's logprobs are not needed

    def prompt(self, problem: Problem, solution: str) -> Prompt:
        """The judge prompt for one candidate solution."""
        text = JUDGE_TEMPLATE.format(question=problem.question.strip(), solution=solution.strip())
        return Prompt.user(text, system=JUDGE_SYSTEM_PROMPT)

    def sample_prompt(self, problem: Problem, sample: Sample) -> Prompt:
        """The judge prompt for one sample (this judge reads only its text)."""
        return self.prompt(problem, sample.text)

    def cost(self, problem: Problem, sample_tokens: Sequence[int]) -> tuple[int, float]:
        base = self.generator.count_prompt_tokens([self.sample_prompt(problem, Sample(""))])[0]
        tokens, flops = 0, 0.0
        for t in sample_tokens:
            length = base + t + COST_MARGIN + 1  # the prompt with the solution in it, plus the verdict token
            tokens += length
            flops += span_flops(self.generator.model, 0, length)
        return tokens, flops

    def verdicts(self, problem: Problem, samples: Sequence[Sample]) -> list[Verdict]:
        """One judge call for all samples: a single greedy token each, with its top logprobs."""
        if not samples:
            return []
        params = SamplingParams(n=1, max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        out = self.generator.generate([self.sample_prompt(problem, s) for s in samples], params)
        return [self.read(group[0]) for group in out]

    def read(self, completion: Completion) -> Verdict:
        """The verdict in the first token record of a judge completion."""
        records = completion.logprobs or ()
        top = records[0].top if records else ()
        yes = math.fsum(math.exp(lp) for tid, lp in top if tid in self.yes_ids)
        no = math.fsum(math.exp(lp) for tid, lp in top if tid in self.no_ids)
        score = yes / (yes + no) if yes + no > 0 else 0.5
        return Verdict(score, yes, no)

    def score(self, problem: Problem, samples: Sequence[Sample]) -> list[float]:
        return [v.score for v in self.verdicts(problem, samples)]


class FollowupJudge(LLMJudge):
    """The judge's question asked as the next turn of the conversation that produced the solution.

    The prompt is the policy's own conversation, its response as a closed assistant turn, then
    :data:`FOLLOWUP_QUESTION` as a user turn; the verdict is read as :class:`LLMJudge` reads it. When the
    policy judges itself on a backend with a prefix cache, everything up to the question is the sequence
    it has just generated, so judging a solution prefills a few dozen tokens instead of the whole
    solution again (:data:`JUDGE_TEMPLATE` restates question and solution in a new conversation). This is
    self-verification in context (Weng et al. 2023, "Large Language Models are Better Reasoners with
    Self-Verification", arXiv 2212.09561, ask the model about its own answer); a model may favour what
    it just wrote, which is why :class:`LLMJudge`, a fresh grader, stays the default.

    ORM-as-PRM in a tree search hands each partial solution over with the search's own step prompt, so
    the judge continues the search's sequences too. A sample without a prompt is placed in the zero-shot
    CoT conversation.
    """

    def sample_prompt(self, problem: Problem, sample: Sample) -> Prompt:
        base = sample.prompt
        if base is None:
            base = cot_prompt(problem.question, continue_prefix=False)
        turns = (Message("assistant", sample.text), Message("user", FOLLOWUP_QUESTION))
        return Prompt((*base.messages, *turns))


def _build(policy: Generator, judge: Generator | None) -> LLMJudge:
    return LLMJudge(judge if judge is not None else policy)


def _build_followup(policy: Generator, judge: Generator | None) -> LLMJudge:
    return FollowupJudge(judge if judge is not None else policy)


SPEC = ScorerSpec(
    _build, needs_judge=True, summary="P(Yes) of a judge model asked whether the solution is correct"
)
"""The registry entry of ``llm_judge``."""

FOLLOWUP_SPEC = ScorerSpec(
    _build_followup,
    needs_judge=True,
    summary="P(Yes) to 'Is the solution correct?' asked as the next turn of the solution's own conversation",
)
"""The registry entry of ``followup_judge``."""
