"""Packaged datasets and jsonl:PATH loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttscale import ConfigError, UnknownNameError
from ttscale.answers.equivalence import is_correct
from ttscale.answers.extract import extract_answer
from ttscale.evals.datasets import DATASETS, load


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_packaged_dataset_loads_without_answers_in_the_problem(name: str) -> None:
    examples = load(name, limit=3)
    assert len(examples) == 3
    for ex in examples:
        assert ex.problem.id and ex.problem.question
        assert ex.problem.answer_kind == DATASETS[name].kind
        assert "answer" not in ex.problem.metadata and "solution" not in ex.problem.metadata


def test_sizes_and_offsets_match_the_documented_files() -> None:
    assert len(load("gsm8k")) == 1319 and len(load("math500")) == 250 and len(load("aime24")) == 30
    tot = load("game24", offset=900, limit=20)  # ToT's test ranks 901-920
    assert [ex.problem.metadata["rank"] for ex in tot] == list(range(901, 921))
    assert load("gsm8k", limit=1)[0].answer == "18"
    assert "solution" in load("math500", limit=1)[0].extra


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'gsm8k'.*jsonl:PATH, math500"):
        load("gsm8")


def test_jsonl_path_loads(tmp_path: Path) -> None:
    good = tmp_path / "mine.jsonl"
    good.write_text(
        '{"id": "a", "question": "1+1?", "answer": "2"}\n\n{"id": "b", "question": "2+2?", "answer": "4"}\n'
    )
    assert [ex.answer for ex in load(f"jsonl:{good}", kind="number")] == ["2", "4"]


ROW = b'{"id": "a", "question": "q", "answer": "1"}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (ROW + b'{"id": "b", "question": "q"\n', r"bad.jsonl, line 2: not valid JSON"),
        (b'{"id": "a", "question": "q"}\n', r"bad.jsonl, line 1: missing field\(s\) answer"),
        (
            ROW + b'{"id": "b", "question": "caf\xe9", "answer": "2"}\n',
            r"line 2: not UTF-8 text; save the file as UTF-8",
        ),
        (
            ROW + b'\n{"id": "a", "question": "r", "answer": "2"}\n',
            r"line 3: id 'a' is already the id of line 1",
        ),
        (b'{"id": "a", "question": null, "answer": "1"}\n', r"line 1: field\(s\) question are null"),
    ],
)
def test_a_malformed_file_is_named_with_its_line(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load(f"jsonl:{bad}")
    if "already the id" in message:
        assert len(load(f"jsonl:{bad}", limit=1)) == 1  # a slice without the repeat is fine


def test_a_missing_file_or_a_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(f"jsonl:{tmp_path / 'nope.jsonl'}")
    with pytest.raises(ConfigError, match="is not a file"):
        load(f"jsonl:{tmp_path}")


@pytest.mark.parametrize("name", sorted(set(DATASETS) - {"game24"}))  # game24 checks solutions, not a key
def test_every_answer_key_grades_its_own_boxed_answer_right_and_a_neighbour_s_wrong(name: str) -> None:
    # the whole grading path (extraction, then the dataset's checker) on every packaged problem: a checker
    # that cannot read its own dataset's answers would mark right responses wrong
    examples = load(name)
    kind = DATASETS[name].kind
    for ex, other in zip(examples, [*examples[1:], examples[0]], strict=True):
        response = f"Working it out.\nSo the final answer is $\\boxed{{{ex.answer}}}$."
        got = extract_answer(response, kind).value
        assert is_correct(got, ex.answer, kind), (ex.problem.id, ex.answer, got)
        if other.answer.strip().lower() != ex.answer.strip().lower():
            wrong = extract_answer(f"So the final answer is $\\boxed{{{other.answer}}}$.", kind).value
            assert not is_correct(wrong, ex.answer, kind), (ex.problem.id, ex.answer, other.answer)
