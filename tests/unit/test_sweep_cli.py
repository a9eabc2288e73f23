"""``ttscale sweep`` and ``ttscale compare`` through the CLI on the scripted backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale import cli
from ttscale.evals.store import RunStore

runner = CliRunner()
ANSWERS = (1, 2, 3, 3)  # the scripted model's answers, in draw order


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "d.jsonl"
    rows = [{"id": f"q{i}", "question": f"Count to {i % 3 + 1}.", "answer": str(i % 3 + 1)} for i in range(8)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    script = tmp_path / "s.json"
    script.write_text(json.dumps([f"So \\boxed{{{a}}}." for a in ANSWERS]))
    return {"data": data, "script": script, "store": tmp_path / "runs.sqlite"}


def common(files: dict[str, Path]) -> list[str]:
    return ["-d", f"jsonl:{files['data']}", "--backend", "scripted", "--script", str(files["script"]),
            "--store", str(files["store"]), "--json"]  # fmt: skip


def run_json(args: list[str]) -> dict[str, object]:
    out = runner.invoke(cli.app, args)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_sampling_sweep_is_one_run_subsampled_and_reused(files: dict[str, Path]) -> None:
    args = ["sweep", "-s", "self_consistency", "--n", "4,1,2", *common(files)]
    first = run_json(args)
    assert len(first["run_ids"]) == 1  # type: ignore[arg-type]
    points = first["points"]
    assert [p["budget"] for p in points] == [1, 2, 4]  # type: ignore[union-attr,index]
    flops = [p["flops_per_problem"] for p in points]  # type: ignore[union-attr,index]
    assert flops == sorted(flops) and flops[0] < flops[-1]
    with RunStore.open(files["store"], write=False) as store:
        (run,) = store.runs()
        assert run.config["params"] == {"n": "4"} and run.n_done == 8
    again = run_json(args)  # the same config: the stored run is reused, nothing is solved again
    assert again == first
    with RunStore.open(files["store"], write=False) as store:
        assert len(store.runs()) == 1


def test_a_sweep_with_a_draw_file_reuses_only_runs_of_that_file_however_its_path_is_spelt(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["sweep", "-s", "self_consistency", "--n", "1,2", *common(files)]
    drawn = run_json([*args, "--draws", str(files["store"].parent / "draws.sqlite")])
    monkeypatch.chdir(files["store"].parent)  # the same file, by a relative path from its folder
    assert run_json([*args, "--draws", "draws.sqlite"])["run_ids"] == drawn["run_ids"]
    (files["store"].parent / "sub").mkdir()
    assert run_json([*args, "--draws", "./sub/../draws.sqlite"])["run_ids"] == drawn["run_ids"]
    # another draw file, or none, is another run: a judge must not score samples it did not replay
    other = run_json([*args, "--draws", "other.sqlite"])["run_ids"]
    plain = run_json(args)["run_ids"]
    assert len({*drawn["run_ids"], *other, *plain}) == 3  # type: ignore[misc]
    with RunStore.open(files["store"], write=False) as store:
        recorded = {r.run_id: r.versions.get("draws") for r in store.runs()}
    assert recorded[drawn["run_ids"][0]] == str((files["store"].parent / "draws.sqlite").resolve())  # type: ignore[index]


def test_a_non_sampling_sweep_runs_once_per_budget(files: dict[str, Path]) -> None:
    out = run_json(["sweep", "-s", "adaptive_consistency", "--n", "2,4", *common(files)])
    assert len(out["run_ids"]) == 2  # type: ignore[arg-type]
    with RunStore.open(files["store"], write=False) as store:
        assert sorted(r.config["params"]["max_n"] for r in store.runs()) == ["2", "4"]


def test_a_sampling_sweep_under_a_budget_derives_every_n_from_what_the_budget_let_it_draw(
    files: dict[str, Path],
) -> None:
    # 40 tokens pay for one sample per problem: a 2- or 4-sample run under the same budget draws that same
    # sample and no more, so those points are derived too (this used to fail after all the compute)
    out = run_json(
        ["sweep", "-s", "self_consistency", "--n", "1,2,4", "--budget-tokens", "40", *common(files)]
    )
    points = out["points"]
    assert isinstance(points, list) and [p["budget"] for p in points] == [1, 2, 4]
    with RunStore.open(files["store"], write=False) as store:
        (run,) = store.runs()
        assert {len(p.samples) for p in store.problems(run.run_id)} == {1}
    assert len({(p["accuracy"], p["flops_per_problem"]) for p in points}) == 1


def test_compare_matches_flops_and_reports_every_bin(files: dict[str, Path]) -> None:
    out = run_json(["compare", "--small", "tiny", "--large", "big", "--n", "1,2,4", *common(files)])
    greedy, matched = out["large_greedy"], out["small_matched"]
    assert isinstance(greedy, dict) and isinstance(matched, dict)
    # both scripted models have the same size: one sample of the small one costs what the greedy costs
    assert matched["budget"] == 1 and matched["flops_per_problem"] <= greedy["flops_per_problem"]
    rows = out["per_bin"]
    assert isinstance(rows, list) and [r["bin"] for r in rows] == [1, 2, 3, 4, 5]
    assert sum(r["problems"] for r in rows) == 8


def test_compare_bins_by_prediction_read_no_answer_key(files: dict[str, Path]) -> None:
    args = ["compare", "--small", "tiny", "--large", "big", "--n", "1,2,4", *common(files)]
    oracle = run_json([*args, "--bins", "oracle"])
    predicted = run_json([*args, "--bins", "predicted"])
    # every problem draws the same answers 1, 2, 3, 3: the probes agree alike everywhere (no logprobs
    # here), so prediction cannot tell the problems apart, while pass@1 puts the two whose key is 3 first
    assert predicted["bins_by"] == "agreement of the first 4 samples"
    assert oracle["bins_by"] == "tiny's pass@1 over its samples"
    oracle_top = oracle["per_bin"][0]  # type: ignore[index]
    predicted_top = predicted["per_bin"][0]  # type: ignore[index]
    assert oracle_top["small_largest"] == 1.0 and oracle_top["problems"] == 2  # key 3: the vote says 3
    assert predicted_top != oracle_top


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["sweep", "-s", "self_consistency", "--n", "1,x"], "comma-separated integers"),
        (["sweep", "-s", "self_consistency", "--n", "0,2"], "integers >= 1"),
        (["sweep", "-s", "cot", "--n", "1,2"], "no budget knob"),
        (["compare", "--small", "a", "--large", "b", "--bins", "vibes"], "oracle or predicted"),
    ],
)
def test_bad_sweeps_are_refused(files: dict[str, Path], extra: list[str], says: str) -> None:
    out = runner.invoke(cli.app, [*extra, *common(files)])
    assert out.exit_code == 2 and says in out.output
