"""TIP, the thought-switching penalty, as a logits processor.

Wang et al. 2025, "Thoughts Are All Over the Place: On the Underthinking of o1-Like LLMs"
(arXiv 2501.18585). o1-like models abandon promising lines of reasoning too early ("underthinking"). TIP
makes switching to a new thought less likely for the first ``beta`` tokens of every thought by lowering
the logits of the thought-switch tokens ``V``::

    z'(t, v) = z(t, v) - alpha * 1[v in V  and  t < psi + beta]

``t`` is the position of the token about to be generated (``len(generated)``), ``psi`` the position where
the current thought began: that of the last switch token generated, 0 at the start. So the window restarts
at every switch the model makes despite the penalty. The paper's grid search on QwQ-32B-Preview picked
``alpha = 3`` and ``beta = 600`` (the defaults here).

Which tokens are ``V``. Every switch expression (default "Alternatively", "Wait", "But wait") is spelled
with its first letter as given, upper-cased and lower-cased, each bare (at a line start) and after a space
(mid-text: " Wait" and "Wait" are different tokens), and each spelling is tokenised with the model's own
tokenizer. Then:

- a one-word expression penalises the *first* token of each spelling. That is the token where the model
  commits to the word, and what a ``logit_bias`` implementation (which the paper suggests) can express.
  When a word takes several tokens ("alternatively" is "altern" + "atively" in the Qwen2.5 and SmolLM2
  vocabularies), penalising a later piece would only steer the model from "altern" to "alternative",
  which switches just the same. The cost: other words sharing that first piece are penalised too.
- a multi-word expression ("But wait") penalises the first token of its last word ("wait") only right
  after the tokens of the words before it (" But"). Penalising its first token would suppress every
  sentence that starts with "But", which is not a switch. A phrase token already penalised as a one-word
  spelling (" wait" is the lower-cased spelling of "Wait") stays unconditional.

A generated token counts as a switch (it moves ``psi``) exactly when it would have been penalised there:
a token of ``V`` in any context, or a phrase token right after its phrase's head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..backends.base import Generator, Tokenizer, require
from ..errors import CapabilityError, ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_SWITCH_WORDS: tuple[str, ...] = ("Alternatively", "Wait", "But wait")
"""Expressions that open a new thought in o1-like reasoning traces."""

Phrase = tuple[tuple[int, ...], int]
"""``(head, token)``: ``token`` is a switch when the generated tokens just before it are ``head``."""


@dataclass(frozen=True)
class ThoughtSwitchPenalty:
    """Subtracts ``alpha`` from the switch tokens' logits while ``t < psi + beta`` (a pure function).

    Build it with :func:`tip_processor`, which resolves the token ids from a model's tokenizer.
    """

    token_ids: frozenset[int]
    """Switch tokens penalised in any context (first tokens of one-word spellings)."""
    phrases: tuple[Phrase, ...] = ()
    """Switch tokens penalised only right after a head: the last words of multi-word expressions."""
    alpha: float = field(default=3.0, metadata={"help": "Logit penalty (the paper's 3)."})
    beta: int = field(default=600, metadata={"help": "Tokens a thought is protected for (the paper's 600)."})
    words: tuple[str, ...] = field(default=(), metadata={"help": "The expressions the ids came from."})

    def __post_init__(self) -> None:
        if not self.alpha >= 0:  # also refuses NaN
            raise ConfigError(f"alpha must be a number >= 0 (a penalty, not a bonus), got {self.alpha!r}")
        if self.beta < 0:
            raise ConfigError(f"beta must be an integer >= 0 (0 disables the penalty), got {self.beta!r}")
        if any(not head for head, _ in self.phrases):
            raise ConfigError("a phrase switch needs a non-empty head")

    def __call__(self, generated: Sequence[int], logits: npt.NDArray[np.float32]) -> None:
        if self.alpha == 0 or not self.in_window(generated):
            return
        ids = sorted(self.penalised(generated))
        if ids:
            logits[ids] -= self.alpha

    def in_window(self, generated: Sequence[int]) -> bool:
        """Whether the next token (position ``t = len(generated)``) satisfies ``t < psi + beta``."""
        t = len(generated)
        if t < self.beta:  # psi >= 0, so the first thought's window is always open
            return True
        # t < psi + beta  <=>  the last switch sits at psi >= t - beta + 1: scan only those positions
        return self.last_switch(generated, since=t - self.beta + 1) is not None

    def penalised(self, generated: Sequence[int]) -> set[int]:
        """The token ids to penalise next, given what was generated (phrase tokens need their head)."""
        ids = set(self.token_ids)
        for head, token in self.phrases:
            if _ends_with(generated, len(generated), head):
                ids.add(token)
        return ids

    def is_switch(self, generated: Sequence[int], i: int) -> bool:
        """Whether ``generated[i]`` is a switch token where it stands."""
        token = generated[i]
        if token in self.token_ids:
            return True
        return any(token == t and _ends_with(generated, i, head) for head, t in self.phrases)

    def last_switch(self, generated: Sequence[int], since: int = 0) -> int | None:
        """Position of the last switch token at or after ``since``, or None."""
        for i in range(len(generated) - 1, max(since, 0) - 1, -1):
            if self.is_switch(generated, i):
                return i
        return None

    def switches(self, generated: Sequence[int]) -> list[int]:
        """Positions of every switch token in ``generated`` (each starts a new thought)."""
        return [i for i in range(len(generated)) if self.is_switch(generated, i)]


def _ends_with(generated: Sequence[int], end: int, head: tuple[int, ...]) -> bool:
    """Whether ``generated[:end]`` ends with ``head``."""
    start = end - len(head)
    return start >= 0 and tuple(generated[start:end]) == head


def spellings(expression: str) -> tuple[str, ...]:
    """The spellings of a switch expression: first letter as given, upper and lower, bare and after a space."""
    e = expression.strip()
    forms = dict.fromkeys([e, e[:1].upper() + e[1:], e[:1].lower() + e[1:]])
    return tuple(space + form for form in forms for space in ("", " "))


def resolve_switch_tokens(
    tokenizer: Tokenizer, words: Sequence[str]
) -> tuple[frozenset[int], tuple[Phrase, ...]]:
    """The unconditional switch token ids and the phrase switches of ``words`` (see the module docstring)."""
    if isinstance(words, str) or not words or any(not w.strip() for w in words):
        raise ConfigError(f"switch words must be a non-empty sequence of non-blank strings, got {words!r}")
    ids: set[int] = set()
    phrases: dict[Phrase, None] = {}
    for word in words:
        for spelling in spellings(word):
            encoded = tokenizer.encode(spelling)
            head_text, _, last = spelling.rpartition(" ")
            head = tuple(tokenizer.encode(head_text)) if head_text.strip() else ()
            if head and tuple(encoded[: len(head)]) == head and len(encoded) > len(head):
                phrases[(head, encoded[len(head)])] = None
            elif encoded:  # a one-word spelling, or a phrase whose tokens straddle its word boundary
                ids.add(encoded[0])
    kept = tuple(p for p in phrases if p[1] not in ids)
    return frozenset(ids), kept


def tip_processor(
    generator: Generator,
    alpha: float = 3.0,
    beta: int = 600,
    words: Sequence[str] = DEFAULT_SWITCH_WORDS,
) -> ThoughtSwitchPenalty:
    """TIP for ``generator``'s vocabulary (a backend with a tokenizer and logits processors).

    Pass the result in ``SamplingParams.logits_processors``; any strategy can compose it that way.
    Raises :class:`~ttscale.errors.CapabilityError` for a backend that could not apply it.
    """
    require(generator, who="the thought-switching penalty (TIP)", tokenizer=True, logits_processors=True)
    if not isinstance(generator, Tokenizer):
        raise CapabilityError(f"model {generator.model.name!r} declares a tokenizer but has no encode()")
    ids, phrases = resolve_switch_tokens(generator, words)
    return ThoughtSwitchPenalty(ids, phrases, alpha, beta, tuple(words))
