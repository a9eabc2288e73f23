"""Zero-shot chain of thought, decoded greedily.

Kojima et al. 2022, "Large Language Models are Zero-Shot Reasoners" (arXiv 2205.11916): appending
"Let's think step by step." makes a model write its reasoning before the answer, which raises accuracy on
arithmetic and symbolic tasks. Here the trigger opens the assistant turn (when the backend can continue a
prefix), under the Qwen2.5-Math evaluation system prompt that asks for the answer in ``\\boxed{}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..prompts import cot_prompt
from ..types import SamplingParams
from .base import check, check_sampling
from .direct import solve_one_sample

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem, Result


@dataclass(frozen=True)
class ChainOfThought:
    """One greedy chain-of-thought sample; the answer is extracted from its end."""

    name: ClassVar[str] = "cot"

    max_tokens: int = field(default=512, metadata={"help": "Most tokens for the reasoning and answer."})
    seed: int | None = field(
        default=None, metadata={"help": "Sampling seed (greedy decoding does not depend on it)."}
    )

    def __post_init__(self) -> None:
        check_sampling(temperature=0.0, max_tokens=self.max_tokens)
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    def solve(self, problem: Problem, generator: Meter) -> Result:
        prompt = cot_prompt(problem.question, continue_prefix=generator.capabilities.continue_prefix)
        params = SamplingParams(n=1, max_tokens=self.max_tokens, temperature=0.0, seed=self.seed)
        return solve_one_sample(self.name, problem, generator, prompt, params)
