"""The README's results table names a ``ttscale`` command per row (``benchmarks/publish.py``): each must be
one the CLI accepts, with the same strategy parameters the published run used."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer

from ttscale import cli
from ttscale.strategies import build_strategy

ROOT = Path(__file__).resolve().parents[2]


def _publish() -> ModuleType:
    spec = importlib.util.spec_from_file_location("publish", ROOT / "benchmarks" / "publish.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["publish"] = module
    spec.loader.exec_module(module)
    return module


publish = _publish()


@pytest.mark.parametrize("entry", publish.PLAN, ids=lambda e: e.key)
def test_each_published_command_parses_and_builds_its_strategy(entry: object) -> None:
    words = shlex.split(entry.command())  # type: ignore[attr-defined]
    assert words[0] == "ttscale"
    group = typer.main.get_command(cli.app)
    top = group.make_context("ttscale", words[1:])
    name, command, rest = group.resolve_command(top, words[1:])  # type: ignore[attr-defined]
    assert name in ("eval", "sweep") and command is not None
    ctx = command.make_context(name, rest, parent=top)  # unknown options or bad values raise here
    params = dict(p.split("=", 1) for p in ctx.params.get("param") or [])
    assert params == entry.params  # type: ignore[attr-defined]
    build_strategy(entry.strategy, params)  # type: ignore[attr-defined]
    assert ctx.params["concurrency"] == entry.concurrency  # type: ignore[attr-defined]
    assert ctx.params.get("slots") == entry.slots  # type: ignore[attr-defined]
    assert (ctx.params.get("draws") is not None) == entry.draws  # type: ignore[attr-defined]


def test_every_plan_key_is_run_once_and_both_datasets_have_the_core_rows() -> None:
    keys = [e.key for e in publish.PLAN]
    assert len(keys) == len(set(keys))
    for dataset in publish.LIMITS:
        assert {f"{dataset}/cot", f"{dataset}/cot_large", f"{dataset}/sc"} <= set(keys)
    assert keys[:3] == ["gsm8k/cot", "gsm8k/cot_large", "gsm8k/sc"]  # the FLOPs-matched comparison first
    for dataset in publish.LIMITS:  # the judge replays the draw self-certainty recorded with its logprobs
        assert keys.index(f"{dataset}/best_of_n_certainty") < keys.index(f"{dataset}/best_of_n_judge")


def test_status_lists_every_entry_in_run_order(tmp_path: Path) -> None:
    from ttscale.evals.store import RunStore

    with RunStore.open(tmp_path / "publish.sqlite") as store:
        lines = publish.status(store).splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [e.key for e in publish.PLAN]
    assert all(line.endswith("not started") for line in lines[:-1]) and lines[-1].endswith("0.00 h")


def test_a_smoke_test_cannot_write_over_the_published_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        publish.main(["--limit", "1", "--store", str(tmp_path / "s.sqlite")])
    assert stopped.value.code == 2
    assert "give --out, --readme other paths than the published ones" in capsys.readouterr().err


def test_a_readme_without_the_table_s_markers_stops_before_any_compute(tmp_path: Path) -> None:
    args = ["--limit", "1", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "p.json")]
    with pytest.raises(SystemExit, match="cannot read --readme .*missing.md"):
        publish.main([*args, "--readme", str(tmp_path / "missing.md")])
    (tmp_path / "plain.md").write_text("# no markers\n")
    with pytest.raises(SystemExit, match="has no <!-- results:start -->"):
        publish.main([*args, "--readme", str(tmp_path / "plain.md")])
    assert not (tmp_path / "s.sqlite").exists()  # no store opened, nothing run


def test_a_judge_row_only_takes_a_run_that_replayed_the_draw(tmp_path: Path) -> None:
    from ttscale.cli_eval import _plan
    from ttscale.evals.store import RunStore

    (judge,) = [e for e in publish.PLAN if e.key == "gsm8k/best_of_n_judge"]
    with RunStore.open(tmp_path / "publish.sqlite") as store:
        runner = publish._runner(store, judge)
        given = runner.common | {
            "model": judge.model,
            "strategy": judge.strategy,
            "params": judge.run_params(),
        }
        config, _ = _plan(store, None, given)
        store.create_run(config.to_dict(), {"ttscale": "0"}, 100)  # the same config, drawn afresh
        assert publish._find(store, judge) is None
        store.create_run(config.to_dict(), {"ttscale": "0", "draws": "other.sqlite"}, 100)  # another draw
        assert publish._find(store, judge) is None
        draws = str(tmp_path / publish.DRAWS)
        replayed = store.create_run(config.to_dict(), {"ttscale": "0", "draws": draws}, 100)
        found = publish._find(store, judge)
        assert found is not None and found.run_id == replayed
