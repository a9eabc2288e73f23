"""Cheap, deterministic normalisation of final answers: numbers, LaTeX math strings and free text.

Three normalisers, each following a published convention (rules re-implemented here, not copied):

- :func:`normalize_number` follows the GSM8K convention of grading the final number after dropping
  thousands separators, currency signs and units (Cobbe et al. 2021, "Training Verifiers to Solve Math
  Word Problems", arXiv:2110.14168; as graded in karpathy/nanochat ``tasks/gsm8k.py``), and the
  ``\\frac``/``\\dfrac`` handling of the MATH benchmark's ``is_equiv``.
- :func:`normalize_math_string` follows the answer normalisation of the MATH benchmark (Hendrycks et al.
  2021, "Measuring Mathematical Problem Solving With the MATH Dataset", arXiv:2103.03874, ``strip_string``)
  and Minerva's ``normalize_final_answer`` (Lewkowycz et al. 2022, arXiv:2206.14858): drop ``\\left`` /
  ``\\right``, units, degrees, dollar and percent signs and spaces; canonicalise ``\\dfrac12`` and ``1/2``
  to ``\\frac{1}{2}``; drop a short ``x =`` in front.
- :func:`normalize_text` is SQuAD exact-match normalisation (Rajpurkar et al. 2016, arXiv:1606.05250):
  lowercase, drop punctuation and the articles a/an/the, collapse whitespace.

Example::

    >>> normalize_number("$1,234.50")
    Fraction(2469, 2)
    >>> normalize_math_string("\\\\left( 3, \\\\dfrac12 \\\\right)")
    '(3,\\\\frac{1}{2})'
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from fractions import Fraction

MAX_NUMBER_CHARS = 100
"""Longer strings are not numbers (also keeps ``Fraction`` away from enormous integers)."""

_LATEX_SPACES = re.compile(r"\\[,;:! ]|~|\\quad|\\qquad")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_CURRENCY = re.compile(r"\\\$|\$|€|£|¥|\\euro")
_PERCENT = re.compile(r"\\%|%|\\percent")
_TRAILING_UNIT = re.compile(r"\s+(?!pi\b)[A-Za-z]{2,}\.?(?:\s*\^\s*\{?\d\}?)?\s*$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_DECIMAL = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")
_SLASH_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_LATEX_FRACTION = re.compile(rf"^([+-]?)\\frac\{{({_NUM})\}}\{{({_NUM})\}}$")
_FRAC_SHORTHAND = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_HALF_SHORTHAND = re.compile(r"\\frac\s*\{([^{}]*)\}\s*(\d)")
_FRAC_FIRST_SHORTHAND = re.compile(r"\\frac\s*(\d)\s*\{")
_SQRT_SHORTHAND = re.compile(r"\\sqrt\s*(\d|[a-zA-Z](?![a-zA-Z]))")
_SHORT_LHS = re.compile(r"^\s*[A-Za-z](?:_\{?\w\}?)?\s*=\s*(?!=)")
_INT_SLASH = re.compile(r"^(-?\d+)/(\d+)$")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


@dataclass(frozen=True)
class ParsedNumber:
    """A number read from an answer string."""

    value: Fraction
    """The exact value."""
    decimal: bool
    """True when the string was written with a decimal point or exponent (compared with a tolerance)."""


def _strip_number_decorations(s: str) -> str:
    """Currency, percent, degrees, units, LaTeX spacing and wrappers, thousands separators: all go."""
    s = s.strip().replace("−", "-").replace("{,}", "")
    s = _LATEX_SPACES.sub("", s)
    s = _TEXT_WRAPPER.sub(r" \1 ", s)
    s = _DEGREES.sub("", s)
    s = _CURRENCY.sub("", s)
    s = _PERCENT.sub("", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    s = s.strip().rstrip(".").strip()
    if s.count("=") == 1:  # "x = 5": grade the right-hand side, as Minerva does
        s = s.split("=")[1].strip()
    for _ in range(3):  # "5 cm", "18 dollars", "3 m^2", "12 sq. ft"
        stripped = _TRAILING_UNIT.sub("", s)
        if stripped == s or not stripped:
            break
        s = stripped.rstrip(".").strip()
    s = s.strip()
    if len(s) >= 2 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1].strip()
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s.replace(" ", "")


def _plain_number(s: str) -> ParsedNumber | None:
    if _DECIMAL.match(s):
        return ParsedNumber(Fraction(s), decimal=any(c in s for c in ".eE"))
    m = _SLASH_FRACTION.match(s)
    if m and int(m.group(2)) != 0:
        return ParsedNumber(Fraction(int(m.group(1)), int(m.group(2))), decimal=False)
    return None


def parse_number(s: str) -> ParsedNumber | None:
    """Read ``s`` as one number, remembering whether it was written as a decimal; None if it is not one.

    Accepts integers, decimals (``.5``, ``18.00``, ``1.5e3``), ``a/b``, ``\\frac{a}{b}``, ``\\dfrac{a}{b}``,
    ``\\tfrac`` and the shorthand ``\\frac12``, with a sign, currency signs, a percent sign (kept as
    written: ``50%`` reads as 50, the GSM8K and MATH convention), degrees, trailing unit words, ``x =`` in
    front, thousands separators (``1,234``; a comma elsewhere, as in ``1,2``, is not a number).
    """
    if len(s) > MAX_NUMBER_CHARS:
        return None
    s = _strip_number_decorations(s)
    if not s or len(s) > MAX_NUMBER_CHARS:
        return None
    plain = _plain_number(s)
    if plain is not None:
        return plain
    s = _FRAC_SHORTHAND.sub(r"\\frac{\1}{\2}", s)
    m = _LATEX_FRACTION.match(s)
    if m is None:
        return None
    num, den = (_plain_number(g) for g in (m.group(2), m.group(3)))
    if num is None or den is None or den.value == 0:
        return None
    value = num.value / den.value
    return ParsedNumber(-value if m.group(1) == "-" else value, decimal=num.decimal or den.decimal)


def normalize_number(s: str) -> Fraction | None:
    """The exact value of ``s`` if it reads as a single number, else None. See :func:`parse_number`.

    >>> normalize_number("\\\\dfrac{3}{4}"), normalize_number("-1,000 dollars"), normalize_number("1,2")
    (Fraction(3, 4), Fraction(-1000, 1), None)
    """
    parsed = parse_number(s)
    return None if parsed is None else parsed.value


def numbers_match(a: ParsedNumber, b: ParsedNumber, rel_tol: float = 1e-6) -> bool:
    """Exact equality, or within ``rel_tol`` relative error when either side was written as a decimal."""
    if a.value == b.value:
        return True
    if not (a.decimal or b.decimal):
        return False
    scale = max(abs(a.value), abs(b.value))
    return abs(a.value - b.value) <= Fraction(repr(rel_tol)) * scale


def _fix_int_slash(s: str) -> str:
    m = _INT_SLASH.match(s)
    return f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}" if m else s


def normalize_math_string(s: str) -> str:
    """A canonical spelling of a LaTeX answer, for cheap string equality (MATH ``strip_string`` rules).

    Spaces, ``\\left``/``\\right``, ``\\!``, ``$``, ``\\%``, degrees, a trailing ``\\text{units}`` and a short
    ``x =`` in front are dropped; ``\\dfrac``/``\\tfrac`` become ``\\frac``; ``\\frac12`` becomes
    ``\\frac{1}{2}``, ``\\sqrt3`` becomes ``\\sqrt{3}``, ``.5`` becomes ``0.5`` and ``3/4`` becomes
    ``\\frac{3}{4}``. Two strings with the same normal form are equivalent; different normal forms decide
    nothing (that is math-verify's job).
    """
    s = s.strip().replace("\n", " ").replace("−", "-")
    s = _LATEX_SPACES.sub(" ", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    s = _LEFT_RIGHT.sub("", s)
    s = _DEGREES.sub("", s)
    s = _CURRENCY.sub("", s)
    s = _PERCENT.sub("", s)
    # trailing units after a value, "5 \text{ cm}"; an answer that is only words ("\text{Evelyn}",
    # "x = \text{Evelyn}", "Answer: \text{odd}") is kept
    s = re.sub(r"(?<=[^\s=:])\s*\\(?:text|mbox)\{\s*[A-Za-z ]*\}\s*$", "", s)
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = _SHORT_LHS.sub("", s)
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    s = _SQRT_SHORTHAND.sub(r"\\sqrt{\1}", s)
    s = _FRAC_SHORTHAND.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_HALF_SHORTHAND.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_FIRST_SHORTHAND.sub(r"\\frac{\1}{", s)
    s = s.replace(" ", "")
    return _fix_int_slash(s)


def normalize_text(s: str) -> str:
    """SQuAD exact-match normal form: lowercase, no punctuation, no articles, single spaces."""
    s = "".join(c for c in s.lower() if c not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())
