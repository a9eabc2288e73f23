"""Self-consistency: sample several chains of thought and take the majority answer.

Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning in Language Models"
(arXiv 2203.11171). Draw n reasoning paths r_i with answers a_i at temperature > 0, then marginalise the
reasoning out by a vote::

    answer = argmax_a  sum_i w_i 1[a_i = a]

``weighting="majority"`` (the paper's choice) uses ``w_i = 1``. ``weighting="length_normalized"`` uses
the sample's probability normalised by its length, ``w_i = P(r_i, a_i | prompt)^(1/K_i) =
exp(mean_k log p(t_k))`` over its K_i generated tokens (the paper's "weighted sum, normalized"). Table 1
of the paper shows why the normalisation matters: weighting by the *unnormalised* sequence probability
(which favours short samples exponentially) is far worse than majority vote, while the length-normalised
weights come out about even with it. The logprobs are the model's own (before temperature), so asking
for them (``SamplingParams.logprobs=0``: the sampled tokens only, no alternatives) does not change what
is sampled; a backend without logprobs fails before anything is drawn.

Here ``a_i = a`` means *equivalent* answers (``1/2``, ``0.5`` and ``\\frac{1}{2}`` are one answer; two
valid solutions of one Game-of-24 puzzle are one answer), as decided by
:func:`ttscale.answers.group_answers`, whose tie-break (most weight, then the answer seen first) makes
the vote deterministic. The confidence is the winner's share of the weight of all samples drawn (with
majority weights: votes / samples drawn).

Samples with no extractable answer do not vote. If no sample has one, the vote falls back to the
normalised last line of each sample.

Under a budget that cannot pay for n samples of ``max_tokens`` each, the strategy draws in batches (see
:mod:`ttscale.strategies.voting`): first as many full-length samples as the budget affords (or, if it
affords none, one sample the meter shortens to fit), then, re-planning after each batch, as many more as
the remainder pays for at the length of the longest sample seen so far. It stops when not one more such
sample fits, and the trace records that the budget cut the vote short.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from ..answers import extract_answer
from ..errors import GenerationError
from ..processors.tip import tip_processor
from ..prompts import cot_prompt
from ..types import Completion, Result, SamplingParams
from .base import check, check_sampling, path_params, sample_event
from .voting import (
    answer_numbers,
    budget_stop_event,
    draw,
    final_line,
    final_line_vote,
    require_logprobs,
    vote,
)

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem

__all__ = ["SelfConsistency", "final_line", "final_line_vote", "length_normalized_weight"]

Weighting = Literal["majority", "length_normalized"]


@dataclass(frozen=True)
class SelfConsistency:
    """n sampled chains of thought, majority (or length-normalised probability) vote over equivalent answers."""

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
    weighting: Weighting = field(
        default="majority",
        metadata={
            "help": "Vote weight of a path: 'majority' (1 each) or 'length_normalized' "
            "(exp of its mean token logprob; needs a backend with logprobs)."
        },
    )
    tip: bool = field(
        default=False,
        metadata={"help": "Apply the thought-switching penalty (TIP, arXiv 2501.18585) to every path."},
    )
    tip_alpha: float = field(
        default=3.0, metadata={"help": "TIP penalty subtracted from switch-token logits."}
    )
    tip_beta: int = field(default=600, metadata={"help": "TIP window (tokens after a thought starts)."})

    def __post_init__(self) -> None:
        check_sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_tokens=self.max_tokens,
            n=self.n,
        )
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)
        check(
            self.weighting in ("majority", "length_normalized"),
            "weighting",
            "'majority' or 'length_normalized'",
            self.weighting,
        )
        check(self.tip_alpha >= 0, "tip_alpha", "a number >= 0", self.tip_alpha)
        check(self.tip_beta >= 0, "tip_beta", "an integer >= 0", self.tip_beta)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        if self.weighting == "length_normalized":
            require_logprobs(generator, who="self_consistency with weighting=length_normalized", top=0)
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)
        penalty = (tip_processor(generator, self.tip_alpha, self.tip_beta),) if self.tip else ()

        def params_for(k: int, first_index: int) -> SamplingParams:
            # TIP composes as a logits processor on the same sampling
            return replace(self._params(k, first_index), logits_processors=penalty)

        samples = draw(generator, prompt, params_for, self.n)
        texts = [prompt.assistant_prefix + c.text for c in samples]
        extractions = [extract_answer(t, problem.answer_kind) for t in texts]
        weights = self._weights(samples)
        trace = [
            sample_event(i, t, c, e.value, e.method, e.value is not None)
            for i, (t, c, e) in enumerate(zip(texts, samples, extractions, strict=True))
        ]
        result = vote(
            [c.text for c in samples],
            [e.value for e in extractions],
            problem.answer_kind,
            weights=weights,
            numbers=answer_numbers(problem),
        )
        extra = {"weighting": self.weighting, "weights": list(weights)} if weights is not None else {}
        trace.append(result.event(samples=len(samples), requested=self.n, **extra))
        if len(samples) < self.n:
            trace.append(budget_stop_event(len(samples), self.n))
        best = result.best
        total = len(samples) if weights is None else math.fsum(weights)
        return Result(
            answer=best.answer if best else None,
            response=texts[best.samples[0]] if best else texts[0],
            strategy=self.name,
            model=generator.model.name,
            candidates=result.candidates,
            confidence=best.votes / total if best and total > 0 else None,
            trace=tuple(trace),
        )

    def _params(self, k: int, first_index: int) -> SamplingParams:
        # the sampled tokens' own logprobs, no alternatives: the cheapest request that gives the weight
        return path_params(
            self, k, first_index, logprobs=0 if self.weighting == "length_normalized" else None
        )

    def _weights(self, samples: Sequence[Completion]) -> list[float] | None:
        if self.weighting == "majority":
            return None
        return [length_normalized_weight(c) for c in samples]


def length_normalized_weight(completion: Completion) -> float:
    """``exp(mean token logprob)`` of a completion: its probability normalised by its length.

    A completion with no tokens has the empty product's probability, 1.
    """
    if completion.logprobs is None:
        raise GenerationError("the backend returned no logprobs although they were asked for")
    if not completion.logprobs:
        return 1.0
    return math.exp(math.fsum(t.logprob for t in completion.logprobs) / len(completion.logprobs))
