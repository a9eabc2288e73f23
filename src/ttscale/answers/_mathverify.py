"""A thread-safe, time-bounded bridge to Hugging Face's math-verify (``pip install ttscale[math]``).

math-verify bounds parsing and comparison with ``signal.alarm`` (``parse(..., parsing_timeout=5)``,
``verify(..., timeout_seconds=5)`` in 0.9; both accept None to disable it). That has two problems:

- off the main thread ``signal`` raises ``ValueError``, which math-verify re-raises (it does not return
  False), so a strategy voting inside a worker thread would crash;
- on the main thread the alarm *replaces* any alarm already armed (pytest-timeout, an outer harness) and
  then cancels it with ``alarm(0)``, silently disarming the caller's own timeout.

So a signal timeout is passed only on the main thread of a POSIX process with no interval timer armed;
otherwise the timeout is None. Either way the work is bounded without signals, by heuristics:

- answers longer than :data:`MAX_CHARS` are not sent to math-verify;
- a parsed expression that could make sympy compute an enormous number or polynomial
  (``10^{10^{10}}``, ``(10^{10})!``, ``(x+1)^{5000}``: parsing leaves them unevaluated, comparing
  evaluates them and runs for minutes) is not compared;
- an answer using a function latex2sympy evaluates *while parsing* (``\\binom``, ``\\gcd``, ...) together
  with a 4-digit number, a power or a factorial is not parsed (``\\binom{1000000}{500000}`` takes a
  minute to parse).

Keyword arguments are passed only if the installed version's signature has them (checked with
``inspect.signature``), and any exception is a "no" (False), never a crash.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import math
import os
import re
import signal
import threading
from collections.abc import Callable
from typing import Any

MAX_CHARS = 256
"""Answers longer than this are compared only by the cheap checks."""
SIGNAL_TIMEOUT_SECONDS = 5
"""math-verify's own (signal) timeout, used on the main thread when no other alarm is armed."""
MAX_EXPONENT = 100
"""Largest integer exponent allowed on a symbolic base (expanding ``(x+1)^n`` is polynomial in n)."""
MAX_POWER_DIGITS = 10_000
"""Largest number of digits a numeric power may have."""
MAX_COMBINATORIAL_ARG = 1_000
"""Largest argument of factorial, binomial and friends."""
_SMALL_INT = 10**18
_EAGER_FUNCTIONS = re.compile(r"binom|choose|gcd|lcm|zeros|ones|diag")
"""Functions latex2sympy evaluates while parsing (so before any check of the parsed tree can run)."""
_BIG_ARGUMENT = re.compile(r"\d{4}|\^|!")
_ELEMENTARY = "sympy.functions.elementary"

Parsed = list[Any]


@functools.cache
def _library() -> tuple[Callable[..., Parsed], Callable[..., bool], bool, bool] | None:
    """(parse, verify, parse takes parsing_timeout, verify takes timeout_seconds), or None if missing."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_no_timeout_warning)
    p_params = inspect.signature(parse).parameters
    v_params = inspect.signature(verify).parameters
    return parse, verify, "parsing_timeout" in p_params, "timeout_seconds" in v_params


def _no_timeout_warning(record: logging.LogRecord) -> bool:
    """Drop math-verify's "Timeout is disabled ... provide the logic for timeout interruption yourself"
    warning: it is printed off the main thread, where this module bounds the work itself (see above), so
    in an evaluation log it only alarms."""
    return not record.getMessage().startswith("Timeout is disabled")


def available() -> bool:
    """True when math-verify can be imported."""
    return _library() is not None


def signal_timeout() -> int | None:
    """The timeout to hand math-verify here and now: seconds when a signal alarm is safe, else None."""
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return None
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # someone else's alarm: do not clobber it
        return None
    return SIGNAL_TIMEOUT_SECONDS


def parse_answer(answer: str) -> Parsed | None:
    """math-verify's parse of one bare answer (wrapped in ``\\boxed{}``), or None if it cannot be used."""
    lib = _library()
    if lib is None or len(answer) > MAX_CHARS:
        return None
    if _EAGER_FUNCTIONS.search(answer) and _BIG_ARGUMENT.search(answer):
        return None
    parse, _, has_timeout, _ = lib
    kwargs: dict[str, Any] = {"parsing_timeout": signal_timeout()} if has_timeout else {}
    try:
        parsed = parse(f"\\boxed{{{answer}}}", **kwargs)
    except Exception:
        return None
    if not parsed or any(_too_costly(x) for x in parsed):
        return None
    return parsed


def verify_parsed(gold: Parsed, target: Parsed) -> bool:
    """math-verify's verdict that ``target`` matches ``gold``; False on any error or timeout."""
    lib = _library()
    if lib is None:
        return False
    _, verify, _, has_timeout = lib
    kwargs: dict[str, Any] = {"timeout_seconds": signal_timeout()} if has_timeout else {}
    try:
        return bool(verify(gold, target, **kwargs))
    except Exception:
        return False


def numeric_value(parsed: Parsed) -> complex | None:
    """The value of a parsed answer that is a plain number built from numbers, constants, ``+ * ^`` and
    elementary functions (``\\sqrt{2}``, ``3\\pi/4``, ``\\ln 2``), else None (sets, tuples, symbols,
    percentages, sums, ...). Used to rule out, without math-verify, two answers that are clearly different
    numbers (math-verify would compare them numerically too, to 6 decimals)."""
    sympy = _sympy()
    expr = parsed[0]
    if not isinstance(expr, sympy.Expr) or expr.free_symbols:
        return None
    plain = (sympy.Number, sympy.NumberSymbol, sympy.Add, sympy.Mul, sympy.Pow, type(sympy.I))
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, plain):
            continue
        if isinstance(node, sympy.Function) and type(node).__module__.startswith(_ELEMENTARY):
            continue
        return None
    try:
        value = complex(expr.evalf(20))
    except Exception:
        return None
    return value if math.isfinite(value.real) and math.isfinite(value.imag) else None


def clearly_different(a: complex, b: complex) -> bool:
    """True when two values differ by more than 1e-4, relative to ``max(1, |a|, |b|)``."""
    return abs(a - b) > 1e-4 * max(1.0, abs(a), abs(b))


def _sympy() -> Any:
    """sympy (a math-verify dependency, without type stubs), imported when first needed."""
    return importlib.import_module("sympy")


def _small_int(expr: Any) -> int | None:
    """The value of a numeric integer expression if it is provably small, else None (no evaluation)."""
    sympy = _sympy()

    if isinstance(expr, sympy.Integer):
        value = int(expr)
        return value if abs(value) < _SMALL_INT else None
    if isinstance(expr, sympy.Pow):
        base, exp = _small_int(expr.base), _small_int(expr.exp)
        if base is None or exp is None or exp < 0:
            return None
        if exp * math.log2(abs(base) + 1) > 60:
            return None
        return int(base**exp)
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        values = [_small_int(a) for a in expr.args]
        if any(v is None for v in values):
            return None
        ints = [v for v in values if v is not None]
        total = sum(ints) if isinstance(expr, sympy.Add) else math.prod(ints)
        return total if abs(total) < _SMALL_INT else None
    return None


def _costly_node(node: Any) -> bool:
    sympy = _sympy()

    if isinstance(node, sympy.Pow):
        exp = node.exp
        if exp.free_symbols:
            return False
        if not exp.is_Number:
            exp_value = _small_int(exp)
            if exp_value is None:
                return True  # a tower such as 2^{2^{100}}
            exp = sympy.Integer(exp_value)
        if not exp.is_Integer:
            return isinstance(exp, sympy.Rational) and max(abs(exp.p), abs(exp.q)) > MAX_POWER_DIGITS
        if node.base.free_symbols:
            return abs(int(exp)) > MAX_EXPONENT
        base = _small_int(node.base)
        digits_per_unit = math.log10(abs(base) + 1) if base is not None else 20.0
        return abs(int(exp)) * max(digits_per_unit, 1.0) > MAX_POWER_DIGITS
    combinatorial = (
        sympy.factorial,
        sympy.factorial2,
        sympy.binomial,
        sympy.subfactorial,
        sympy.gamma,
        sympy.RisingFactorial,
        sympy.FallingFactorial,
    )
    if isinstance(node, combinatorial):
        for arg in node.args:
            if not arg.free_symbols:
                value = _small_int(arg)
                if value is None or abs(value) > MAX_COMBINATORIAL_ARG:
                    return True
    return False


def _too_costly(parsed: Any) -> bool:
    """True if comparing ``parsed`` could make sympy build an enormous number or polynomial."""
    sympy = _sympy()

    if isinstance(parsed, str):
        return False
    try:
        if isinstance(parsed, sympy.MatrixBase):
            return any(_too_costly(x) for x in parsed)
        if isinstance(parsed, sympy.Basic):
            return any(_costly_node(node) for node in sympy.preorder_traversal(parsed))
    except Exception:
        return True
    return False
