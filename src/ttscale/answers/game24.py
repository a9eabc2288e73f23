"""A safe checker for Game-of-24 answers (as used in Tree of Thoughts, Yao et al. 2023, arXiv:2305.10601).

A solution is an arithmetic expression that uses each of the puzzle's numbers exactly once, combined with
``+ - * /`` and parentheses, and equals 24 in exact arithmetic::

    >>> check_24("(8 - 4) * (7 - 1) = 24", [1, 4, 7, 8])
    Game24Check(valid=True, reason='ok', value=Fraction(24, 1))

Nothing is ever evaluated by Python: the text is length-bounded, restricted to digits, spaces, the four
operators and parentheses, parsed with ``ast.parse(mode="eval")`` and walked by a tiny interpreter that
knows only ``BinOp`` (Add, Sub, Mult, Div) and non-negative integer constants, computing with
:class:`fractions.Fraction`. Unary minus (and plus) is rejected: the classic game combines the given
numbers with the four binary operations only, and every result a unary minus could reach is reachable by
reordering a subtraction. ``**`` and ``//`` are rejected as operators not in the game. Common spellings of
the operators (``×``, ``÷``, ``\\times``, ``\\div``, ``\\cdot``, ``−``) are accepted, and a trailing
``= 24`` is ignored.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

MAX_EXPRESSION_CHARS = 200
"""Longer expressions are refused before parsing."""

_SYNONYMS = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("×", "*"),
    ("·", "*"),
    ("∗", "*"),
    ("\\div", "/"),
    ("÷", "/"),
    ("−", "-"),
    ("–", "-"),
    ("\\left", ""),
    ("\\right", ""),
    ("\\(", ""),
    ("\\)", ""),
    ("$", ""),
)
_ALLOWED_CHARS = frozenset("0123456789+-*/() \t")
_EQUALS_TARGET = re.compile(r"\s*=\s*(-?\d+(?:\.\d*)?)\s*\.?\s*$")
_TARGET_EQUALS = re.compile(r"^\s*(-?\d+(?:\.\d*)?)\s*=\s*")


@dataclass(frozen=True)
class Game24Check:
    """The verdict on one Game-of-24 answer."""

    valid: bool
    """True when the expression uses exactly the puzzle's numbers and equals the target."""
    reason: str
    """``"ok"`` when valid, otherwise what is wrong, in words."""
    value: Fraction | None
    """The expression's exact value, when it could be evaluated."""


class _Invalid(Exception):
    """Internal: an expression outside the allowed grammar, or one that divides by zero."""


def canonical_expression(expr: str) -> str:
    """The expression with operator synonyms replaced, a ``= 24`` (or ``24 =``) dropped, and no spaces."""
    s = expr.strip()
    for old, new in _SYNONYMS:
        s = s.replace(old, new)
    s = _EQUALS_TARGET.sub("", s)
    s = _TARGET_EQUALS.sub("", s)
    return "".join(s.split())


def _evaluate(node: ast.expr, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:  # bool is an int subclass; floats, strings, ... are not numbers here
            raise _Invalid(f"only integer numbers are allowed, not {node.value!r}")
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, used), _evaluate(node.right, used)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise _Invalid("division by zero")
            return left / right
        raise _Invalid(f"operator {type(node.op).__name__} is not allowed (only + - * /)")
    if isinstance(node, ast.UnaryOp):
        raise _Invalid("unary operators are not allowed (the game combines numbers with + - * / only)")
    raise _Invalid(f"{type(node).__name__} is not allowed in an answer")


def analyze_expression(expr: str) -> tuple[Fraction, tuple[int, ...]] | str:
    """Evaluate a Game-of-24 style expression safely.

    Returns its exact value and the numbers it uses (in order of appearance), or a string saying why it is
    not an allowed expression.
    """
    if len(expr) > MAX_EXPRESSION_CHARS:
        return f"expression longer than {MAX_EXPRESSION_CHARS} characters"
    s = canonical_expression(expr)
    if not s:
        return "empty expression"
    bad = sorted(set(s) - _ALLOWED_CHARS)
    if bad:
        return f"characters not allowed: {''.join(bad)!r} (use digits, + - * / and parentheses)"
    try:
        tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "not a well-formed arithmetic expression"
    used: list[int] = []
    try:
        value = _evaluate(tree.body, used)
    except _Invalid as e:
        return str(e)
    except RecursionError:
        return "expression nested too deeply"
    return value, tuple(used)


def _numbers_problem(used: Sequence[int], numbers: Sequence[int]) -> str | None:
    """What is wrong with the numbers used (extra uses first, then missing ones), or None."""
    have, want = Counter(used), Counter(numbers)
    for n in sorted(have):
        if have[n] > want[n] == 0:
            return f"{n} is not one of the puzzle's numbers {sorted(numbers)}"
        if have[n] > want[n]:
            return f"{n} is used {have[n]} times but the puzzle has it {want[n]} time(s)"
    for n in sorted(want):
        if have[n] < want[n]:
            return f"{n} is not used (each of {sorted(numbers)} must be used exactly once)"
    return None


def check_24(expr: str, numbers: Sequence[int], target: int = 24) -> Game24Check:
    """Is ``expr`` a solution of the puzzle ``numbers``: each used exactly once, value exactly ``target``?

    Never raises on bad input and never evaluates code; an invalid answer comes back with ``valid=False``
    and a reason.
    """
    analyzed = analyze_expression(expr)
    if isinstance(analyzed, str):
        return Game24Check(False, analyzed, None)
    value, used = analyzed
    problem = _numbers_problem(used, numbers)
    if problem is not None:
        return Game24Check(False, problem, value)
    if value != target:
        return Game24Check(False, f"the expression equals {value}, not {target}", value)
    return Game24Check(True, "ok", value)
