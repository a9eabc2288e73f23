"""Adaptive consistency: self-consistency that stops sampling once the majority is statistically clear.

Aggarwal et al. 2023, "Let's Sample Step by Step: Adaptive-Consistency for Efficient Reasoning and Coding
with LLMs" (arXiv 2305.11860). Samples are drawn a few at a time; after each draw, with v1 and v2 the
votes of the two leading answers, the Beta stopping criterion asks how likely it is that the leader is
truly the more probable answer, p1 > p2, under a uniform prior on their relative share::

    P(p1 > p2 | v1, v2) = P(X > 1/2),  X ~ Beta(v1 + 1, v2 + 1)
                        = sum_{j=0}^{v1} C(v1 + v2 + 1, j) / 2^(v1 + v2 + 1)

and stops as soon as it reaches ``threshold`` (the paper's default 0.95). The second line is the
binomial form of the regularised incomplete beta function for integer parameters, so it is computed
exactly with integers (the reference code integrates numerically with scipy). With 0.95, unanimous
samples stop at 4 (P = 1 - 2^-5 = 0.969) and not at 3 (P = 1 - 2^-4 = 0.9375).

Defaults. The paper caps sampling at 40 (its self-consistency baseline); ``max_n`` defaults to 16, the
largest sample count of this project's benchmark, so the two strategies are compared at equal worst-case
cost. The paper draws one sample at a time, which gives the fewest samples; ``batch_size`` (default 2)
trades up to ``batch_size - 1`` extra samples per solve for wall-clock speed, because a batched engine
decodes two sequences in little more time than one (memory-bound decoding) and the prompt is prefilled
once per call. With ``batch_size=1`` the paper's rule is reproduced exactly. Sampling settings match
``self_consistency``.

Answers are compared by equivalence (:func:`ttscale.answers.group_answers`); samples without an answer
neither vote nor count towards v1, v2. The budget is respected as in ``self_consistency``: the strategy
stops drawing when the budget cannot pay for one more sample (a budget too small for even one sample
raises ``BudgetExhausted``). The trace's ``stop`` event reports the samples used and those saved
against ``max_n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

from ..answers import extract_answer, group_answers
from ..prompts import cot_prompt
from ..types import Completion, Result, SamplingParams, TraceEvent
from .base import check, check_sampling, path_params, sample_event
from .voting import answer_numbers, draw_batch, vote

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem, Prompt


def beta_stop_probability(v1: int, v2: int) -> Fraction:
    """P(p1 > p2) after v1 and v2 votes: P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1), exactly."""
    if v1 < 0 or v2 < 0:
        raise ValueError(f"vote counts must be >= 0, got {v1} and {v2}")
    n = v1 + v2 + 1
    return Fraction(sum(math.comb(n, j) for j in range(v1 + 1)), 2**n)


@dataclass(frozen=True)
class AdaptiveConsistency:
    """Self-consistency with the Beta stopping criterion: sample until the leading answer is clear."""

    name: ClassVar[str] = "adaptive_consistency"

    max_n: int = field(
        default=16, metadata={"help": "Most samples to draw (the paper uses 40; 16 matches the benchmark)."}
    )
    threshold: float = field(
        default=0.95, metadata={"help": "Stop once P(p1 > p2 | votes) under the Beta model reaches this."}
    )
    batch_size: int = field(
        default=2,
        metadata={"help": "Samples drawn between checks (the paper: 1; larger is faster, may overshoot)."},
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of each path."})
    top_k: int = field(
        default=40, metadata={"help": "Keep the k most likely tokens before top-p (fast on llama.cpp)."}
    )
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, applied after top-k."})
    max_tokens: int = field(default=512, metadata={"help": "Most tokens per reasoning path."})
    seed: int | None = field(
        default=None, metadata={"help": "Base seed; sample i uses seed + i, so a seed reproduces the run."}
    )

    def __post_init__(self) -> None:
        check(self.max_n >= 1, "max_n", "an integer >= 1", self.max_n)
        check_sampling(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, max_tokens=self.max_tokens
        )
        check(0 <= self.threshold <= 1, "threshold", "in [0, 1]", self.threshold)
        check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)
        samples, answers, trace = self._sample(prompt, problem, generator)
        texts = [prompt.assistant_prefix + c.text for c in samples]
        events = [
            sample_event(i, t, c, a, m, a is not None)
            for i, (t, c, (a, m)) in enumerate(zip(texts, samples, answers, strict=True))
        ]
        result = vote(
            [c.text for c in samples],
            [a for a, _ in answers],
            problem.answer_kind,
            numbers=answer_numbers(problem),
        )
        best = result.best
        return Result(
            answer=best.answer if best else None,
            response=texts[best.samples[0]] if best else texts[0],
            strategy=self.name,
            model=generator.model.name,
            candidates=result.candidates,
            confidence=best.votes / len(samples) if best else None,
            trace=(*events, *trace, result.event(samples=len(samples), requested=self.max_n)),
        )

    def _params(self, k: int, first_index: int) -> SamplingParams:
        return path_params(self, k, first_index)

    def _sample(
        self, prompt: Prompt, problem: Problem, generator: Meter
    ) -> tuple[list[Completion], list[tuple[str | None, str]], list[TraceEvent]]:
        """Draw batches until the criterion holds, ``max_n`` is reached or the budget runs out."""
        samples: list[Completion] = []
        answers: list[tuple[str | None, str]] = []  # (answer, extraction method) per sample
        checks: list[TraceEvent] = []
        reason, prob = "max_n", Fraction(0)
        while len(samples) < self.max_n:
            want = min(self.batch_size, self.max_n - len(samples))
            batch = draw_batch(generator, prompt, self._params, want, samples)
            if not batch:
                reason = "budget"
                break
            samples.extend(batch)
            for c in batch:
                e = extract_answer(prompt.assistant_prefix + c.text, problem.answer_kind)
                answers.append((e.value, e.method))
            v1, v2 = self._top_two([a for a, _ in answers], problem)
            prob = beta_stop_probability(v1, v2)
            stop = prob >= Fraction(self.threshold)  # exact: no rounding at the boundary
            checks.append(self._check_event(len(samples), v1, v2, prob, stop))
            if stop:
                reason = "confident"
                break
        return samples, answers, [*checks, self._stop_event(reason, len(samples), prob)]

    @staticmethod
    def _top_two(answers: list[str | None], problem: Problem) -> tuple[int, int]:
        groups = group_answers(answers, problem.answer_kind, numbers=answer_numbers(problem))
        counts = [len(g.members) for g in groups[:2]] + [0, 0]
        return counts[0], counts[1]

    @staticmethod
    def _check_event(drawn: int, v1: int, v2: int, prob: Fraction, stop: bool) -> TraceEvent:
        return TraceEvent(
            "check", {"samples": drawn, "top": v1, "second": v2, "probability": float(prob), "stop": stop}
        )

    def _stop_event(self, reason: str, used: int, prob: Fraction) -> TraceEvent:
        notes = {
            "confident": f"P(p1 > p2) = {float(prob):.4f} reached the threshold {self.threshold}",
            "max_n": f"drew all {self.max_n} samples without reaching the threshold {self.threshold}",
            "budget": f"the budget paid for {used} of at most {self.max_n} samples",
        }
        return TraceEvent(
            "stop",
            {
                "reason": reason,
                "samples_used": used,
                "samples_saved": self.max_n - used,
                "max_n": self.max_n,
                "threshold": self.threshold,
                "probability": float(prob),
                "note": notes[reason],
            },
        )
