"""A run store with real runs of scripted models, for the report tests (unit and browser)."""

from __future__ import annotations

import json
from pathlib import Path

from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.evals.datasets import load
from ttscale.evals.runner import EvalConfig, run_eval, versions
from ttscale.evals.store import RunStore

N_PROBLEMS = 10


def dataset(folder: Path) -> Path:
    """N problems whose gold answer is i % 3 + 1."""
    path = folder / "data.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"Count to {i % 3 + 1}.", "answer": str(i % 3 + 1)}
        for i in range(N_PROBLEMS)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def record_run(
    store: RunStore,
    data: Path,
    model: ScriptedModel,
    strategy: str,
    params: dict[str, str],
    draws: Path | None = None,
) -> str:
    config = EvalConfig(f"jsonl:{data}", model.name, strategy, params, backend="scripted")
    examples = load(config.dataset)
    # answers cycle 1, 2, 3, 3: varied votes, some problems right and some wrong
    gen = ScriptedGenerator([f"So \\boxed{{{a}}}." for a in (1, 2, 3, 3)], model=model)
    recorded = versions(gen) | ({"draws": str(draws)} if draws else {})  # as ttscale eval --draws records
    run_id = store.create_run(config.to_dict(), recorded, len(examples))
    run_eval(store, run_id, config, examples, gen)
    return run_id


def build_store(folder: Path) -> tuple[Path, list[str]]:
    """A small model sampled 8 times per problem, and a 4x larger model answering once."""
    data = dataset(folder)
    path = folder / "runs.sqlite"
    small = ScriptedModel(name="small", n_params=1_000_000)
    large = ScriptedModel(name="large", n_params=4_000_000)
    with RunStore.open(path) as store:
        ids = [
            record_run(store, data, small, "self_consistency", {"n": "8"}),
            record_run(store, data, large, "cot", {}),
        ]
    return path, ids
