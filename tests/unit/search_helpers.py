"""Scripted policies and judges for the tree-search tests (beam search, DVTS, MCTS, PRM).

Steps are named by their path: the j-th step sampled after the partial solution whose last step is
``n01`` is ``n01j`` (the root's children are ``n0``, ``n1``, ...), so a test can say which step it expects
where. A step at depth ``depth`` (1-based) finishes its solution: ``n012 so \\boxed{A}.`` with
``A = answer(name)``. Below that depth a response is ``n01``, a blank line, then ``n01r so \\boxed{A}.``
with ``A = answer("n01r")``: a step generation stops at the blank line, a rollout reads on to the end.
The judge reads the steps in its prompt and answers ``J<pct>``, whose top logprobs give
P(Yes) = pct / 100 (``pct(steps)`` decides).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ttscale import Ledger, Problem, Result
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.scorers.llm_judge import JUDGE_SYSTEM_PROMPT
from ttscale.scorers.prm_judge import PRM_JUDGE_SYSTEM_PROMPT
from ttscale.types import Prompt

PROBLEM = Problem("What is 6 times 7?")
_STEP = re.compile(r"Step \d+: (.*?)\n\n", re.S)


def verdict_top(tok: str, i: int) -> list[tuple[str, float]]:
    """A judge token ``J<pct>`` has P(Yes) = pct / 100 after normalising against Yes + No."""
    p = float(tok.strip()[1:]) / 100
    if math.isnan(p):  # a broken judge: NaN logprobs
        return [("Yes", math.nan), ("No", math.nan)]
    yes = math.log(0.8 * p) if p > 0 else -math.inf
    no = math.log(0.8 * (1 - p)) if p < 1 else -math.inf
    return [("Yes", yes), ("No", no), ("Hmm", math.log(0.2))]


def judged_steps(prompt: Prompt) -> list[str]:
    """The steps shown in a step-judge prompt."""
    return _STEP.findall(prompt.messages[-1].content)


def policy_steps(prompt: Prompt) -> list[str]:
    """The steps of the partial solution a policy prompt continues."""
    return [s for s in prompt.assistant_prefix.split("\n\n") if s.strip()]


def named_policy(
    depth: int, answer: Callable[[str], str] = lambda name: "42"
) -> Callable[[Prompt, int], str]:
    """The policy responder described in the module docstring (``depth`` steps per solution)."""
    children: dict[tuple[str, ...], int] = {}

    def respond(prompt: Prompt, k: int) -> str:
        steps = tuple(policy_steps(prompt))
        j = children.get(steps, 0)
        children[steps] = j + 1
        name = (steps[-1].split()[0] if steps else "n") + str(j)
        if len(steps) + 1 >= depth:
            return f"{name} so \\boxed{{{answer(name)}}}."
        # a step stops at the blank line; a rollout (no stop string) reads on to a finished solution
        return f"{name}\n\n{name}r so \\boxed{{{answer(name + 'r')}}}."

    return respond


def search_gen(
    policy: Callable[[Prompt, int], str],
    pct: Callable[[list[str]], float] = lambda steps: 50,
    *,
    name: str = "scripted",
    reentrant: bool = False,
    **options: Any,
) -> ScriptedGenerator:
    """One scripted model that samples steps with ``policy`` and, asked as a step judge, answers
    ``J<pct(steps)>`` (as an outcome judge, ``J<pct([whole solution])>``).

    ``reentrant``: let stopping criteria call the generator's ``decode`` during ``generate`` (the scripted
    backend holds a plain lock there, so a criterion that decodes would otherwise deadlock).
    """

    def respond(prompt: Prompt, k: int) -> str:
        system = prompt.messages[0].content
        if system == PRM_JUDGE_SYSTEM_PROMPT:
            return f"J{pct(judged_steps(prompt))}"
        if system == JUDGE_SYSTEM_PROMPT:
            return f"J{pct([prompt.messages[-1].content])}"
        return policy(prompt, k)

    gen = ScriptedGenerator(respond, model=ScriptedModel(name=name), top_fn=verdict_top, **options)
    if reentrant:
        gen._lock = threading.RLock()  # type: ignore[assignment]
    return gen


class ClosableJudge(ScriptedGenerator):
    """A scripted judge model with ``close()``, as ``open_judge`` returns."""

    closed = False

    def close(self) -> None:
        self.closed = True


def separate_judge(
    monkeypatch: Any, pct: Callable[[list[str]], float] = lambda steps: 50, **options: Any
) -> list[ClosableJudge]:
    """Make ``prm_model=NAME`` open a scripted judge called NAME; returns the judges opened."""
    from ttscale.strategies import best_of_n

    opened: list[ClosableJudge] = []

    def open_judge(name: str) -> ClosableJudge:
        def respond(prompt: Prompt, k: int) -> str:
            return f"J{pct(judged_steps(prompt))}"

        judge = ClosableJudge(respond, model=ScriptedModel(name=name), top_fn=verdict_top, **options)
        opened.append(judge)
        return judge

    monkeypatch.setattr(best_of_n, "open_judge", open_judge)
    return opened


def prefer(scores: dict[str, float], default: float = 50) -> Callable[[list[str]], float]:
    """A judge giving the last step ``scores[its name]`` (percent), ``default`` otherwise."""
    return lambda steps: scores.get(steps[-1].split()[0], default) if steps else default


def solve(
    strategy: Any, gen: ScriptedGenerator, ledger: Ledger | None = None, problem: Problem = PROBLEM
) -> Result:
    ledger = ledger if ledger is not None else Ledger()
    result: Result = strategy.solve(problem, ledger.meter(gen))
    return result


def events(result: Result, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.trace if e.kind == kind]


def nodes(result: Result) -> dict[int, dict[str, Any]]:
    return {e["id"]: e for e in events(result, "node")}


def policy_calls(gen: ScriptedGenerator) -> list[tuple[tuple[Prompt, ...], Any]]:
    """The generate calls that sampled policy steps or rollouts (not judge calls)."""
    judges = (PRM_JUDGE_SYSTEM_PROMPT, JUDGE_SYSTEM_PROMPT)
    return [(p, params) for p, params in gen.calls if p[0].messages[0].content not in judges]


def judge_calls(gen: ScriptedGenerator) -> list[tuple[tuple[Prompt, ...], Any]]:
    judges = (PRM_JUDGE_SYSTEM_PROMPT, JUDGE_SYSTEM_PROMPT)
    return [(p, params) for p, params in gen.calls if p[0].messages[0].content in judges]


def all_prompt_texts(gen: ScriptedGenerator) -> list[str]:
    """Every prompt the generator saw, rendered (system, user, assistant prefix)."""
    from ttscale.backends.scripted import render

    return [render(p) for prompts, _ in gen.calls for p in prompts]


def step_names(result: Result, ids: Sequence[int]) -> list[str]:
    by_id = nodes(result)
    return [by_id[i]["step"].split()[0] for i in ids]


def refuse_scoring_from(call: int, monkeypatch: Any) -> None:
    """Make the ``call``-th PRM scoring call of a search (1-based) and every later one refused, as a budget
    that paid for the round's steps but not for their judgement would."""
    from ttscale.errors import BudgetExhausted
    from ttscale.search.expand import Searcher

    real = Searcher.score
    seen = [0]

    def score(self: Searcher, *args: Any, **kwargs: Any) -> None:
        seen[0] += 1
        if seen[0] >= call:
            raise BudgetExhausted("budget exhausted: 0 tokens left for the judge")
        real(self, *args, **kwargs)

    monkeypatch.setattr(Searcher, "score", score)
