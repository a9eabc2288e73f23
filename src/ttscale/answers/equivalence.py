"""When two final answers are the same answer, and when a prediction is correct.

Each kind has its own notion of "same":

- ``number``: the same number, exactly (as :class:`~fractions.Fraction`), or within 1e-6 relative error
  when either side was written as a decimal; answers that are not numbers compare as normalised strings.
- ``math``: cheap checks first (the same normalised string per the MATH benchmark's rules, or both
  numbers: then the numeric comparison decides), then Hugging Face's math-verify, symmetrically
  (either direction suffices). math-verify is imported lazily and bounded in time and size; see
  :mod:`ttscale.answers._mathverify`. Without math-verify installed only the cheap checks run, so
  ``\\left( 3, \\frac{\\pi}{2} \\right)`` and ``(3, \\pi/2)`` are then different answers.
- ``game24``: two valid solutions are the same answer (of the same puzzle: the same multiset of numbers,
  value 24); invalid expressions are the same only if they are spelt the same.
- ``text``: SQuAD exact match after normalisation.

The cheap part of each comparison is a canonical key (:func:`answer_key`): equal keys imply equivalent
answers, which lets :func:`~ttscale.answers.vote.group_answers` bucket answers in a dict and call
math-verify only between buckets.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..errors import ConfigError
from . import _mathverify
from .extract import check_kind, extract_answer
from .game24 import analyze_expression, canonical_expression, check_24
from .normalize import ParsedNumber, normalize_math_string, normalize_text, numbers_match, parse_number


@dataclass(frozen=True)
class AnswerForm:
    """One answer with its normal forms computed once (math-verify's parse only when first needed)."""

    raw: str
    """The answer as given."""
    kind: str
    """The answer kind it is read as."""
    numbers: tuple[int, ...] | None = None
    """For ``game24``: the puzzle's numbers, when known."""

    @cached_property
    def number(self) -> ParsedNumber | None:
        """The answer as a number, for ``math`` and ``number``."""
        return parse_number(self.raw) if self.kind in ("math", "number") else None

    @cached_property
    def key(self) -> Hashable:
        """A canonical key: answers with equal keys are equivalent."""
        if self.number is not None:
            return ("num", self.number.value)
        if self.kind == "math":
            return ("str", normalize_math_string(self.raw))
        if self.kind == "number":
            return ("str", " ".join(self.raw.lower().split()))
        if self.kind == "text":
            return ("str", normalize_text(self.raw))
        return _game24_key(self.raw, self.numbers)

    @cached_property
    def parsed(self) -> list[Any] | None:
        """math-verify's parse of the answer (``math`` only), or None when unavailable or unsafe.

        A parse with no expression in it, only leftover strings ("x = \\text{Carla}" parses to ``['x =']``),
        is none: two such parses would compare equal whatever the words were."""
        if self.kind != "math":
            return None
        parsed = _mathverify.parse_answer(self.raw.strip())
        if parsed is not None and all(isinstance(p, str) for p in parsed):
            return None
        return parsed

    @cached_property
    def value(self) -> complex | None:
        """The numeric value of :attr:`parsed`, when it is a plain number (``math`` only)."""
        return None if self.parsed is None else _mathverify.numeric_value(self.parsed)


def _game24_key(expr: str, numbers: Sequence[int] | None) -> Hashable:
    if numbers is not None:
        if check_24(expr, numbers).valid:
            return ("valid", tuple(sorted(numbers)))
    else:
        analyzed = analyze_expression(expr)
        if not isinstance(analyzed, str) and analyzed[0] == 24:
            return ("valid", tuple(sorted(analyzed[1])))
    return ("str", canonical_expression(expr))


def forms_equivalent(a: AnswerForm, b: AnswerForm) -> bool:
    """The equivalence of :func:`equivalent`, on precomputed forms (both of the same kind)."""
    if a.key == b.key:
        return True
    if a.number is not None and b.number is not None:
        return numbers_match(a.number, b.number)
    if a.kind != "math":
        return False
    pa, pb = a.parsed, b.parsed
    if pa is None or pb is None:
        return False
    if a.value is not None and b.value is not None and _mathverify.clearly_different(a.value, b.value):
        return False
    return _mathverify.verify_parsed(pa, pb) or _mathverify.verify_parsed(pb, pa)


def equivalent(a: str, b: str, kind: str, *, numbers: Sequence[int] | None = None) -> bool:
    """True if the extracted answers ``a`` and ``b`` are the same answer for an answer of ``kind``.

    Symmetric. ``numbers`` (``game24`` only) are the puzzle's numbers; without them two expressions are
    the same answer when both equal 24 using the same numbers.

    >>> equivalent("0.5", "\\\\dfrac12", "math"), equivalent("$18.00", "18", "number")
    (True, True)
    """
    check_kind(kind)
    nums = tuple(numbers) if numbers is not None else None
    return forms_equivalent(AnswerForm(a, kind, nums), AnswerForm(b, kind, nums))


def _gold_answer(gold: str, kind: str) -> str:
    """A gold string that is a whole solution (``\\boxed{}`` or ``####`` inside) is reduced to its answer."""
    if kind in ("math", "number") and ("\\boxed" in gold or "####" in gold):
        found = extract_answer(gold, kind)
        if found.value is not None:
            return found.value
    return gold


def _puzzle_numbers(numbers: Sequence[int] | None, metadata: Mapping[str, Any] | None) -> Sequence[int]:
    if numbers is not None:
        return numbers
    if metadata is not None and "numbers" in metadata:
        return [int(n) for n in metadata["numbers"]]
    raise ConfigError(
        "a game24 answer needs the puzzle's numbers: "
        "pass numbers=[...] or problem_metadata={'numbers': [...]}"
    )


def is_correct(
    predicted: str | None,
    gold: str,
    kind: str,
    *,
    problem_metadata: Mapping[str, Any] | None = None,
    numbers: Sequence[int] | None = None,
) -> bool:
    """The evaluator's verdict: does the extracted ``predicted`` answer match the answer key ``gold``?

    ``None`` (nothing extracted) is never correct. For ``game24`` ``gold`` is ignored (usually ``""``):
    the prediction must be a valid solution for ``numbers`` or ``problem_metadata["numbers"]``. For
    ``math`` math-verify is called with ``gold`` in the gold position (it is not symmetric). A ``gold``
    holding a whole worked solution (with ``\\boxed{}`` or ``####``) is reduced to its final answer.
    """
    check_kind(kind)
    if predicted is None:
        return False
    if kind == "game24":
        return check_24(predicted, _puzzle_numbers(numbers, problem_metadata)).valid
    g = AnswerForm(_gold_answer(gold, kind), kind)
    p = AnswerForm(predicted, kind)
    if g.key == p.key:
        return True
    if g.number is not None and p.number is not None:
        return numbers_match(g.number, p.number)
    if kind != "math" or g.parsed is None or p.parsed is None:
        return False
    if g.value is not None and p.value is not None and _mathverify.clearly_different(g.value, p.value):
        return False
    return _mathverify.verify_parsed(g.parsed, p.parsed)
