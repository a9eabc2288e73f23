"""Packaged datasets and jsonl:PATH loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttscale import ConfigError, UnknownNameError
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


def test_jsonl_path_and_malformed_line_named(tmp_path: Path) -> None:
    good = tmp_path / "mine.jsonl"
    good.write_text(
        '{"id": "a", "question": "1+1?", "answer": "2"}\n\n{"id": "b", "question": "2+2?", "answer": "4"}\n'
    )
    assert [ex.answer for ex in load(f"jsonl:{good}", kind="number")] == ["2", "4"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "question": "q"\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl, line 2: not valid JSON"):
        load(f"jsonl:{bad}")
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"id": "a", "question": "q"}\n')
    with pytest.raises(ConfigError, match=r"line 1: missing field\(s\) answer"):
        load(f"jsonl:{missing}")
    with pytest.raises(ConfigError, match="does not exist"):
        load(f"jsonl:{tmp_path / 'nope.jsonl'}")


def test_unreadable_files_repeated_ids_and_null_fields_are_named(tmp_path: Path) -> None:
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(
        b'{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "question": "caf\xe9", "answer": "2"}\n'
    )
    with pytest.raises(ConfigError, match=r"latin.jsonl, line 2: not UTF-8 text; save the file as UTF-8"):
        load(f"jsonl:{latin}")
    twice = tmp_path / "twice.jsonl"
    twice.write_text(
        '{"id": "x", "question": "q", "answer": "1"}\n\n{"id": "x", "question": "r", "answer": "2"}\n'
    )
    with pytest.raises(ConfigError, match=r"twice.jsonl, line 3: id 'x' is already the id of line 1"):
        load(f"jsonl:{twice}")
    assert len(load(f"jsonl:{twice}", limit=1)) == 1  # a slice without the repeat is fine
    null = tmp_path / "null.jsonl"
    null.write_text('{"id": "a", "question": null, "answer": "1"}\n')
    with pytest.raises(ConfigError, match=r"null.jsonl, line 1: field\(s\) question are null"):
        load(f"jsonl:{null}")
    with pytest.raises(ConfigError, match="is not a file"):
        load(f"jsonl:{tmp_path}")
