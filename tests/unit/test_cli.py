"""The ``ttscale`` CLI through typer's test runner, on the scripted backend."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale import cli
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.types import Completion, Prompt, SamplingParams

runner = CliRunner()
Boxed = Callable[..., str]
ScriptFile = Callable[[Sequence[str]], Path]


def scripted_args(path: Path, *extra: str) -> list[str]:
    return ["solve", "What is 1/2 as a decimal?", "--backend", "scripted", "--script", str(path), *extra]


class Recording(ScriptedGenerator):
    """A scripted generator that remembers being closed, and can fail on demand."""

    def __init__(self, responses: Sequence[str], fail: BaseException | None = None) -> None:
        super().__init__(responses)
        self.closed = 0
        self.fail = fail

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        if self.fail is not None:
            raise self.fail
        return super().generate(prompts, params)

    def close(self) -> None:
        self.closed += 1


def test_solve_json_is_one_object_with_usage(script_file: ScriptFile, boxed: Boxed) -> None:
    path = script_file([boxed("0.5"), boxed("1/2"), boxed("3")])
    result = runner.invoke(cli.app, scripted_args(path, "--json", "-p", "n=3", "--model", "mini"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert data["answer"] == "0.5"  # the first answer of the winning equivalence class
    assert data["response"].endswith(boxed("0.5"))
    assert (data["strategy"], data["model"]) == ("self_consistency", "mini")
    assert data["confidence"] == pytest.approx(2 / 3)
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["cached_prompt_tokens"] == 2 * usage["prompt_tokens"]  # samples 2 and 3 fork sample 1
    assert usage["flops"] > 0
    assert [e["kind"] for e in data["trace"]].count("sample") == 3


def test_solve_human_output(script_file: ScriptFile, boxed: Boxed) -> None:
    path = script_file([boxed("12")])
    result = runner.invoke(cli.app, scripted_args(path, "-s", "cot"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "answer: 12" in out
    assert "tokens: prompt " in out and " cached / completion " in out
    flops_line = next(line for line in out.splitlines() if line.startswith("FLOPs: "))
    assert "e+" in flops_line
    assert "wall: " in out
    assert "candidates" in out


def test_strategies_lists_all_with_parameters() -> None:
    result = runner.invoke(cli.app, ["strategies"])
    assert result.exit_code == 0, result.output
    for name in ("direct", "cot", "self_consistency", "temperature", "top_k", "max_tokens", "seed"):
        assert name in result.stdout
    assert "0.95" in result.stdout and "512" in result.stdout
    # piped output is wide enough that a parameter's help stays on its own row, not wrapped a word a line
    assert any("Most samples to draw (the paper uses 40; 16 matches the benchmark)." in line
               for line in result.stdout.splitlines())  # fmt: skip


def test_bad_strategy_exits_2_with_did_you_mean(script_file: ScriptFile) -> None:
    result = runner.invoke(cli.app, scripted_args(script_file(["x"]), "--strategy", "self_consistancy"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown strategy 'self_consistancy'")
    assert "Did you mean 'self_consistency'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["-p", "n=zero"], "parameter 'n' of strategy 'self_consistency' expects int"),
        (["-p", "n"], "-p expects key=value"),
        (["-p", "n=0"], "n must be an integer >= 1"),
        (["-p", "beams=3"], "unknown parameter 'beams'"),
        (["--budget-tokens", "-5"], "budget tokens must be >= 0"),
        (["--budget-tokens", "0"], "a budget of 0 pays for nothing"),
    ],
)
def test_bad_options_exit_2(script_file: ScriptFile, extra: list[str], fragment: str) -> None:
    result = runner.invoke(cli.app, scripted_args(script_file(["x"]), *extra))
    assert result.exit_code == 2
    assert fragment in result.stderr


def test_scripted_backend_needs_a_script(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["solve", "q", "--backend", "scripted"])
    assert result.exit_code == 2 and "needs --script" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    result = runner.invoke(cli.app, ["solve", "q", "--backend", "scripted", "--script", str(bad)])
    assert result.exit_code == 2 and "JSON list of strings" in result.stderr


def test_params_seed_and_budget_reach_the_generator(monkeypatch: pytest.MonkeyPatch, boxed: Boxed) -> None:
    gen = Recording([boxed("4")])
    monkeypatch.setattr(cli, "open_generator", lambda backend, model, script: gen)
    args = ["solve", "2+2?", "-p", "n=3", "-p", "max_tokens=30", "--seed", "11", "--budget-tokens", "100000"]
    result = runner.invoke(cli.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    [(_, params)] = gen.calls
    assert (params.n, params.max_tokens, params.seed) == (3, 30, 11)
    assert gen.closed == 1


def test_generator_closed_on_error_and_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttscale.errors import GenerationError

    for fail, code, text in [
        (GenerationError("engine broke"), 2, "error: engine broke"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ]:
        gen = Recording(["x"], fail=fail)
        monkeypatch.setattr(cli, "open_generator", lambda backend, model, script, g=gen: g)
        result = runner.invoke(cli.app, ["solve", "q", "-s", "direct"])
        assert result.exit_code == code
        assert text in result.stderr
        assert gen.closed == 1


def test_llamacpp_backend_uses_default_model(monkeypatch: pytest.MonkeyPatch, boxed: Boxed) -> None:
    opened: list[str] = []
    gen = Recording([boxed("4")])

    class FakeLlama:
        @staticmethod
        def from_model(name: str) -> Recording:
            opened.append(name)
            return gen

    fake = types.ModuleType("ttscale.backends.llamacpp")
    fake.LlamaCppGenerator = FakeLlama  # type: ignore[attr-defined]
    models = types.ModuleType("ttscale.models")
    models.DEFAULT_MODEL = "default-model"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ttscale.backends.llamacpp", fake)
    monkeypatch.setitem(sys.modules, "ttscale.models", models)
    result = runner.invoke(cli.app, ["solve", "2+2?", "-s", "direct", "--json"])
    assert result.exit_code == 0, result.output
    assert opened == ["default-model"] and gen.closed == 1
    runner.invoke(cli.app, ["solve", "2+2?", "-s", "direct", "--model", "other"])
    assert opened == ["default-model", "other"]


def test_an_empty_question_or_a_file_that_is_not_gguf_is_named_before_any_solve(tmp_path: Path) -> None:
    empty = runner.invoke(cli.app, ["solve", "  ", "--backend", "scripted", "--script", str(tmp_path / "s")])
    assert empty.exit_code == 2 and "the question is empty" in empty.stderr
    for name, content in (
        ("text.GGUF", b"hello, not a model"),
        ("empty.gguf", b""),
        ("cut.gguf", b"GGUF\x03\x00"),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        result = runner.invoke(cli.app, ["solve", "q", "--model", str(path)])
        assert result.exit_code == 2, result.output  # no traceback
        assert f"{path} is not a readable GGUF model file" in result.stderr


def test_unknown_model_names_suggest_the_names_they_begin() -> None:
    result = runner.invoke(cli.app, ["models", "path", "smollm"])
    assert result.exit_code == 2 and "Did you mean 'smollm2-135m-instruct'" in result.stderr
