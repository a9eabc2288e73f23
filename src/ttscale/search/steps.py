"""Reasoning steps: how a solution is cut into steps, and how the policy is asked to write one step.

Step-level search needs a unit of reasoning. Hugging Face search-and-learn (Beeching, Tunstall and Rush
2024, after Snell et al. 2024, arXiv 2408.03314) asks the policy for one step per paragraph and generates
each step with the stop string ``"\\n\\n"``: a step is a paragraph. That is the default here
(``blank_line``). The other formats:

- ``newline``: a step is a line (stop ``"\\n"``);
- ``step_markers``: a step starts with ``Step k:`` at the start of a line (stop ``"\\nStep "``);
- ``regex:<pattern>``: ``<pattern>`` matches the separator between steps. No stop string can express a
  regex, so generation stops through a stopping criterion that decodes the step and searches it (the
  backend must declare ``stopping_criteria``); the text after the first separator is dropped.

Prefix. The steps of a partial solution, each followed by its separator, form the assistant prefix the
next step continues (``prompt.continued(prefix)``), so on a backend with a prefix cache a step prefills
only the one step its parent added.

Cut steps. ``max_step_tokens`` caps a step; a step that reaches it is cut (finish ``length``), kept as a
step, and the separator appended, so the next step starts on a fresh paragraph. (search-and-learn ends the
whole solution at its 2048-token step cap, which acts there as a solution cap; with a cap of a few hundred
tokens a long paragraph is better split than ended.)

Terminal steps. A step ends its solution when it holds a complete ``\\boxed{...}`` answer, when the model
ended its turn (EOS), or when it is empty (the model wrote a separator straight away, which
search-and-learn also treats as the end).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..answers import extract_answer
from ..errors import ConfigError
from ..types import FinishReason, Prompt, StoppingCriterion, TokenLogprob

StepKind = Literal["blank_line", "newline", "step_markers", "regex"]

STEP_SYSTEM_PROMPT = (
    "Solve the math problem step by step. {layout} Keep each step short: one calculation or one idea. "
    "Finish with the final answer within \\boxed{{}}."
)
"""System prompt of step-wise search; ``{layout}`` says how steps are laid out (see ``LAYOUTS``)."""

LAYOUTS: dict[StepKind, str] = {
    "blank_line": "Write one step per paragraph and leave a blank line between steps.",
    "newline": "Write one step per line.",
    "step_markers": "Start each step on a new line with 'Step k:' (Step 1:, Step 2:, ...).",
    "regex": "Write one step per paragraph and leave a blank line between steps.",
}
"""How each step format is described to the policy."""

# the separator each fixed format appends after a step, the stop string ending a step, and the regex
# that finds separators in a whole text (for rollouts and for cutting)
_FIXED: dict[StepKind, tuple[str, tuple[str, ...], str]] = {
    "blank_line": ("\n\n", ("\n\n",), r"\n[ \t]*\n\s*"),
    "newline": ("\n", ("\n",), r"\n\s*"),
    "step_markers": ("\n", ("\nStep ",), r"\s*\n(?=[ \t]*Step \d+\s*:)"),
}
_DEFAULT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class StepFormat:
    """How steps are delimited: one of the fixed formats, or a separator regex."""

    kind: StepKind = field(
        default="blank_line",
        metadata={"help": "blank_line (paragraphs, the default), newline, step_markers or regex."},
    )
    pattern: str = field(default="", metadata={"help": "For kind regex: the separator between steps."})

    def __post_init__(self) -> None:
        if self.kind not in LAYOUTS:
            raise ConfigError(f"step format must be one of {', '.join(LAYOUTS)}, got {self.kind!r}")
        if self.kind != "regex":
            return
        try:
            compiled = re.compile(self.pattern)
        except re.error as e:
            raise ConfigError(f"step separator regex {self.pattern!r} does not compile: {e}") from None
        if compiled.fullmatch("") is not None:
            raise ConfigError(f"step separator regex {self.pattern!r} matches the empty string")

    @classmethod
    def parse(cls, spec: str) -> StepFormat:
        """``blank_line``, ``newline``, ``step_markers`` or ``regex:<pattern>``."""
        if spec.startswith("regex:"):
            return cls("regex", spec[len("regex:") :])
        if spec not in _FIXED:
            raise ConfigError(
                f"steps must be blank_line, newline, step_markers or regex:<pattern>, got {spec!r}"
            )
        return cls(spec)  # narrowed to StepKind by the membership test

    @property
    def separator(self) -> str:
        """What follows a step in the prefix (for regex, when the step did not end at a separator)."""
        return _FIXED[self.kind][0] if self.kind in _FIXED else _DEFAULT_SEPARATOR

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop strings that end the generation of one step (none for regex: a criterion does)."""
        return _FIXED[self.kind][1] if self.kind in _FIXED else ()

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern if self.kind == "regex" else _FIXED[self.kind][2])

    def prompt(self, question: str) -> Prompt:
        """The step-wise prompt: the problem, with a system prompt asking for this step layout."""
        return Prompt.user(question, system=STEP_SYSTEM_PROMPT.format(layout=LAYOUTS[self.kind]))

    def criteria(self, decode: Callable[[Sequence[int]], str]) -> tuple[StoppingCriterion, ...]:
        """Stopping criteria ending one step (regex only; ``decode`` renders generated token ids)."""
        return (_SeparatorSeen(self.regex, decode),) if self.kind == "regex" else ()

    def cut(self, text: str) -> tuple[str, str | None]:
        """(step, separator found after it, or None): the generated ``text`` up to its first separator."""
        m = _first_separator(self.regex, text)
        if m is None:
            return text.strip(), None
        return text[: m.start()].strip(), m.group(0)

    def split(self, text: str) -> list[str]:
        """A whole solution as its non-empty steps, in order."""
        return [s.strip() for s in self.regex.split(text) if s.strip()]

    def join(self, steps: Sequence[str]) -> str:
        """Steps laid out as the policy reads them: each followed by the separator."""
        return "".join(s + self.separator for s in steps)


def _first_separator(regex: re.Pattern[str], text: str) -> re.Match[str] | None:
    # a separator counts only after some content: leading blank lines are not an empty step
    content = len(text) - len(text.lstrip())
    if content == len(text):
        return None
    return regex.search(text, content + 1)


@dataclass(frozen=True)
class _SeparatorSeen:
    """Stops a step once its decoded text holds a separator after some content."""

    regex: re.Pattern[str]
    decode: Callable[[Sequence[int]], str]

    def __call__(self, generated: Sequence[int], logprobs: Sequence[TokenLogprob]) -> bool:
        return _first_separator(self.regex, self.decode(generated)) is not None


def has_boxed_answer(text: str) -> bool:
    """True when ``text`` holds a complete ``\\boxed{...}`` (braces matched)."""
    return extract_answer(text, "math").method == "boxed"


def is_terminal(step: str, finish: FinishReason) -> bool:
    """Does this step end its solution? (boxed answer, end of turn, or an empty step)."""
    return finish == "eos" or not step.strip() or has_boxed_answer(step)
