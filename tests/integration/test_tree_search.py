"""Tree search on a real GGUF model (SmolLM2-135M judging itself): node traces and the prefix cache.

Tiny settings (2 candidates, 2-3 steps, 24 tokens per step): these tests check mechanics, not answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ttscale import Problem, Result, solve
from ttscale.backends.base import Wrapper
from ttscale.backends.llamacpp import LlamaCppGenerator
from ttscale.scorers.prm_judge import PRM_JUDGE_SYSTEM_PROMPT
from ttscale.strategies.beam_search import BeamSearch
from ttscale.strategies.dvts import DVTS
from ttscale.strategies.mcts import MCTS
from ttscale.types import Completion, Prompt, SamplingParams

pytestmark = pytest.mark.integration

PROBLEM = Problem("What is 12 + 30?", answer_kind="number")


class Recording(Wrapper):
    """Passes calls to the engine and keeps every (prompts, completions) pair, to read per-call caching."""

    def __init__(self, inner: LlamaCppGenerator) -> None:
        super().__init__(inner)
        self.calls: list[tuple[Sequence[Prompt], list[list[Completion]]]] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        out = self.inner.generate(prompts, params)
        self.calls.append((prompts, out))
        return out

    def first_samples(self, judge: bool) -> list[tuple[Prompt, Completion]]:
        """(prompt, its first completion) of the judge's or the policy's calls (first: never a fork)."""
        return [
            (p, group[0])
            for prompts, out in self.calls
            for p, group in zip(prompts, out, strict=True)
            if (p.messages[0].content == PRM_JUDGE_SYSTEM_PROMPT) == judge
        ]


def data(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def test_beam_search_traces_nodes_and_reuses_the_prefix_cache(small: LlamaCppGenerator) -> None:
    gen = Recording(small)
    strategy = BeamSearch(n=2, beam_width=1, iterations=3, max_step_tokens=24, seed=7)
    result = solve(PROBLEM, strategy, generator=gen)
    nodes = data(result, "node")
    print({"answer": result.answer, "nodes": len(nodes), "usage": result.usage.to_dict()})
    assert nodes[0]["id"] == 0 and len(nodes) >= 3
    assert all(0.0 <= s <= 1.0 for n in nodes[1:] for s in n["scores"])
    assert {n["status"] for n in nodes[1:]} <= {"chosen", "pruned", "complete", "open"}
    assert data(result, "choice") and data(result, "vote")[0]["prm"] == small.model.name
    assert result.usage.total.cached_prompt_tokens > 0
    # a step after the first continues its parent's prompt: the engine serves that prefix from cache
    later = [c for p, c in gen.first_samples(judge=False) if p.assistant_prefix]
    assert later and all(c.cached_prompt_tokens > 0 for c in later)
    # judging step 2 reuses the judge prompt of step 1 (everything but its closing question)
    judged_twice = [c for p, c in gen.first_samples(judge=True) if "Step 2:" in p.messages[-1].content]
    assert judged_twice and all(c.cached_prompt_tokens > 0 for c in judged_twice)


def test_dvts_keeps_its_subtrees_apart_on_a_real_model(small: LlamaCppGenerator) -> None:
    gen = Recording(small)
    strategy = DVTS(n=4, beam_width=2, iterations=3, max_step_tokens=24, seed=7)
    result = solve(PROBLEM, strategy, generator=gen)
    by_id = {n["id"]: n for n in data(result, "node")}
    print({"answer": result.answer, "nodes": len(by_id), "usage": result.usage.to_dict()})
    assert len(by_id) >= 5  # the root and the first round's 4 proposals at least
    first = [n for n in by_id.values() if n["parent"] == 0]
    assert sorted(n["subtree"] for n in first) == [0, 0, 1, 1]  # N first steps dealt M per subtree
    for node in by_id.values():
        if node["parent"] not in (None, 0):  # a later step never leaves its parent's subtree
            assert node["subtree"] == by_id[node["parent"]]["subtree"]
    assert all(0.0 <= s <= 1.0 for n in list(by_id.values())[1:] for s in n["scores"])
    assert data(result, "vote")[0]["prm"] == small.model.name
    later = [c for p, c in gen.first_samples(judge=False) if p.assistant_prefix]
    assert later and all(c.cached_prompt_tokens > 0 for c in later)


def test_mcts_traces_its_iterations_and_reuses_the_prefix_cache(small: LlamaCppGenerator) -> None:
    gen = Recording(small)
    strategy = MCTS(iterations=2, k=2, max_step_tokens=24, rollout_max_tokens=48, seed=7)
    result = solve(PROBLEM, strategy, generator=gen)
    nodes = data(result, "node")
    print({"answer": result.answer, "nodes": len(nodes), "usage": result.usage.to_dict()})
    assert len(data(result, "select")) == 2 and data(result, "expand") and data(result, "backprop")
    assert nodes[0]["visits"] == len(data(result, "backprop")) >= 2
    assert all(n["value"] is None or 0.0 <= n["value"] <= 1.0 for n in nodes)
    assert result.usage.total.cached_prompt_tokens > 0
    later = [c for p, c in gen.first_samples(judge=False) if p.assistant_prefix]
    assert later and all(c.cached_prompt_tokens > 0 for c in later)
