"""Logits processors: edits of a sequence's next-token logits, applied by backends that support them.

A processor is a pure function ``(generated token ids, logits row) -> None`` that edits the row in place
(:class:`ttscale.types.LogitsProcessor`). Strategies pass processors in
``SamplingParams.logits_processors``; a backend without ``capabilities.logits_processors`` is refused
before anything is generated.

- :func:`tip_processor` / :class:`ThoughtSwitchPenalty`: TIP, the thought-switching penalty (Wang et al.
  2025, arXiv 2501.18585).
"""

from __future__ import annotations

from .tip import DEFAULT_SWITCH_WORDS, ThoughtSwitchPenalty, resolve_switch_tokens, spellings, tip_processor

__all__ = [
    "DEFAULT_SWITCH_WORDS",
    "ThoughtSwitchPenalty",
    "resolve_switch_tokens",
    "spellings",
    "tip_processor",
]
