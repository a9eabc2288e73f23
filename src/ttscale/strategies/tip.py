"""Chain of thought decoded under TIP, the thought-switching penalty.

Wang et al. 2025, "Thoughts Are All Over the Place: On the Underthinking of o1-Like LLMs"
(arXiv 2501.18585). While a thought is younger than ``beta`` tokens, the logits of thought-switch tokens
("Alternatively", "Wait", ...) are lowered by ``alpha``::

    z'(t, v) = z(t, v) - alpha * 1[v in V  and  t < psi + beta]

with ``psi`` the position where the current thought began (see :mod:`ttscale.processors.tip` for the
token set). Defaults ``alpha = 3``, ``beta = 600`` are the paper's; with ``max_tokens=512`` the window of
the first thought spans the whole sample, so on short chains TIP simply discourages every switch.

Decoding. The paper reports Pass@1 of sampled responses. Here ``n = 1`` is decoded greedily by default,
so ``tip`` and ``cot`` differ only by the penalty (same prompt, same decoding, same ``max_tokens``) and
the effect of TIP alone can be measured deterministically. With ``n > 1`` the samples are drawn at
temperature 0.7 (top-k 40, top-p 0.95, as ``self_consistency``) and the majority of equivalent answers
wins; draws are batched under the budget like self-consistency's (:func:`ttscale.strategies.voting.draw`).

The prompt is the zero-shot chain-of-thought prompt of ``cot``. The trace's ``tip`` event lists the
penalised token ids (decoded) and how many switches each sample made despite the penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..answers import extract_answer
from ..processors.tip import DEFAULT_SWITCH_WORDS, ThoughtSwitchPenalty, tip_processor
from ..prompts import cot_prompt
from ..types import Completion, Result, SamplingParams, TraceEvent
from .base import check, check_sampling, path_params, sample_event
from .voting import answer_numbers, budget_stop_event, draw, vote

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem

SAMPLING_TEMPERATURE = 0.7
"""Temperature used when ``n > 1`` and none is given (self-consistency's)."""


@dataclass(frozen=True)
class ThoughtSwitchingPenalty:
    """Chain of thought with thought switches penalised (TIP); a vote over ``n`` samples when n > 1."""

    name: ClassVar[str] = "tip"

    alpha: float = field(default=3.0, metadata={"help": "Logit penalty on switch tokens (the paper's 3)."})
    beta: int = field(
        default=600, metadata={"help": "Tokens each thought is protected for after it starts (paper: 600)."}
    )
    words: str = field(
        default=",".join(DEFAULT_SWITCH_WORDS),
        metadata={"help": "Comma-separated thought-switch expressions whose tokens are penalised."},
    )
    n: int = field(default=1, metadata={"help": "Samples; more than 1 are sampled and voted on."})
    temperature: float | None = field(
        default=None,
        metadata={"help": "Sampling temperature; none means 0 (greedy) for n=1 and 0.7 for n>1."},
    )
    top_k: int = field(default=40, metadata={"help": "Keep the k most likely tokens when sampling."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, applied after top-k."})
    max_tokens: int = field(default=512, metadata={"help": "Most tokens per sample (reasoning and answer)."})
    seed: int | None = field(default=None, metadata={"help": "Base seed; sample i uses seed + i."})

    def __post_init__(self) -> None:
        check(self.alpha >= 0, "alpha", "a number >= 0 (a penalty, not a bonus)", self.alpha)
        check(self.beta >= 0, "beta", "an integer >= 0 (0 disables the penalty)", self.beta)
        check(bool(self.switch_words), "words", "a comma-separated list of expressions", self.words)
        check_sampling(
            temperature=self.sampling_temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_tokens=self.max_tokens,
            n=self.n,
        )
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    @property
    def switch_words(self) -> tuple[str, ...]:
        return tuple(w.strip() for w in self.words.split(",") if w.strip())

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.n == 1 else SAMPLING_TEMPERATURE

    def solve(self, problem: Problem, generator: Meter) -> Result:
        # resolving the token ids checks the backend (tokenizer, logits processors) before any generation
        penalty = tip_processor(generator, self.alpha, self.beta, self.switch_words)
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)

        def params_for(k: int, first: int) -> SamplingParams:
            return path_params(
                self, k, first, temperature=self.sampling_temperature, logits_processors=(penalty,)
            )

        samples = draw(generator, prompt, params_for, self.n)
        return self._result(problem, generator, prompt.assistant_prefix, samples, penalty)

    def _result(
        self,
        problem: Problem,
        generator: Meter,
        prefix: str,
        samples: list[Completion],
        penalty: ThoughtSwitchPenalty,
    ) -> Result:
        texts = [prefix + c.text for c in samples]
        extractions = [extract_answer(t, problem.answer_kind) for t in texts]
        trace = [
            sample_event(i, t, c, e.value, e.method, e.value is not None)
            for i, (t, c, e) in enumerate(zip(texts, samples, extractions, strict=True))
        ]
        trace.append(_tip_event(generator, penalty, samples))
        answers = [e.value for e in extractions]
        outcome = vote(
            [c.text for c in samples], answers, problem.answer_kind, numbers=answer_numbers(problem)
        )
        trace.append(outcome.event(samples=len(samples), requested=self.n))
        if len(samples) < self.n:
            trace.append(budget_stop_event(len(samples), self.n))
        best = outcome.best
        return Result(
            answer=best.answer if best else None,
            response=texts[best.samples[0]] if best else texts[0],
            strategy=self.name,
            model=generator.model.name,
            candidates=outcome.candidates,
            confidence=best.votes / len(samples) if best and self.n > 1 else None,
            trace=tuple(trace),
        )


def _tip_event(generator: Meter, penalty: ThoughtSwitchPenalty, samples: list[Completion]) -> TraceEvent:
    """What was penalised, and how many switches each sample made anyway."""
    return TraceEvent(
        "tip",
        {
            "alpha": penalty.alpha if math.isfinite(penalty.alpha) else str(penalty.alpha),
            "beta": penalty.beta,
            "words": list(penalty.words),
            "penalised": {str(i): generator.decode([i]) for i in sorted(penalty.token_ids)},
            "phrases": [{"after": list(head), "token": tok} for head, tok in penalty.phrases],
            "switches": [len(penalty.switches(c.token_ids)) for c in samples],
        },
    )
