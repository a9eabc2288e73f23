"""Direct answering: one greedy sample asked for the final answer only, no reasoning.

The baseline every test-time strategy is measured against: the least compute a model can spend on a
problem. Greedy decoding (temperature 0) makes it deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..answers import extract_answer
from ..prompts import direct_prompt
from ..types import Candidate, Prompt, Result, SamplingParams, TraceEvent
from .base import check, check_sampling, sample_event

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem


def solve_one_sample(
    name: str, problem: Problem, generator: Meter, prompt: Prompt, params: SamplingParams
) -> Result:
    """Draw one completion of ``prompt`` and extract its answer (shared by single-sample strategies)."""
    completion = generator.generate([prompt], params)[0][0]
    text = prompt.assistant_prefix + completion.text
    ext = extract_answer(text, problem.answer_kind)
    voted = ext.value is not None
    candidates = (Candidate(ext.value, 1.0, (0,)),) if ext.value is not None else ()
    tally = {ext.value: 1.0} if ext.value is not None else {}
    trace = (
        sample_event(0, text, completion, ext.value, ext.method, voted),
        TraceEvent("vote", {"tally": tally, "samples": 1, "abstained": [] if voted else [0]}),
    )
    return Result(
        answer=ext.value,
        response=text,
        strategy=name,
        model=generator.model.name,
        candidates=candidates,
        confidence=None,
        trace=trace,
    )


@dataclass(frozen=True)
class Direct:
    """One greedy sample of the final answer alone, in ``\\boxed{}``."""

    name: ClassVar[str] = "direct"

    max_tokens: int = field(default=256, metadata={"help": "Most tokens to generate for the answer."})
    seed: int | None = field(
        default=None, metadata={"help": "Sampling seed (greedy decoding does not depend on it)."}
    )

    def __post_init__(self) -> None:
        check_sampling(temperature=0.0, max_tokens=self.max_tokens)
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        params = SamplingParams(n=1, max_tokens=self.max_tokens, temperature=0.0, seed=self.seed)
        return solve_one_sample(self.name, problem, generator, direct_prompt(problem.question), params)
