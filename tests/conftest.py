"""Shared fixtures: scripted generators and script files, so unit tests need no model."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ttscale.backends.scripted import ScriptedGenerator


def boxed_response(answer: str, reasoning: str = "We work it out step by step.") -> str:
    """A scripted chain of thought ending in a boxed answer."""
    return f"{reasoning}\nSo the final answer is \\boxed{{{answer}}}."


@pytest.fixture
def boxed() -> Callable[..., str]:
    """``boxed("1/2")`` -> a response whose final answer is ``\\boxed{1/2}``."""
    return boxed_response


@pytest.fixture
def scripted() -> Callable[..., ScriptedGenerator]:
    """``scripted(["resp 1", "resp 2"], **options)`` -> a ScriptedGenerator replaying them in order."""

    def make(responses: Sequence[str], **options: Any) -> ScriptedGenerator:
        return ScriptedGenerator(responses, **options)

    return make


@pytest.fixture
def script_file(tmp_path: Path) -> Callable[[Sequence[str]], Path]:
    """``script_file(["resp"])`` -> path of a JSON list for ``ttscale solve --backend scripted --script``."""

    def write(responses: Sequence[str]) -> Path:
        path = tmp_path / "script.json"
        path.write_text(json.dumps(list(responses)), encoding="utf-8")
        return path

    return write
