"""Best-of-N on a real GGUF model (SmolLM2-135M): the judge's P(Yes) and self-certainty on real logprobs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ttscale import Problem, Result, solve
from ttscale.backends.llamacpp import ContextConfig, LlamaCppGenerator

pytestmark = pytest.mark.integration

PROBLEM = Problem("What is 12 + 30?", answer_kind="number")
SHORT = {"n": 3, "max_tokens": 40, "seed": 11}


def data(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def test_llm_judge_with_the_policy_as_judge(small: LlamaCppGenerator) -> None:
    result = solve(PROBLEM, "best_of_n", generator=small, **SHORT)
    samples = data(result, "sample")
    assert len(samples) == 3
    assert all(0.0 <= s["score"] <= 1.0 for s in samples)
    (vote,) = data(result, "vote")
    assert vote["winner_sample"] in (0, 1, 2) and vote["judge"] == small.model.name
    assert result.response == samples[vote["winner_sample"]]["text"]
    usage = result.usage.by_model
    assert list(usage) == [small.model.name] and usage[small.model.name].calls == 2  # draw + one judge call
    sample_tokens = sum(s["tokens"] for s in samples)
    assert usage[small.model.name].completion_tokens == sample_tokens + 3  # one verdict token per sample


def test_self_certainty_scores_are_finite_and_positive(small: LlamaCppGenerator) -> None:
    result = solve(PROBLEM, "best_of_n", generator=small, scorer="self_certainty", selection="naive", **SHORT)
    scores = [s["score"] for s in data(result, "sample")]
    assert len(scores) == 3 and all(math.isfinite(s) and s > 0 for s in scores)
    assert result.confidence == max(scores)  # naive: the winner is the top-scored sample
    assert result.usage.total.calls == 1  # no judge call


def test_the_followup_judge_reads_the_solutions_from_the_policys_cache(small_path: Path) -> None:
    # the same draw (same seed) judged both ways, on an engine of its own (the module's engine has these
    # samples and judge prompts cached by the other tests); the follow-up judge runs first, so it also
    # pays for the policy prompt that the fresh judge's run then finds cached
    config = ContextConfig(n_seq_max=32, seq_len=1024)
    with LlamaCppGenerator(small_path, name="smollm2", config=config) as gen:
        follow = solve(PROBLEM, "best_of_n", generator=gen, scorer="followup_judge", **SHORT)
        fresh = solve(PROBLEM, "best_of_n", generator=gen, scorer="llm_judge", **SHORT)
    texts = [s["text"] for s in data(follow, "sample")]
    assert texts == [s["text"] for s in data(fresh, "sample")]
    assert all(0.0 <= s["score"] <= 1.0 for s in data(follow, "sample"))
    solution_tokens = sum(s["tokens"] for s in data(follow, "sample"))
    computed = follow.usage.total.prompt_tokens  # prompt tokens computed; cache hits are counted apart
    assert follow.usage.total.cached_prompt_tokens >= solution_tokens  # each solution served from cache
    assert computed + solution_tokens <= fresh.usage.total.prompt_tokens  # the fresh judge reads them anew
