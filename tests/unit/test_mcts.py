"""MCTS on the scripted backend: UCT selection by hand, backpropagation, bounds, answers, budget."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_helpers import (
    events,
    judge_calls,
    judged_steps,
    named_policy,
    nodes,
    policy_calls,
    search_gen,
    solve,
    step_names,
)

from ttscale import Budget, ConfigError, Ledger
from ttscale.errors import GenerationError
from ttscale.scorers.llm_judge import JUDGE_SYSTEM_PROMPT
from ttscale.search.tree import Tree
from ttscale.strategies import build_strategy
from ttscale.strategies.mcts import MCTS, backprop, most_visited_path, select_path, uct
from ttscale.types import Prompt


def by_first_step(values: dict[str, float], default: float = 50) -> object:
    """A judge scoring every step of a solution by its first step's name (percent)."""
    return lambda steps: values.get(steps[0].split()[0], default) if steps else default


def small_tree() -> Tree:
    tree = Tree(Prompt.user("q"))
    a = tree.add(0, "a", "a\n\n", "stop", 1, False)
    b = tree.add(0, "b", "b\n\n", "stop", 1, False)
    tree.root.visits, a.visits, a.value_sum, b.visits, b.value_sum = 6, 5, 4.0, 1, 0.5
    return tree


def test_uct_formula() -> None:
    assert uct(0.5, 2, 10, math.sqrt(2)) == pytest.approx(0.5 + math.sqrt(2) * math.sqrt(math.log(10) / 2))
    assert uct(0.9, 3, 1, 5.0) == 0.9  # ln 1 = 0: no exploration bonus
    assert uct(0.0, 0, 10, 1.0) == math.inf


@pytest.mark.parametrize(
    ("c", "pick", "score"),
    [
        # A: Q = 0.8 over 5 visits, B: Q = 0.5 over 1 visit, parent 6 visits
        (1.4, "b", 0.5 + 1.4 * math.sqrt(math.log(6) / 1)),  # 2.374 beats A's 0.8 + 1.4 * 0.5986 = 1.638
        (0.1, "a", 0.8 + 0.1 * math.sqrt(math.log(6) / 5)),  # 0.860 beats B's 0.634
        (0.0, "a", 0.8),  # pure exploitation
    ],
)
def test_selection_picks_the_child_the_formula_says(c: float, pick: str, score: float) -> None:
    tree = small_tree()
    path, scores = select_path(tree, c)
    assert [tree.nodes[i].step for i in path[1:]] == [pick]
    assert scores == [pytest.approx(score)]


def test_an_unvisited_child_is_selected_first() -> None:
    tree = small_tree()
    tree.add(0, "c", "c\n\n", "stop", 1, False)
    path, scores = select_path(tree, 1.4)
    assert tree.nodes[path[-1]].step == "c" and scores == [math.inf]


def test_backprop_updates_visits_and_mean_values_up_to_the_root() -> None:
    tree = Tree(Prompt.user("q"))
    a = tree.add(0, "a", "a\n\n", "stop", 1, False)
    b = tree.add(a.id, "b", "b\n\n", "stop", 1, False)
    assert backprop(tree, b.id, 1.0) == [b.id, a.id, 0]
    backprop(tree, b.id, 0.0)
    backprop(tree, a.id, 0.5)
    assert (b.visits, b.value) == (2, 0.5)
    assert (a.visits, a.value) == (3, pytest.approx(0.5))
    assert (tree.root.visits, tree.root.value_sum) == (3, 1.5)
    assert most_visited_path(tree) == [a.id, b.id]


def test_a_run_selects_by_uct_and_backs_up_what_it_trace_says() -> None:
    gen = search_gen(named_policy(depth=6), by_first_step({"n0": 90, "n1": 30}))
    result = solve(MCTS(iterations=3, k=2), gen)
    selects = events(result, "select")
    assert len(selects) == 3 and selects[0]["path"] == [0]
    # after iteration 0: root 2 visits, n0 and n1 one each with values 0.9 and 0.3
    assert step_names(result, selects[1]["path"][1:]) == ["n0"]
    assert selects[1]["uct"] == [pytest.approx(0.9 + math.sqrt(2) * math.sqrt(math.log(2)))]
    # iteration 2: root 4 visits; n0 3 visits (Q 0.9), n1 1 visit (Q 0.3): 0.3 + 1.67 > 0.9 + 0.96
    assert step_names(result, selects[2]["path"][1:]) == ["n1"]
    by_id = nodes(result)
    backs = events(result, "backprop")
    for node_id, node in by_id.items():
        values = [b["value"] for b in backs if node_id in b["path"]]
        assert node["visits"] == len(values)
        if values:
            assert node["value"] == pytest.approx(sum(values) / len(values))
    assert by_id[0]["visits"] == 6  # three expansions of two children, each simulated and backed up


def test_iterations_bound_the_search_and_terminal_leaves_cost_nothing() -> None:
    gen = search_gen(named_policy(depth=2), by_first_step({"n0": 90, "n1": 10}))
    result = solve(MCTS(iterations=5, k=2, c=0.0), gen)
    assert len(events(result, "select")) == 5
    expands = events(result, "expand")
    assert len(expands) == 2  # the root, then n0, whose children finish the solution
    # expand the root, roll its two children out in one call, expand n0: its children are finished
    # solutions, so they need no rollout, and selecting them again costs no call at all
    assert len(policy_calls(gen)) == 3
    terminal_selects = [s for s in events(result, "select") if s["iteration"] >= 2]
    assert all(nodes(result)[s["path"][-1]]["terminal"] for s in terminal_selects)
    assert len(events(result, "backprop")) == 4 + 3


@pytest.mark.parametrize(("rule", "answer"), [("most_visited", "3"), ("best_value", "1"), ("vote", "2")])
def test_answer_rules(rule: str, answer: str) -> None:
    answers = {"n00r": "1", "n10r": "2", "n010": "3", "n020": "2"}
    policy = named_policy(depth=3, answer=lambda name: answers.get(name, "0"))
    gen = search_gen(policy, by_first_step({"n0": 90, "n1": 30}))
    result = solve(MCTS(iterations=2, k=2, c=0.0, answer=rule), gen)  # type: ignore[arg-type]
    assert [s["answer"] for s in events(result, "sample")] == ["1", "2", "3", "2"]
    assert result.answer == answer and f"\\boxed{{{answer}}}" in result.response
    (choice,) = events(result, "choice")
    if rule == "most_visited":
        assert step_names(result, choice["path"]) == ["n0", "n01"] and result.confidence is None
        assert nodes(result)[choice["path"][0]]["status"] == "chosen"


def test_a_most_visited_solution_without_an_answer_leaves_the_choice_to_the_vote() -> None:
    # the setting of test_answer_rules, with letters for the digits of step names (na = n0, nab = n01),
    # so that a solution without a \\boxed{} answer holds no number to extract either
    letters = str.maketrans("0123456789", "abcdefghij")
    answers = {"naar": "1", "nbar": "2", "naca": "2"}
    named = named_policy(depth=3, answer=lambda name: answers.get(name.translate(letters), "0"))

    def policy(prompt: Any, k: int) -> str:
        out = re.sub(r"\bn\w*", lambda m: m.group(0).translate(letters), named(prompt, k))
        return "naba so I am not sure." if out.startswith("naba") else out  # the most visited: no answer

    gen = search_gen(policy, by_first_step({"na": 90, "nb": 30}))
    result = solve(MCTS(iterations=2, k=2, c=0.0, answer="most_visited"), gen)
    assert [s["answer"] for s in events(result, "sample")] == ["1", "2", None, "2"]
    assert result.answer == "2" and "\\boxed{2}" in result.response  # answer and response agree
    (vote,) = events(result, "vote")
    assert "sample 2" in vote["fallback"] and vote["winner_sample"] in (1, 3)
    (choice,) = events(result, "choice")
    assert choice["sample"] == vote["winner_sample"]
    assert result.confidence == pytest.approx(2 / 3)


def test_outcome_values_ask_the_outcome_judge_about_whole_solutions() -> None:
    gen = search_gen(named_policy(depth=3), lambda steps: 80 if "n0" in steps[0] else 20)
    result = solve(MCTS(iterations=1, k=2, value="outcome"), gen)
    [(prompts, params)] = judge_calls(gen)
    assert {p.messages[0].content for p in prompts} == {JUDGE_SYSTEM_PROMPT} and params.max_tokens == 1
    assert [b["value"] for b in events(result, "backprop")] == pytest.approx([0.8, 0.2])


def test_a_nan_outcome_value_raises_naming_the_model() -> None:
    gen = search_gen(named_policy(depth=3), lambda steps: math.nan, name="odd-judge")
    with pytest.raises(GenerationError, match="'odd-judge'.*node 1 \\(step 1\\)"):
        solve(MCTS(iterations=1, k=2, value="outcome"), gen)


def test_rollouts_are_greedy_bounded_and_run_to_the_end() -> None:
    gen = search_gen(named_policy(depth=4))
    result = solve(MCTS(iterations=1, k=3, rollout_max_tokens=77), gen)
    expand, rollout = policy_calls(gen)
    assert expand[1].n == 3 and expand[1].stop == ("\n\n",)
    assert (rollout[1].n, rollout[1].temperature, rollout[1].max_tokens, rollout[1].stop) == (1, 0.0, 77, ())
    assert len(rollout[0]) == 3
    assert all("rollout" in n for n in events(result, "node") if n["depth"] == 1)


@pytest.mark.parametrize(
    ("aggregation", "judged", "tail"), [("last", [3, 3, 3], 1), ("min", [1, 1, 1, 2, 2, 2, 3, 3, 3], 2)]
)
def test_a_rollout_is_judged_at_its_last_step_alone_when_only_that_counts(
    aggregation: str, judged: list[int], tail: int
) -> None:
    # each of the root's 3 children (step 1) is rolled out by 2 more steps; with "last" aggregation only
    # the third step's verdict counts, so it is the only one asked for
    gen = search_gen(named_policy(depth=5))
    result = solve(MCTS(iterations=1, k=3, aggregation=aggregation), gen)  # type: ignore[arg-type]
    [(prompts, _)] = judge_calls(gen)
    assert sorted(len(judged_steps(p)) for p in prompts) == judged
    children = [n for n in events(result, "node") if n["depth"] == 1]
    assert len(children) == 3 and all(len(n["tail_scores"]) == tail for n in children)
    assert all(n["score"] == pytest.approx(0.5) for n in children)


@settings(max_examples=20, deadline=None)
@given(tokens=st.integers(min_value=0, max_value=5000))
def test_the_budget_is_never_exceeded(tokens: int) -> None:
    ledger = Ledger(Budget(tokens=tokens))
    result = solve(MCTS(iterations=8, k=2), search_gen(named_policy(depth=4)), ledger)
    assert ledger.usage().total.total_tokens <= tokens
    stops = events(result, "stop")
    assert len(events(result, "select")) == 8 or stops[-1]["reason"] == "budget"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"c": -1}, "c must be a finite number >= 0, got -1.0"),
        ({"iterations": 0}, "iterations must be an integer >= 1, got 0"),
        ({"k": 0}, "k must be an integer >= 1"),
        ({"max_step_tokens": 0}, "max_step_tokens must be an integer >= 1"),
        ({"rollout_max_tokens": 0}, "rollout_max_tokens must be an integer >= 1"),
        ({"c": "inf"}, "c must be a finite number >= 0"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_strategy("mcts", params)


def test_defaults() -> None:
    s = MCTS()
    assert (s.iterations, s.k, s.c, s.rollout_temperature, s.answer, s.value) == (
        16,
        4,
        math.sqrt(2),
        0.0,
        "most_visited",
        "prm",
    )


def test_rollouts_the_budget_cannot_value_still_answer() -> None:
    # find a budget that pays for the first expansion and its whole rollouts but not for judging them
    for tokens in range(0, 2000, 5):
        gen = search_gen(named_policy(depth=4))
        result = solve(MCTS(iterations=4, k=2), gen, Ledger(Budget(tokens=tokens)))
        finished = [s["answer"] for s in events(result, "sample")] == ["42", "42"]
        if len(policy_calls(gen)) == 2 and not judge_calls(gen) and finished:
            break
    else:
        pytest.fail("no budget stops MCTS between the rollouts and their valuation")
    assert events(result, "stop")[-1]["reason"] == "budget"
    assert result.answer == "42"  # the unvalued rollouts are the pool, not nothing
    unvalued = [n for n in events(result, "node") if n["depth"] == 1]
    assert len(unvalued) == 2 and all(n.get("unvalued") and n["rollout"] for n in unvalued)
    assert not events(result, "backprop")  # nothing was valued, so nothing is backed up
