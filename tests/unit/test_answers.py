"""Answer extraction, normalisation, equivalence, Game-of-24 checking and vote grouping."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale.answers import (
    AnswerGroup,
    Extraction,
    Game24Check,
    _mathverify,
    check_24,
    equivalent,
    extract_answer,
    group_answers,
    is_correct,
    normalize_number,
)
from ttscale.errors import ConfigError

needs_math_verify = pytest.mark.skipif(not _mathverify.available(), reason="math-verify not installed")


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a worker thread; return its result or re-raise its exception."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # pragma: no cover - only on failure
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "worker thread hung"
    if "error" in out:
        raise out["error"]
    return out["value"]


# --- extraction -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("So the probability is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{{a}+b}", "{a}+b"),
        ("The set is \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("first \\boxed{3}, then \\boxed{4}", "4"),
        ("\\fbox{7} is it", "7"),
        ("\\boxed 5$ is the answer", "5"),
        ("finished \\boxed{3} but then \\boxed{\\frac{1}{", "3"),  # a truncated box is skipped
    ],
)
def test_boxed(text: str, value: str) -> None:
    e = extract_answer(text)
    assert (e.value, e.method) == (value, "boxed")
    assert text[e.start : e.end] == value


def test_boxed_beats_answer_line_and_markers() -> None:
    text = "The answer is 3.\n#### 4\nso \\boxed{5}"
    assert extract_answer(text).value == "5"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("work...\nFinal Answer: 42", "42"),
        ("work...\nfinal answer: $x^2 + 1$.", "x^2 + 1"),
        ("Final Answer: The final answer is $42$. I hope it is correct.", "42"),
        ("**Final Answer:** 17.", "17"),
        ("So the answer is \\(\\frac{3}{4}\\).", "\\frac{3}{4}"),
        ("THE ANSWER IS 12", "12"),
        ("Answer: 9", "9"),
        ("Final Answer:\n  x = 3\n", "x = 3"),
    ],
)
def test_final_answer_line(text: str, value: str) -> None:
    e = extract_answer(text)
    assert (e.value, e.method) == (value, "final_answer")
    assert text[e.start : e.end] == value


def test_final_answer_narrowed_to_a_number_for_kind_number() -> None:
    assert extract_answer("The answer is: she has 72 apples left", "number").value == "72"
    assert extract_answer("The answer is 72 apples.", "number").value == "72 apples"


def test_gsm8k_marker_with_commas() -> None:
    text = "She sells 1,000 at $2 each and earns 1,234 more.\n#### 3,234"
    e = extract_answer(text, "number")
    assert (e.value, e.method) == ("3,234", "gsm8k")
    assert normalize_number(e.value) == 3234


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("the temperature fell to -4 degrees", "-4"),
        ("we get 3.75 then", "3.75"),
        ("about 1,234,567 people, not 12", "12"),
        ("about 1,234,567 people", "1,234,567"),
        ("so 5-3 leaves 2 ... wait, it is -2.5", "-2.5"),
        ("the ratio is 3/4.", "3/4"),
        ("half: $\\frac{1}{2}$", "\\frac{1}{2}"),
        ("x-7", "7"),  # a minus after a letter is subtraction, not a sign
    ],
)
def test_last_number_fallback(text: str, value: str) -> None:
    e = extract_answer(text)
    assert (e.value, e.method) == (value, "last_number")


@pytest.mark.parametrize("kind", ["math", "number", "game24", "text"])
def test_nothing_found(kind: str) -> None:
    assert extract_answer("no digits here, nothing at all\n" if kind != "text" else "  \n ", kind) == (
        Extraction(None, "none", 0, 0)
    )


@pytest.mark.parametrize(
    ("text", "value", "method"),
    [
        ("Let's try (8 - 4) * (7 - 1) = 24", "(8 - 4) * (7 - 1)", "expression"),
        ("Answer: (8 - 4) * (7 - 1) = 24", "(8 - 4) * (7 - 1)", "final_answer"),
        ("\\boxed{(8-4) \\times (7-1) = 24}", "(8-4) \\times (7-1)", "boxed"),
        ("24 = ((13 - 9) * (4 + 2))", "((13 - 9) * (4 + 2))", "expression"),
        ("8 - 4 = 4 (left: 4 7 1)\n4 * 6 = 24\nAnswer: 24", "4 * 6", "expression"),
    ],
)
def test_game24_extraction(text: str, value: str, method: str) -> None:
    e = extract_answer(text, "game24")
    assert (e.value, e.method) == (value, method)


def test_text_extraction() -> None:
    assert extract_answer("I think.\nThe answer is Paris.", "text").value == "Paris"
    e = extract_answer("Many cities.\n\nThe capital is Paris\n\n", "text")
    assert (e.value, e.method) == ("The capital is Paris", "last_line")


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown answer kind"):
        extract_answer("1", "latex")
    with pytest.raises(ConfigError):
        equivalent("1", "1", "latex")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 -+*/().,$#:\n\\{}abxFinalAswer=")), max_size=80))
@pytest.mark.parametrize("kind", ["math", "number", "game24", "text"])
def test_extraction_span_matches_value(kind: str, text: str) -> None:
    e = extract_answer(text, kind)
    if e.value is None:
        assert (e.method, e.start, e.end) == ("none", 0, 0)
    else:
        assert text[e.start : e.end] == e.value and e.value


# --- numbers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "value"),
    [
        ("18", Fraction(18)),
        ("$18.00", Fraction(18)),
        ("\\$1,234.5", Fraction(2469, 2)),
        ("-1,000 dollars", Fraction(-1000)),
        ("50%", Fraction(50)),
        ("50\\%", Fraction(50)),
        ("3/4", Fraction(3, 4)),
        ("\\frac{1}{2}", Fraction(1, 2)),
        ("\\dfrac{3}{4}", Fraction(3, 4)),
        ("\\dfrac12", Fraction(1, 2)),
        ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("\\frac{-1}{2}", Fraction(-1, 2)),
        (".5", Fraction(1, 2)),
        ("12 cm.", Fraction(12)),
        ("5 \\text{ cm}^2", Fraction(5)),
        ("90^\\circ", Fraction(90)),
        ("x = 7", Fraction(7)),
        ("1{,}000", Fraction(1000)),
        ("1.5e3", Fraction(1500)),
    ],
)
def test_normalize_number(s: str, value: Fraction) -> None:
    assert normalize_number(s) == value


@pytest.mark.parametrize(
    "s", ["1,2", "x", "2pi", "\\frac{1}{0}", "3/0", "nan", "inf", "1e99999", "", "1" * 500]
)
def test_not_a_number(s: str) -> None:
    assert normalize_number(s) is None


# --- equivalence ----------------------------------------------------------------------------------------

HALVES = ["1/2", "0.5", "\\frac{1}{2}", "\\dfrac12", ".5", "\\tfrac{1}{2}"]


@pytest.mark.parametrize("a", HALVES)
@pytest.mark.parametrize("b", HALVES)
def test_halves_are_equivalent(a: str, b: str) -> None:
    assert equivalent(a, b, "math")


def test_an_answer_in_words_is_not_a_unit() -> None:
    # "\text{ cm}" after a value is a unit and goes; "\text{Evelyn}" alone is the answer and stays
    assert equivalent("5 \\text{ cm}", "5", "math")
    assert not equivalent("\\text{Carla}", "\\text{Evelyn}", "math")
    assert not equivalent("\\text{odd}", "\\text{even}", "math")
    assert not equivalent("x = \\text{Carla}", "x = \\text{Evelyn}", "math")
    assert not equivalent("Answer: \\text{odd}", "Answer: \\text{even}", "math")
    assert equivalent("\\frac{1}{2}\\text{ inches}", "\\frac12", "math")
    assert equivalent("Evelyn", "\\text{Evelyn}", "math") and is_correct(
        "\\text{ (Evelyn) }", "\\text{Evelyn}", "math"
    )


def test_an_answer_line_cut_inside_its_box_has_no_answer() -> None:
    e = extract_answer("The final answer is \\(\\boxed{\\frac{14}{", "math")
    assert e.method != "final_answer" and "boxed" not in (e.value or "")


def test_cheap_math_checks() -> None:
    assert equivalent("\\left( 1, 2 \\right)", "(1,2)", "math")
    assert equivalent("x = \\frac{3}{4}", "3/4", "math")
    assert not equivalent("3", "4", "math")
    assert not equivalent("0.5", "0.6", "math")


@needs_math_verify
def test_math_verify_equivalence() -> None:
    assert equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "math")
    assert equivalent("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)", "math")
    assert equivalent("2\\sqrt{3}", "\\sqrt{12}", "math")
    assert equivalent("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", "math")
    assert not equivalent("(3, \\pi/2)", "(3, \\pi)", "math")


def test_math_without_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_mathverify, "_library", lambda: None)
    assert not _mathverify.available()
    assert equivalent("0.5", "\\frac{1}{2}", "math")  # numeric check still works
    assert equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "( 3, \\dfrac{\\pi}{2} )", "math")  # strings
    assert not equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "math")


@needs_math_verify
def test_math_verify_from_a_worker_thread() -> None:
    assert _in_thread(_mathverify.signal_timeout) is None
    assert _in_thread(lambda: equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "math"))
    assert not _in_thread(lambda: equivalent("(3, \\pi/2)", "(2, \\pi/2)", "math"))


def test_math_verify_off_the_main_thread_does_not_warn_about_its_disabled_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # this module bounds the work itself there; math-verify's "provide the logic yourself" is noise
    with caplog.at_level("WARNING"):
        assert _in_thread(lambda: equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "math"))
    assert not [r for r in caplog.records if "Timeout is disabled" in r.getMessage()]


@needs_math_verify
@pytest.mark.parametrize(
    "bomb", ["10^{10^{10}}", "2^{2^{2^{100}}}", "(10^{10})!", "(x+1)^{5000}", "\\binom{1000000}{500000}"]
)
def test_expensive_answers_are_refused_before_math_verify_off_the_main_thread(bomb: str) -> None:
    # off the main thread math-verify has no timeout, so the guard must refuse these before parsing
    # finishes: an unparsed answer never reaches verify (where the minutes-long evaluation happens)
    assert _in_thread(lambda: _mathverify.parse_answer(bomb)) is None
    assert not _in_thread(lambda: equivalent(bomb, "5", "math"))


@pytest.fixture
def no_outer_alarm() -> Iterator[None]:
    """Disarm pytest-timeout's interval timer for one test, and re-arm it afterwards."""
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if delay > 0:
            signal.setitimer(signal.ITIMER_REAL, delay, interval)


@pytest.mark.usefixtures("no_outer_alarm")
def test_signal_timeout_only_when_safe() -> None:
    assert _mathverify.signal_timeout() == _mathverify.SIGNAL_TIMEOUT_SECONDS
    old = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        assert _mathverify.signal_timeout() is None  # someone else's alarm is armed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@needs_math_verify
def test_main_thread_keeps_an_outer_alarm_armed() -> None:
    armed_here = signal.getitimer(signal.ITIMER_REAL)[0] == 0
    old = signal.getsignal(signal.SIGALRM)
    if armed_here:
        signal.signal(signal.SIGALRM, lambda *_: None)
        signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        assert equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "math")
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    finally:
        if armed_here:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def test_number_equivalence() -> None:
    assert equivalent("$18.00", "18", "number")
    assert equivalent("18 dollars", "18.0000001", "number")  # decimals: 1e-6 relative tolerance
    assert not equivalent("18", "19", "number")
    assert not equivalent("1/3", "0.3333", "number")
    assert equivalent("0.333333", "1/3", "number")
    assert equivalent("Seven", "seven", "number")  # not numbers: normalised strings


def test_text_equivalence() -> None:
    assert equivalent("The Eiffel Tower!", "eiffel   tower", "text")
    assert not equivalent("Paris", "London", "text")


def test_game24_equivalence() -> None:
    assert equivalent("(8-4)*(7-1)", "(7 - 1) * (8 - 4) = 24", "game24")
    assert equivalent("(8-4)*(7-1)", "8*(7-4)*1", "game24", numbers=[1, 4, 7, 8])
    assert not equivalent("(8-4)*(7-1)", "6*4", "game24")  # a 24 from other numbers: another puzzle
    assert equivalent("1 + 2", "1+2", "game24")  # invalid ones only when spelt the same
    assert not equivalent("1 + 2", "2+1", "game24")


def test_is_correct() -> None:
    assert is_correct("\\frac{1}{2}", "0.5", "math")
    assert is_correct("\\frac{1}{2}", "so it is $\\boxed{0.5}$", "math")  # a whole solution as key
    assert is_correct("1,234", "Natalia sold ... #### 1234", "number")
    assert not is_correct(None, "1", "math")
    assert not is_correct("2", "1", "number")
    assert is_correct("the eiffel tower", "Eiffel Tower", "text")


def test_is_correct_game24() -> None:
    meta = {"numbers": [1, 4, 7, 8]}
    assert is_correct("(8 - 4) * (7 - 1)", "", "game24", problem_metadata=meta)
    assert is_correct("(8 - 4) * (7 - 1) = 24", "", "game24", numbers=[8, 7, 4, 1])
    assert not is_correct("(8 - 4) * (7 - 1) + 0", "", "game24", problem_metadata=meta)
    assert not is_correct(None, "", "game24", problem_metadata=meta)
    with pytest.raises(ConfigError, match="numbers"):
        is_correct("(8 - 4) * (7 - 1)", "", "game24")


# --- game of 24 -----------------------------------------------------------------------------------------


def test_check_24_valid() -> None:
    assert check_24("(8 - 4) * (7 - 1)", [1, 4, 7, 8]) == Game24Check(True, "ok", Fraction(24))
    assert check_24("8 / (3 - 8 / 3)", [3, 3, 8, 8]).valid  # needs exact fractions
    assert check_24("(8-4) × (7-1) = 24", [1, 4, 7, 8]).valid
    assert check_24("$(8-4) \\times (7-1)$", [1, 4, 7, 8]).valid


@pytest.mark.parametrize(
    ("expr", "numbers", "reason"),
    [
        ("(8 - 4) * (8 - 2)", [2, 4, 7, 8], "8 is used 2 times"),
        ("(8 - 4) * 6", [1, 4, 6, 8], "1 is not used"),
        ("4 * 6", [4, 6, 1, 1], "1 is not used"),
        ("(9 - 3) * 4", [1, 3, 4, 8], "9 is not one of"),
        ("(8 - 4) * (7 - 1) + 1", [1, 4, 7, 8], "1 is used 2 times"),
        ("8 / (4 - 4) + 3 * 1", [1, 3, 4, 4, 8], "division by zero"),
        ("__import__('os').system('true')", [1, 2, 3, 4], "not allowed"),
        ("open('/etc/passwd')", [1], "not allowed"),
        ("2 ** 3 * 3 * 1", [1, 2, 3, 3], "Pow is not allowed"),
        ("(4 * 6) // 1", [1, 4, 6], "FloorDiv is not allowed"),
        ("-1 + 25", [1, 25], "unary"),
        ("8.0 * 3", [8, 3], "not allowed"),
        ("1 + 2 + 3 + 4", [1, 2, 3, 4], "equals 10, not 24"),
        ("(" * 150 + "24" + ")" * 150, [24], "longer than 200"),
        ("(8 - 4) * (7 - 1", [1, 4, 7, 8], "not a well-formed"),
        ("", [1], "empty"),
        ("True * 24", [24], "not allowed"),
    ],
)
def test_check_24_invalid(expr: str, numbers: list[int], reason: str) -> None:
    result = check_24(expr, numbers)
    assert not result.valid
    assert reason in result.reason


# --- grouping -------------------------------------------------------------------------------------------


def test_group_by_equivalence() -> None:
    answers = ["1/2", None, "0.5", "3", "\\frac{1}{2}", "3.0", "\\dfrac12", "x"]
    groups = group_answers(answers, "math")
    assert groups == [
        AnswerGroup("1/2", (0, 2, 4, 6), 4.0),
        AnswerGroup("3", (3, 5), 2.0),
        AnswerGroup("x", (7,), 1.0),
    ]


def test_group_tie_break_is_first_appearance() -> None:
    answers = ["7", "5", "5", "7", "9"]
    groups = group_answers(answers, "number")
    assert [g.answer for g in groups] == ["7", "5", "9"]
    assert group_answers(list(answers), "number") == groups
    assert [g.answer for g in group_answers(["5", "7", "7", "5"], "number")] == ["5", "7"]


def test_group_weights() -> None:
    groups = group_answers(["7", "5", "5"], "number", weights=[0.9, 0.3, 0.4])
    assert [(g.answer, g.weight) for g in groups] == [("7", 0.9), ("5", pytest.approx(0.7))]
    with pytest.raises(ConfigError, match="one per answer"):
        group_answers(["7", "5"], "number", weights=[1.0])
    with pytest.raises(ConfigError, match="finite"):
        group_answers(["7"], "number", weights=[float("nan")])


def test_group_game24_solutions_together() -> None:
    answers = ["(8-4)*(7-1)", "8*(7-4)*1", "4*6", None, "(8-4)*(7-1)+0"]
    groups = group_answers(answers, "game24", numbers=[1, 4, 7, 8])
    assert groups[0] == AnswerGroup("(8-4)*(7-1)", (0, 1), 2.0)
    assert len(groups) == 3


@needs_math_verify
def test_group_with_math_verify_between_buckets() -> None:
    answers = ["\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "(3,\\frac{\\pi}{2})", "(1, 2)"]
    groups = group_answers(answers, "math")
    assert [g.members for g in groups] == [(0, 1, 2), (3,)]


def test_group_calls_math_verify_only_between_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_verify(gold: Any, target: Any) -> bool:
        calls.append(1)
        return False

    monkeypatch.setattr(_mathverify, "verify_parsed", fake_verify)
    monkeypatch.setattr(_mathverify, "parse_answer", lambda s: [s])
    numbers = ["1/2", "0.5", "3", "\\frac{1}{2}", "3.0", "-2"] * 50
    assert len(group_answers(numbers, "math")) == 3
    assert calls == []  # number against number is decided exactly, without math-verify
    strings = ["\\sqrt{2}", "\\sqrt2", "\\pi", "\\sqrt {2}"] * 50
    groups = group_answers(strings, "math")
    assert [len(g.members) for g in groups] == [150, 50]
    assert len(calls) <= 2 * 1  # one new bucket ("\pi") against one representative, both directions


@needs_math_verify
def test_distinct_numbers_skip_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    assert equivalent("\\sqrt{4}", "2", "math")
    assert equivalent("\\sin(\\pi/6)", "\\frac{1}{2}", "math")
    assert equivalent("\\ln 2", "0.693147", "math")
    calls: list[int] = []
    real_verify = _mathverify.verify_parsed

    def counting_verify(gold: Any, target: Any) -> bool:
        calls.append(1)
        return real_verify(gold, target)

    monkeypatch.setattr(_mathverify, "verify_parsed", counting_verify)
    answers = [f"\\sqrt{{{k}}}" for k in (2, 3, 5, 6, 7, 8)] + ["2\\sqrt{2}"]
    groups = group_answers(answers, "math")
    assert [g.members for g in groups] == [(5, 6), (0,), (1,), (2,), (3,), (4,)]
    assert len(calls) <= 2  # only sqrt(8) against 2 sqrt(2): same value, so math-verify decides


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15), st.booleans(), st.booleans())
def test_formatted_integers_are_equivalent_to_plain(n: int, dollar: bool, decimals: bool) -> None:
    formatted = f"{'-' if n < 0 else ''}{'$' if dollar else ''}{abs(n):,}{'.00' if decimals else ''}"
    assert equivalent(formatted, str(n), "number")
    assert equivalent(str(n), formatted, "number")
    assert equivalent(formatted, str(n), "math")
    assert normalize_number(formatted) == n


POOL = ["1/2", "0.5", "\\frac{1}{2}", "3", "3.0", "-3", "x", "7 dollars", "7", None]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(POOL), max_size=30),
    st.sampled_from(["number", "math", "text"]),
    st.data(),
)
def test_groups_partition_the_answers(answers: list[str | None], kind: str, data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.floats(0, 10), min_size=len(answers), max_size=len(answers)))
    groups = group_answers(answers, kind, weights)
    members = sorted(i for g in groups for i in g.members)
    assert members == [i for i, a in enumerate(answers) if a is not None]
    assert sum(len(g.members) for g in groups) == sum(a is not None for a in answers)
    for g in groups:
        assert g.answer == answers[g.members[0]]
        assert list(g.members) == sorted(g.members)
        assert g.weight == pytest.approx(sum(weights[i] for i in g.members))
    keys = [(-g.weight, g.members[0]) for g in groups]
    assert keys == sorted(keys)


def test_unfinished_box_on_an_answer_line_is_not_an_answer() -> None:
    cut = "So 3 + 4 = 7, and the final answer is \\boxed"
    found = extract_answer(cut, "number")
    assert found.value == "7" and found.method == "last_number"
    assert extract_answer("The final answer is \\boxed{", "math").value != "\\boxed{"
