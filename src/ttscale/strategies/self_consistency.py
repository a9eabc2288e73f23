"""Self-consistency: sample several chains of thought and take the majority answer.

Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning in Language Models"
(arXiv 2203.11171). Draw n reasoning paths r_i with answers a_i at temperature > 0, then marginalise the
reasoning out by an unweighted vote::

    answer = argmax_a  sum_i 1[a_i = a]

Here ``a_i = a`` means *equivalent* answers (``1/2``, ``0.5`` and ``\\frac{1}{2}`` are one answer), as
decided by :func:`ttscale.answers.group_answers`, whose tie-break (most votes, then the answer seen first)
makes the vote deterministic. The confidence is the winner's vote share, votes / samples drawn.

Samples with no extractable answer do not vote. If no sample has one, the vote falls back to the
normalised last line of each sample.

Under a budget that cannot pay for n samples of ``max_tokens`` each, the strategy draws in batches: first
as many full-length samples as the budget affords (or, if it affords none, one sample the meter shortens
to fit), then, re-planning after each batch, as many more as the remainder pays for at the length of the
longest sample seen so far (real samples usually stop well before ``max_tokens``). It stops when not one
more such sample fits, and the trace records that the budget cut the vote short.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..answers import extract_answer, group_answers
from ..errors import BudgetExhausted
from ..prompts import cot_prompt
from ..types import Candidate, Completion, Prompt, Result, SamplingParams, TraceEvent
from .base import check, check_sampling, sample_event

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SelfConsistency:
    """n sampled chains of thought, majority vote over equivalent answers."""

    name: ClassVar[str] = "self_consistency"

    n: int = field(default=8, metadata={"help": "Reasoning paths to sample (fewer if the budget runs out)."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of each path."})
    top_k: int = field(
        default=40, metadata={"help": "Keep the k most likely tokens before top-p (fast on llama.cpp)."}
    )
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, applied after top-k."})
    max_tokens: int = field(default=512, metadata={"help": "Most tokens per reasoning path."})
    seed: int | None = field(
        default=None, metadata={"help": "Base seed; path i uses seed + i, so a seed reproduces the vote."}
    )

    def __post_init__(self) -> None:
        check_sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_tokens=self.max_tokens,
            n=self.n,
        )
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)
        samples, stop = self._draw(prompt, generator)
        texts = [prompt.assistant_prefix + c.text for c in samples]
        extractions = [extract_answer(t, problem.answer_kind) for t in texts]
        answers = [e.value for e in extractions]
        trace = [
            sample_event(i, t, c, e.value, e.method, e.value is not None)
            for i, (t, c, e) in enumerate(zip(texts, samples, extractions, strict=True))
        ]
        candidates, vote = self._vote([c.text for c in samples], answers, problem.answer_kind)
        trace.append(vote)
        if stop is not None:
            trace.append(stop)
        best = candidates[0] if candidates else None
        return Result(
            answer=best.answer if best else None,
            response=texts[best.samples[0]] if best else texts[0],
            strategy=self.name,
            model=generator.model.name,
            candidates=candidates,
            confidence=best.votes / len(samples) if best else None,
            trace=tuple(trace),
        )

    # -- draw -----------------------------------------------------------------------------------------

    def _params(self, k: int, first_index: int) -> SamplingParams:
        seed = None if self.seed is None else self.seed + first_index
        return SamplingParams(
            n=k,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seed=seed,
        )

    def _affordable(self, generator: Meter, prompt: Prompt, want: int, need: int) -> int:
        """Most samples (<= want) the remaining budget pays for at ``need`` tokens each; may be 0."""

        def fits(k: int) -> bool:
            return generator.max_tokens_affordable([prompt], self._params(k, 0)) >= need

        if fits(want):
            return want
        lo, hi = 0, want - 1  # invariant: lo fits (or is 0), hi + 1 does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        return lo

    def _draw(self, prompt: Prompt, generator: Meter) -> tuple[list[Completion], TraceEvent | None]:
        samples: list[Completion] = []
        need = self.max_tokens
        while len(samples) < self.n:
            k = self._affordable(generator, prompt, self.n - len(samples), need)
            if k == 0 and samples:
                break
            try:
                # k == 0 with nothing drawn: one sample that the meter shortens to fit, or refuses
                out = generator.generate([prompt], self._params(max(k, 1), len(samples)))
            except BudgetExhausted:
                if not samples:
                    raise
                break
            samples.extend(out[0])
            need = min(self.max_tokens, max(1, *(len(c.token_ids) for c in samples)))
        if len(samples) == self.n:
            return samples, None
        return samples, TraceEvent(
            "stop",
            {
                "reason": "budget",
                "drawn": len(samples),
                "requested": self.n,
                "note": f"the budget paid for {len(samples)} of {self.n} samples",
            },
        )

    # -- vote -----------------------------------------------------------------------------------------

    def _vote(
        self, generated: Sequence[str], answers: Sequence[str | None], kind: str
    ) -> tuple[tuple[Candidate, ...], TraceEvent]:
        """Vote over extracted answers; with none at all, over the final lines of the generated texts."""
        abstained = [i for i, a in enumerate(answers) if a is None]
        groups = group_answers(answers, kind)
        candidates = tuple(Candidate(g.answer, g.weight, tuple(g.members)) for g in groups)
        method, notes = "answer", []
        if abstained:
            notes.append(f"samples {abstained} had no extractable answer and did not vote")
        if not candidates:
            method, candidates = "final_line", final_line_vote(generated)
            notes.append("no sample had an extractable answer; voted over normalised final lines")
        return candidates, TraceEvent(
            "vote",
            {
                "method": method,
                "tally": {c.answer: c.votes for c in candidates},
                "winner": candidates[0].answer if candidates else None,
                "samples": len(answers),
                "requested": self.n,
                "abstained": abstained,
                "note": "; ".join(notes),
            },
        )


def final_line(text: str) -> str:
    """The last non-empty line of ``text``, stripped."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _normalise_line(line: str) -> str:
    return _SPACE.sub(" ", line).strip().strip(".").strip().casefold()


def final_line_vote(texts: Sequence[str]) -> tuple[Candidate, ...]:
    """Majority over normalised last lines; ties go to the line seen first. Empty texts do not vote."""
    members: dict[str, list[int]] = {}
    shown: dict[str, str] = {}
    for i, text in enumerate(texts):
        line = final_line(text)
        key = _normalise_line(line)
        if not key:
            continue
        members.setdefault(key, []).append(i)
        shown.setdefault(key, line)
    ranked = sorted(members, key=lambda k: (-len(members[k]), members[k][0]))
    return tuple(Candidate(shown[k], float(len(members[k])), tuple(members[k])) for k in ranked)
