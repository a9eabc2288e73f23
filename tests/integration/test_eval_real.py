"""Evaluations on the real engine into real SQLite stores: every sample is stored with a summary of its
sampled tokens' logprobs (although majority-vote self-consistency asks for none), concurrent problems
share the engine's decode steps, and a sweep's subsampled point is what a run with that n gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttscale.backends.llamacpp import LlamaCppGenerator
from ttscale.evals.analysis import sample_curve
from ttscale.evals.datasets import Example
from ttscale.evals.metrics import summarize
from ttscale.evals.records import ProblemRecord
from ttscale.evals.runner import EvalConfig, run_eval, versions
from ttscale.evals.store import RunStore
from ttscale.models import CATALOG
from ttscale.types import Problem

pytestmark = pytest.mark.integration

SMALL = "smollm2-135m-instruct"  # the module-scoped `small` fixture's model


def evaluate(
    gen: LlamaCppGenerator, store: Path, examples: list[Example], strategy: str, **config: object
) -> list[ProblemRecord]:
    """A whole run of ``strategy`` on ``examples`` into a fresh store; its stored problems."""
    cfg = EvalConfig.from_dict({"dataset": "jsonl:x", "model": SMALL, "strategy": strategy} | config)
    with RunStore.open(store) as runs:
        run_id = runs.create_run(cfg.to_dict(), versions(gen), len(examples))
        run_eval(runs, run_id, cfg, examples, gen)
        return runs.problems(run_id)


def test_an_eval_stores_every_sample_with_its_logprob_summary(
    small: LlamaCppGenerator, tmp_path: Path
) -> None:
    examples = [
        Example(Problem(f"What is {i} + {i}?", id=f"q{i}", answer_kind="number"), str(2 * i)) for i in (2, 3)
    ]
    problems = evaluate(small, tmp_path / "runs.sqlite", examples, "self_consistency",
                        params={"n": "2", "max_tokens": "40"}, concurrency=2)  # fmt: skip
    recorded = versions(small)
    assert recorded["model_sha256"] == CATALOG[SMALL].sha256
    assert "CPU :" in recorded["llama_cpp_system"]  # the features llama.cpp's kernels use here
    samples = [s for p in problems for s in p.samples]
    assert len(samples) == 4
    for s in samples:
        summary = s.data["logprob"]
        assert summary["tokens"] == s.tokens and s.tokens > 0  # one logprob per sampled token
        assert summary["min"] <= summary["mean"] < 0
        assert s.logprob_mean == summary["mean"]
    assert len({s.logprob_mean for s in samples}) > 1


def test_concurrent_problems_decode_together_in_the_engine_s_batches(
    small: LlamaCppGenerator, tmp_path: Path
) -> None:
    examples = [
        Example(Problem(f"Count from {i} to {i + 9}.", id=f"q{i}", answer_kind="number"), "0")
        for i in range(4)
    ]

    def decode(concurrency: int) -> tuple[int, int]:
        """The run's decoded tokens and the engine steps they took."""
        before = (small.engine.stats.decoded_tokens, small.engine.stats.decode_steps)
        problems = evaluate(small, tmp_path / f"c{concurrency}.sqlite", examples, "cot",
                            params={"max_tokens": "32"}, concurrency=concurrency)  # fmt: skip
        assert all(p.error is None for p in problems)
        return small.engine.stats.decoded_tokens - before[0], small.engine.stats.decode_steps - before[1]

    tokens, steps = decode(1)
    assert tokens == steps  # one greedy chain at a time: one token a step
    tokens, steps = decode(4)
    assert tokens > 4 * 8 and 2 * steps <= tokens  # --concurrency 4: problems shared most of their steps


def test_a_point_subsampled_from_n_samples_is_what_a_k_sample_run_gets(
    small: LlamaCppGenerator, tmp_path: Path
) -> None:
    # the premise of `ttscale sweep`: sample j of a problem is seeded alike whatever n is, so the first k
    # of an n-sample run are the samples a k-sample run draws, and their vote is its vote
    examples = [
        Example(Problem(f"What is {i} + {i + 4}?", id=f"q{i}", answer_kind="number"), str(2 * i + 4))
        for i in range(5)
    ]

    def run(n: int) -> list[ProblemRecord]:
        params = {"n": str(n), "max_tokens": "40", "temperature": "1.0"}
        return evaluate(small, tmp_path / f"n{n}.sqlite", examples, "self_consistency",
                        params=params, concurrency=1, seed=11)  # fmt: skip

    four, two = run(4), run(2)
    for big, small_run in zip(four, two, strict=True):
        assert [s.text for s in big.samples[:2]] == [s.text for s in small_run.samples]
    assert len({s.text for p in four for s in p.samples}) > len(four)  # the samples do differ
    (point,) = sample_curve(four, "self_consistency", {"n": "4"}, [2])
    assert dict(point.correct) == {p.problem_id: p.correct for p in two}
    assert point.accuracy == summarize(two).accuracy
