"""The ``ttscale`` command on real models, as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


def ttscale(*args: str) -> list[str]:
    return [sys.executable, "-m", "ttscale.cli", *args]


def test_solve_json_with_self_consistency_on_the_default_model(default_path: Path) -> None:
    out = subprocess.run(
        ttscale(
            "solve", QUESTION, "--model", "qwen2.5-coder-0.5b-instruct", "-p", "n=4", "--seed", "3", "--json"
        ),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["strategy"] == "self_consistency" and result["model"] == "qwen2.5-coder-0.5b-instruct"
    assert sum(c["votes"] for c in result["candidates"]) <= 4
    usage = result["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["cached_prompt_tokens"] == 3 * usage["prompt_tokens"]  # 3 forks of one prefill
    n_params = 494_032_768
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    assert 2 * n_params * tokens < usage["flops"] < 2 * n_params * tokens * 1.2
    assert result["answer"] is not None and result["response"]


def test_ctrl_c_exits_cleanly(small_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        ttscale(
            "solve",
            "Write a very long essay about the sea.",
            "--model",
            str(small_path),
            "-p",
            "n=8",
            "-p",
            "max_tokens=1500",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(6)  # the model is loaded and decoding by now
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_unknown_strategy_is_a_named_error_before_loading_a_model() -> None:
    out = subprocess.run(
        ttscale("solve", "1+1?", "-s", "self_consistancy"), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert "Did you mean 'self_consistency'" in out.stderr and "Traceback" not in out.stderr
