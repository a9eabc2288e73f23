"""Which generated tokens are reasoning: those inside a ``<think> ... </think>`` block.

Reasoning models (DeepSeek-R1 and its distillations, QwQ, Qwen3) write their hidden reasoning between
think tags before the visible answer; OpenAI reports such tokens as
``usage.completion_tokens_details.reasoning_tokens``. Backends call :func:`reasoning_token_count` on each
completion so that the meter can report them the same way. A block may have been opened by the prompt
(an assistant prefix ending inside ``<think>``, as budget forcing writes it) and may never be closed (the
generation was cut): both count as reasoning up to where the block ends.
"""

from __future__ import annotations

from collections.abc import Sequence

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def opens_inside(prefix: str, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE) -> bool:
    """True when ``prefix`` (the assistant text before generation) ends inside an unclosed think block."""
    return prefix.rfind(open_tag) > prefix.rfind(close_tag)


def reasoning_token_count(
    pieces: Sequence[str], prefix: str = "", open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
) -> int:
    """How many of the generated tokens (given as their text ``pieces``) start inside a think block.

    The closing tag's own tokens count as reasoning (they start inside the block); tokens after it do not.
    """
    inside = opens_inside(prefix, open_tag, close_tag)
    text = ""
    count = 0
    for piece in pieces:
        if inside:
            count += 1
        text += piece
        # re-check only the tail where a tag could have just completed
        tail = text[-(len(piece) + max(len(open_tag), len(close_tag))) :]
        if inside and close_tag in tail:
            inside = False
            text = text[text.rfind(close_tag) + len(close_tag) :]
        elif not inside and open_tag in tail:
            inside = True
            text = text[text.rfind(open_tag) + len(open_tag) :]
    return count
