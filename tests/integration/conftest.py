"""Real-model fixtures. Models come from the model store (pulled on first use, then cached)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="integration tests need the llamacpp extra")

from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator  # noqa: E402
from ttscale.models import ensure  # noqa: E402

SMALL = "smollm2-135m-instruct"
DEFAULT = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(scope="session")
def small_path() -> Path:
    return ensure(SMALL, progress=False)


@pytest.fixture(scope="session")
def default_path() -> Path:
    return ensure(DEFAULT, progress=False)


@pytest.fixture(scope="module")
def small(small_path: Path) -> Iterator[LlamaCppGenerator]:
    """SmolLM2-135M on the embedded engine, for mechanics (fast, not smart)."""
    with LlamaCppGenerator(small_path, name=SMALL, config=ContextConfig(n_seq_max=32, seq_len=1024)) as gen:
        yield gen


@pytest.fixture(scope="module")
def default(default_path: Path) -> Iterator[LlamaCppGenerator]:
    """Qwen2.5-Coder-0.5B-Instruct, the default model, for the few tests that need a sensible answer."""
    with LlamaCppGenerator(
        default_path, name=DEFAULT, config=ContextConfig(n_seq_max=32, seq_len=1024)
    ) as gen:
        yield gen
