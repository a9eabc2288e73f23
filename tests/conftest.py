"""Shared fixtures: scripted generators and script files, so unit tests need no model."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
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


# -- a real browser for the HTML pages (trace viewer, eval report) -------------------------------------------

BROWSER_FLAGS = [
    # as root in a container Chromium needs --no-sandbox; the rest stop it reaching for Google's services,
    # which a machine without internet refuses, many connections at a time
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install chromium``), or the one ``TTSCALE_CHROMIUM`` names."""
    import shutil

    return os.environ.get("TTSCALE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright. Without one the browser tests skip, unless
    ``TTSCALE_REQUIRE_BROWSER=1`` (CI sets it) makes that a failure."""
    path = chromium_path()
    if path is None:
        message = "no Chromium: `apt-get install chromium` (Debian/Ubuntu) or set TTSCALE_CHROMIUM=/path"
        if os.environ.get("TTSCALE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=BROWSER_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()
