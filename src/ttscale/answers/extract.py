"""Find the final answer in a model's response.

Tried in order, the first that finds something wins:

1. the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched by a scan, so
   ``\\boxed{\\frac{1}{2}}`` works; the MATH benchmark's ``last_boxed_only_string`` convention,
   Hendrycks et al. 2021);
2. the last "Final Answer: ...", "final answer is ...", "The answer is ..." or "Answer: ..." line (the
   last is openai/simple-evals' ``ANSWER_PATTERN``): the rest of that line, without surrounding ``$`` and
   a trailing period;
3. GSM8K's ``#### N`` marker (Cobbe et al. 2021; karpathy/nanochat ``tasks/gsm8k.py``);
4. a kind-specific fallback: the last number (``math`` and ``number``), the last arithmetic expression
   (``game24``), or the last non-empty line (``text``).

For ``number`` an answer line that is not itself a number is narrowed to its last number; for ``game24``
a boxed or answer-line value is narrowed to the expression on one side of ``=``, and skipped if it holds
no expression. When something is found, ``text[start:end] == value``.

    >>> extract_answer("so the area is $\\\\boxed{\\\\frac{1}{2}}$.")
    Extraction(value='\\\\frac{1}{2}', method='boxed', start=23, end=34)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from .normalize import normalize_number

Method = Literal["boxed", "final_answer", "gsm8k", "last_number", "expression", "last_line", "none"]
KINDS = ("math", "number", "game24", "text")

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_LINE = re.compile(
    r"(?:final\s+answer[ \t*]*(?:is\b|:)|the\s+answer\s+is\b|(?:^|\n)[ \t*#]*answer[ \t*]*:)[ \t*:]*",
    re.IGNORECASE,
)
_GSM8K = re.compile(r"####\s*([^\n]*)")
_NUMBER = re.compile(
    r"(?<![\w)\].])-?\\[dt]?frac\{\d+\}\{\d+\}"
    r"|(?:(?<![\w)\]])-)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?"
    r"|(?:(?<![\w)\]])-)?\.\d+"
)
_EXPRESSION = re.compile(r"(?:\d+|[-+*/()×÷−· \t]|\\times|\\div|\\cdot)+")
_OPERATOR = re.compile(r"[-+*/×÷−·]|\\times|\\div|\\cdot")
_LEADING_JUNK = " \t)*/+×÷·"
_TRAILING_JUNK = " \t(+-*/×÷−·"


@dataclass(frozen=True)
class Extraction:
    """Where the final answer of a response is, and how it was found."""

    value: str | None
    """The answer text (``text[start:end]``), or None when nothing was found."""
    method: Method
    """Which rule found it; ``"none"`` when nothing was found."""
    start: int
    """Start of the answer in the response (0 when nothing was found)."""
    end: int
    """End (exclusive) of the answer in the response (0 when nothing was found)."""


_NOTHING = Extraction(None, "none", 0, 0)


def _trim(text: str, start: int, end: int, chars: str = " \t\n") -> tuple[int, int]:
    while start < end and text[start] in chars:
        start += 1
    while end > start and text[end - 1] in chars:
        end -= 1
    return start, end


def _brace_end(text: str, open_at: int) -> int | None:
    """Index of the ``}`` matching the ``{`` at ``open_at`` (escaped ``\\{`` ``\\}`` skipped), or None."""
    depth, i = 0, open_at
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """Content spans of every complete ``\\boxed{...}`` (or ``\\boxed 5``) in order of appearance."""
    spans = []
    for m in _BOXED.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            close = _brace_end(text, i)
            if close is not None:
                spans.append(_trim(text, i + 1, close))
        elif text[m.end() - 1].isspace():
            word = re.match(r"[^\s$]+", text[i:])  # "\boxed 5$" (MATH's space form)
            if word:
                spans.append((i, i + word.end()))
    return [s for s in spans if s[1] > s[0]]


def _answer_in_line(text: str, start: int, end: int) -> tuple[int, int]:
    """The answer in the rest of an answer line: its leading ``$...$`` / ``\\(...\\)`` if it opens with
    one (as in "The final answer is $42$. I hope it is correct."), else the line, minus a final period."""
    start, end = _trim(text, start, end, " \t*")
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(opener, start):
            close = text.find(closer, start + len(opener), end)
            if close > 0:
                return _trim(text, start + len(opener), close)
            break
    while end > start and text[end - 1] in " \t.*$":
        end -= 1
    return _trim(text, start, end, " \t$")


def _answer_line_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _ANSWER_LINE.finditer(text):
        start = m.end()
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if not text[start:end].strip():  # "Final Answer:\n42": take the next non-empty line
            nxt = re.search(r"\S[^\n]*", text[end:])
            if nxt is None:
                continue
            start, end = end + nxt.start(), end + nxt.end()
        spans.append(_answer_in_line(text, start, end))
    # "the final answer is \boxed" or "\(\boxed{\frac{14}{" cut off before its braces close: an unfinished
    # box, not an answer (a complete box was taken by the boxed rule already)
    return [s for s in spans if s[1] > s[0] and not re.search(r"\\(?:boxed|fbox)", text[s[0] : s[1]])]


def _last_number(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    last = None
    for last in _NUMBER.finditer(text, lo, hi):  # noqa: B007 - we want the final match
        pass
    return None if last is None else last.span()


def _balance(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop dangling operators and unmatched outer parentheses from an expression span."""
    while start < end and text[start] in _LEADING_JUNK:
        start += 1
    while end > start and text[end - 1] in _TRAILING_JUNK:
        end -= 1
    while start < end:
        piece = text[start:end]
        opens, closes = piece.count("("), piece.count(")")
        if opens > closes and text[start] == "(":
            start += 1
        elif closes > opens and text[end - 1] == ")":
            end -= 1
        else:
            break
        start, end = _trim(text, start, end)
    return start, end


def _expression_in(text: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The last run of digits, operators and parentheses in ``text[lo:hi]`` holding an operation."""
    best = None
    for m in _EXPRESSION.finditer(text, lo, hi):
        start, end = _balance(text, *m.span())
        piece = text[start:end]
        if len(re.findall(r"\d+", piece)) >= 2 and _OPERATOR.search(piece):
            best = (start, end)
    return best


def _refine(text: str, span: tuple[int, int], kind: str) -> tuple[int, int] | None:
    """Narrow a boxed / answer-line span to what ``kind`` needs; None means "look further"."""
    if kind == "game24":
        return _expression_in(text, *span)
    if kind == "number" and normalize_number(text[span[0] : span[1]]) is None:
        return _last_number(text, *span) or span
    return span


def _found(text: str, span: tuple[int, int], method: Method) -> Extraction:
    return Extraction(text[span[0] : span[1]], method, span[0], span[1])


def check_kind(kind: str) -> None:
    """Raise :class:`~ttscale.errors.ConfigError` unless ``kind`` is a known answer kind."""
    if kind not in KINDS:
        raise ConfigError(f"unknown answer kind {kind!r}; use one of {', '.join(KINDS)}")


def extract_answer(text: str, kind: str = "math") -> Extraction:
    """The final answer in ``text``, for an answer of ``kind`` (``math``, ``number``, ``game24``, ``text``).

    Returns ``Extraction(None, "none", 0, 0)`` when nothing is found. See the module docstring for the
    order of rules.
    """
    check_kind(kind)
    anchored: tuple[tuple[Method, list[tuple[int, int]]], ...] = (
        ("boxed", _boxed_spans(text)),
        ("final_answer", _answer_line_spans(text)),
    )
    for method, spans in anchored:
        for span in reversed(spans):
            refined = _refine(text, span, kind)
            if refined is not None:
                return _found(text, refined, method)
    if kind in ("math", "number"):
        gsm = list(_GSM8K.finditer(text))
        if gsm:
            span = _trim(text, *gsm[-1].span(1), " \t.$")
            if span[1] > span[0]:
                return _found(text, span, "gsm8k")
        number = _last_number(text, 0, len(text))
        return _NOTHING if number is None else _found(text, number, "last_number")
    if kind == "game24":
        expression = _expression_in(text, 0, len(text))
        return _NOTHING if expression is None else _found(text, expression, "expression")
    lines = [m.span() for m in re.finditer(r"[^\n]*\S[^\n]*", text)]
    return _NOTHING if not lines else _found(text, _trim(text, *lines[-1]), "last_line")
