"""Best-of-N: sample n chains of thought, score each with an outcome scorer, keep the best-supported answer.

Cobbe et al. 2021, "Training Verifiers to Solve Math Word Problems" (arXiv 2110.14168), rank samples by a
verifier's score. Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally can be More Effective than
Scaling Model Parameters" (arXiv 2408.03314), select with "best-of-N weighted" (after Li et al. 2023's
verifier-weighted voting) rather than the single top-scored sample::

    naive:     answer = a_{i*},   i* = argmax_i s_i
    weighted:  answer = argmax_a  sum_i s_i [a_i ~ a]        (the default, as in Snell et al.)
    borda:     answer = argmax_a  sum_i (N - r_i + 1)^p [a_i ~ a]

with s_i the score of sample i and ``~`` answer equivalence (:func:`ttscale.answers.group_answers`).
Weighted marginalises the verifier over reasoning paths, so one overconfident score (common with a small
judge) cannot outvote several well-scored samples that agree. Borda is Kang et al. 2025's vote for
self-certainty ("Scalable Best-of-N Selection for Large Language Models via Self-Certainty", arXiv
2502.18581): r_i is sample i's rank by score among the N scored samples (1 the best, ties to the earlier
sample), and ``borda_power`` p (default 0.5, their code's) sets how much rank counts: p = 0 is a
majority vote, a large p approaches naive. It needs only the order of the scores, not their scale. It assumes scores >= 0, as every registered
scorer gives. Ties go to the sample (naive) or group (weighted, borda) seen first. The confidence
reported is the winner's share of the summed scores (weighted) or Borda votes (borda), or its score
(naive). If no sample has an extractable
answer, normalised final lines stand in for answers.

Scorers: ``llm_judge`` (P(Yes) of a judge: the policy model itself unless ``judge_model`` names another,
opened for this solve only and closed after), ``followup_judge`` (the same question asked as the next
turn of each sample's own conversation, which a self-judge reads from the prefix cache instead of
prefilling every solution again), ``self_certainty`` and ``confidence`` (both read the
policy's own top-20 logprobs, so samples are drawn with logprobs=20). The judge is metered on the solve's
ledger: its tokens count under its model name and come out of the same budget. Kang et al. 2025 select by
self-certainty with the argmax (``selection=naive``) or a Borda vote over its ranks (``selection=borda``);
the weighted default sums its scores, which lie close together, so with ``self_certainty`` it behaves
almost like a majority vote.

Budget: the draw holds back the scorer's worst-case cost (:meth:`OutcomeScorer.cost`) for every sample it
plans, drawing as many samples as the budget pays for *with* their scoring (first at ``max_tokens`` each,
then, re-planning, at the longest sample's length), or one shorter sample if not one fits at full length.
If the judge's real cost still exceeds what is left, the last samples go unscored and do not vote.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from ..answers import extract_answer, group_answers
from ..errors import BudgetExhausted, UnknownNameError
from ..prompts import cot_prompt
from ..scorers import SCORERS, DrawPlanner, OutcomeScorer, Sample, ScorerSpec
from ..types import Candidate, Completion, ModelUsage, Prompt, Result, SamplingParams, TraceEvent
from .base import check, check_sampling, path_params, sample_event
from .self_consistency import final_line
from .voting import borda_votes

if TYPE_CHECKING:
    from ..backends.base import Generator
    from ..backends.llamacpp import LlamaCppGenerator
    from ..compute import Meter
    from ..types import Problem


def open_judge(name: str) -> LlamaCppGenerator:
    """Open a judge model that differs from the policy (a catalog name or a ``.gguf`` path)."""
    from ..backends.llamacpp import LlamaCppGenerator

    return LlamaCppGenerator.from_model(name)


@dataclass(frozen=True)
class BestOfN:
    """n sampled chains of thought, scored by an outcome scorer; weighted, naive or Borda selection."""

    name: ClassVar[str] = "best_of_n"

    n: int = field(
        default=8, metadata={"help": "Solutions to sample and score (fewer if the budget runs out)."}
    )
    scorer: str = field(
        default="llm_judge",
        metadata={"help": "Outcome scorer: llm_judge, followup_judge, self_certainty or confidence."},
    )
    selection: Literal["weighted", "naive", "borda"] = field(
        default="weighted",
        metadata={
            "help": "weighted: answer with the largest summed score (Snell et al.); naive: top sample; "
            "borda: votes (N - rank + 1)^borda_power (Kang et al.)."
        },
    )
    borda_power: float = field(
        default=0.5, metadata={"help": "p of Borda votes (N - rank + 1)^p; 0 is a majority vote."}
    )
    judge_model: str | None = field(
        default=None,
        metadata={"help": "Judge model for llm_judge; none means the policy model judges itself."},
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of each solution."})
    top_k: int = field(default=40, metadata={"help": "Keep the k most likely tokens before top-p."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, applied after top-k."})
    max_tokens: int = field(default=512, metadata={"help": "Most tokens per solution."})
    seed: int | None = field(default=None, metadata={"help": "Base seed; sample i uses seed + i."})

    def __post_init__(self) -> None:
        check_sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_tokens=self.max_tokens,
            n=self.n,
        )
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)
        if self.scorer not in SCORERS:
            raise UnknownNameError("scorer", self.scorer, SCORERS.names())
        check(
            self.selection in ("weighted", "naive", "borda"),
            "selection",
            "weighted, naive or borda",
            self.selection,
        )
        check(
            math.isfinite(self.borda_power) and self.borda_power >= 0,
            "borda_power",
            "a finite number >= 0",
            self.borda_power,
        )
        check(
            self.judge_model is None or bool(self.judge_model.strip()),
            "judge_model",
            "a name or none",
            self.judge_model,
        )
        needs_judge = SCORERS.get(self.scorer).needs_judge
        rule = f"none with scorer {self.scorer!r}, which calls no judge"
        check(self.judge_model is None or needs_judge, "judge_model", rule, self.judge_model)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)
        spec = SCORERS.get(self.scorer)
        with self._judge(spec, generator) as judge:
            scorer = spec.build(generator, judge)  # a missing capability fails here, before any sampling
            drawn, stop = self._draw(problem, prompt, generator, scorer)
            samples = [Sample(prompt.assistant_prefix + c.text, c, prompt) for c in drawn]
            before = generator.usage().total
            scores, cut = self._score(problem, scorer, samples)
            scoring = _spent_since(before, generator.usage().total)
            judge_name = judge.model.name if judge is not None else None
        answers, kind, method = _answers(problem, samples[: len(scores)])
        candidates, best = self._select(answers, scores, kind)
        vote = self._vote(candidates, best, answers, method, judge_name, len(samples), scoring)
        trace = [*self._sample_events(problem, samples, drawn, scores), vote]
        trace.extend(e for e in (stop, cut) if e is not None)
        return Result(
            answer=candidates[0].answer if candidates else None,
            response=samples[best if best is not None else 0].text,
            strategy=self.name,
            model=generator.model.name,
            candidates=candidates,
            confidence=self._confidence(candidates, scores, best),
            trace=tuple(trace),
        )

    @contextmanager
    def _judge(self, spec: ScorerSpec, policy: Meter) -> Iterator[Generator | None]:
        """The judge of this solve: none, the policy itself, or another model opened now and closed after."""
        if not spec.needs_judge:
            yield None
        elif self.judge_model is None or self.judge_model == policy.model.name:
            yield policy
        else:
            opened = open_judge(self.judge_model)
            try:
                yield policy.ledger.meter(opened)  # same ledger: one budget, usage under the judge's name
            finally:
                opened.close()

    # -- draw -----------------------------------------------------------------------------------------

    def _params(self, k: int, first_index: int, cap: int, logprobs: int) -> SamplingParams:
        return path_params(self, k, first_index, max_tokens=cap, logprobs=logprobs or None)

    def _draw(
        self, problem: Problem, prompt: Prompt, gen: Meter, scorer: OutcomeScorer
    ) -> tuple[list[Completion], TraceEvent | None]:
        plan = DrawPlanner(gen, gen.count_prompt_tokens([prompt])[0], problem, scorer)
        out: list[Completion] = []
        need = self.max_tokens
        while len(out) < self.n:
            k, cap = plan.batch([len(c.token_ids) for c in out], self.n - len(out), need, self.max_tokens)
            if k == 0:
                break
            if cap == 0:
                raise BudgetExhausted(
                    "the budget cannot pay for one sample and its scoring; raise it or lower max_tokens"
                )
            try:
                batch = gen.generate([prompt], self._params(k, len(out), cap, scorer.policy_logprobs))
            except BudgetExhausted:
                if not out:
                    raise
                break
            out.extend(batch[0])
            need = min(self.max_tokens, max(1, *(len(c.token_ids) for c in out)))
        if len(out) == self.n:
            return out, None
        note = f"the budget paid for {len(out)} of {self.n} samples with their scoring"
        return out, TraceEvent(
            "stop", {"reason": "budget", "drawn": len(out), "requested": self.n, "note": note}
        )

    def _score(
        self, problem: Problem, scorer: OutcomeScorer, samples: Sequence[Sample]
    ) -> tuple[list[float], TraceEvent | None]:
        """Score all samples, or as many as the budget still pays for (the rest do not vote)."""
        for m in range(len(samples), 0, -1):
            try:
                scores = scorer.score(problem, samples[:m])
            except BudgetExhausted:
                continue  # refused before anything was spent: try scoring one fewer
            if m == len(samples):
                return scores, None
            note = f"the budget paid for scoring {m} of {len(samples)} samples; the rest did not vote"
            return scores, TraceEvent(
                "stop", {"reason": "budget", "scored": m, "drawn": len(samples), "note": note}
            )
        raise BudgetExhausted("the budget paid for the samples but not for scoring any of them; raise it")

    # -- select ---------------------------------------------------------------------------------------

    def _select(
        self, answers: Sequence[str | None], scores: Sequence[float], kind: str
    ) -> tuple[tuple[Candidate, ...], int | None]:
        """Candidates best first, and the index of the sample the answer (and response) is taken from."""

        def top(members: Sequence[int]) -> int:  # the best-scored member, the earliest on ties
            return min(members, key=lambda i: (-scores[i], i))

        if self.selection in ("weighted", "borda"):
            weights = borda_votes(scores, self.borda_power) if self.selection == "borda" else scores
            groups = group_answers(answers, kind, weights=weights)
            ranked = [Candidate(g.answer, g.weight, g.members) for g in groups]
        else:
            groups = sorted(
                group_answers(answers, kind), key=lambda g: (-scores[top(g.members)], top(g.members))
            )
            ranked = [Candidate(g.answer, scores[top(g.members)], g.members) for g in groups]
        return tuple(ranked), top(ranked[0].samples) if ranked else None

    def _vote(
        self,
        candidates: Sequence[Candidate],
        best: int | None,
        answers: Sequence[str | None],
        method: str,
        judge: str | None,
        drawn: int,
        scoring: dict[str, float],
    ) -> TraceEvent:
        return TraceEvent(
            "vote",
            {
                "method": method,
                "selection": self.selection,
                "scorer": self.scorer,
                "judge": judge,
                "tally": {c.answer: c.votes for c in candidates},
                "winner": candidates[0].answer if candidates else None,
                "winner_sample": best,
                "scored": len(answers),
                "drawn": drawn,
                "requested": self.n,
                "abstained": [i for i, a in enumerate(answers) if a is None],
                "scoring": scoring,
            },
        )

    def _confidence(
        self, candidates: Sequence[Candidate], scores: Sequence[float], best: int | None
    ) -> float | None:
        if not candidates or best is None:
            return None
        if self.selection == "naive":
            return scores[best]
        total = math.fsum(c.votes for c in candidates)  # summed scores (weighted) or Borda votes
        return candidates[0].votes / total if total > 0 else None

    def _sample_events(
        self,
        problem: Problem,
        samples: Sequence[Sample],
        drawn: Sequence[Completion],
        scores: Sequence[float],
    ) -> list[TraceEvent]:
        events = []
        for i, (s, c) in enumerate(zip(samples, drawn, strict=True)):
            ext = extract_answer(s.text, problem.answer_kind)
            scored = i < len(scores)
            ev = sample_event(i, s.text, c, ext.value, ext.method, scored and ext.value is not None)
            events.append(TraceEvent("sample", {**ev.data, "score": scores[i] if scored else None}))
        return events


def _spent_since(before: ModelUsage, after: ModelUsage) -> dict[str, float]:
    """What scoring cost, every model together: the analysis splits it per scored sample when it derives
    a smaller n from this run (the judge reads each sample on its own, unlike the shared policy prompt)."""
    return {
        "prompt_tokens": after.prompt_tokens - before.prompt_tokens,
        "completion_tokens": after.completion_tokens - before.completion_tokens,
        "flops": after.flops - before.flops,
    }


def _answers(problem: Problem, samples: Sequence[Sample]) -> tuple[list[str | None], str, str]:
    """Extracted answers, their kind and the method; the final lines (kind text) when none has one."""
    texts = [s.text for s in samples]
    answers: list[str | None] = [extract_answer(t, problem.answer_kind).value for t in texts]
    if any(a is not None for a in answers):
        return answers, problem.answer_kind, "answer"
    return [final_line(t) or None for t in texts], "text", "final_line"
