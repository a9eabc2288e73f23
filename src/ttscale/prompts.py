"""The prompt conventions for math problems, as named constants and two small builders.

- *Direct*: ask for the final answer only, inside ``\\boxed{}``, so the answer extractor finds it.
- *Chain of thought*: the system prompt of the Qwen2.5-Math evaluation suite ("Please reason step by step,
  and put your final answer within \\boxed{}.") plus the zero-shot CoT trigger of Kojima et al. 2022,
  "Large Language Models are Zero-Shot Reasoners" (arXiv 2205.11916): "Let's think step by step."

Kojima et al. put the trigger at the start of the *answer*, not in the question. When the backend can
continue an assistant prefix we do the same; otherwise the trigger closes the user message instead.
"""

from __future__ import annotations

from .types import Prompt

MATH_COT_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""System prompt of the Qwen2.5-Math chain-of-thought evaluation."""

ZERO_SHOT_COT_TRIGGER = "Let's think step by step."
"""The zero-shot CoT trigger phrase (Kojima et al. 2022)."""

DIRECT_SYSTEM_PROMPT = (
    "Give only the final answer, with no explanation or working, and put it within \\boxed{}."
)
"""System prompt asking for the final answer alone."""


def direct_prompt(question: str) -> Prompt:
    """A prompt asking for the final answer only, in ``\\boxed{}``."""
    return Prompt.user(question, system=DIRECT_SYSTEM_PROMPT)


def cot_prompt(question: str, *, continue_prefix: bool) -> Prompt:
    """A zero-shot chain-of-thought prompt.

    With ``continue_prefix`` (the backend continues an open assistant turn) the trigger starts the answer,
    as in Kojima et al.; otherwise it is appended to the question.
    """
    if continue_prefix:
        prefix = ZERO_SHOT_COT_TRIGGER + "\n"
        return Prompt.user(question, system=MATH_COT_SYSTEM_PROMPT, assistant_prefix=prefix)
    return Prompt.user(f"{question}\n\n{ZERO_SHOT_COT_TRIGGER}", system=MATH_COT_SYSTEM_PROMPT)
