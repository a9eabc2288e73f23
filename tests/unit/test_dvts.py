"""DVTS on the scripted backend: independent subtrees, the best proposal per subtree, completed-only votes
(and, with beam search, what a refused scoring call leaves)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_helpers import (
    events,
    named_policy,
    nodes,
    policy_calls,
    policy_steps,
    prefer,
    refuse_scoring_from,
    search_gen,
    solve,
    step_names,
)

from ttscale import Budget, ConfigError, Ledger
from ttscale.strategies import build_strategy
from ttscale.strategies.beam_search import BeamSearch
from ttscale.strategies.dvts import DVTS


def test_first_round_deals_n_first_steps_out_beam_width_per_subtree() -> None:
    gen = search_gen(named_policy(depth=4))
    result = solve(DVTS(n=6, beam_width=2, iterations=2), gen)
    first, second = events(result, "round")
    assert step_names(result, [i for group in first["proposals"] for i in group]) == [
        f"n{i}" for i in range(6)
    ]
    assert [step_names(result, g) for g in first["proposals"]] == [["n0", "n1"], ["n2", "n3"], ["n4", "n5"]]
    calls = policy_calls(gen)
    assert [(len(p), c.n) for p, c in calls] == [(1, 6), (3, 2)]  # one call from the root, then 2 per subtree


def test_subtrees_stay_independent_where_beam_search_converges() -> None:
    # the judge loves everything that descends from n0: beam search keeps only n0's line
    pct = prefer({"n0": 99, "n00": 99, "n01": 98})
    beam = solve(BeamSearch(n=4, beam_width=2, iterations=2), search_gen(named_policy(depth=5), pct))
    assert step_names(beam, events(beam, "round")[1]["kept"]) == ["n00", "n01"]

    gen = search_gen(named_policy(depth=5), pct)
    result = solve(DVTS(n=4, beam_width=2, iterations=3), gen)
    by_id = nodes(result)
    for node in by_id.values():
        if node["parent"] not in (None, 0):
            assert node["subtree"] == by_id[node["parent"]]["subtree"]  # no step crosses subtrees
    rounds = events(result, "round")
    assert [step_names(result, r["kept"]) for r in rounds] == [["n0", "n2"], ["n00", "n20"], ["n000", "n200"]]
    # every prompt after the first continues exactly one subtree's own current step
    for prompts, _ in policy_calls(gen)[1:]:
        heads = [policy_steps(p)[0] for p in prompts]
        assert heads == ["n0", "n2"]


def test_each_subtree_keeps_its_single_best_proposal() -> None:
    pct = prefer({"n1": 70, "n2": 60, "n3": 90, "n10": 20, "n11": 80})
    result = solve(DVTS(n=4, beam_width=2, iterations=2), search_gen(named_policy(depth=5), pct))
    first, second = events(result, "round")
    assert step_names(result, first["kept"]) == ["n1", "n3"]
    assert step_names(result, second["kept"])[0] == "n11"
    statuses = {n["step"]: n["status"] for n in events(result, "node")}
    assert (statuses["n0"], statuses["n1"], statuses["n10"], statuses["n11"]) == (
        "pruned",
        "chosen",
        "pruned",
        "chosen",
    )


def test_only_completed_candidates_vote() -> None:
    # subtree 0 (n0, n1) finishes at its second step; subtree 1 (n2, n3) never finishes
    def policy(prompt: Any, k: int) -> str:
        steps = policy_steps(prompt)
        if not steps:
            return f"n{k}\n\nmore"
        head = steps[0]
        if head in ("n0", "n1"):
            return f"{head}x{k} so \\boxed{{{k % 2}}}."
        return f"{steps[-1]}y\n\nmore"

    gen = search_gen(policy, prefer({"n1": 90}))
    result = solve(DVTS(n=4, beam_width=2, iterations=4), gen)
    samples = events(result, "sample")
    assert len(samples) == 2 and all(s["text"].startswith("n1\n\nn1x") for s in samples)
    (vote,) = events(result, "vote")
    assert not vote["unfinished"] and vote["subtrees"] == 2
    by_id = nodes(result)
    assert {by_id[s["node"]]["status"] for s in samples} == {"complete"}
    assert [len(r["subtrees"]) for r in events(result, "round")] == [2, 2, 1, 1]  # subtree 0 stops expanding


def test_with_no_completed_subtree_the_current_nodes_stand_in() -> None:
    result = solve(DVTS(n=4, beam_width=2, iterations=2), search_gen(named_policy(depth=9)))
    (vote,) = events(result, "vote")
    assert vote["unfinished"] and vote["pool"] == 2


@pytest.mark.parametrize("search", [BeamSearch, DVTS])
def test_finished_solutions_whose_scoring_was_refused_still_answer(search: Any, monkeypatch: Any) -> None:
    # both keep n1 (0.9) then n10 (0.8), and n2 (0.5) then n20 (0.5) (beam search as its two beams, DVTS as
    # its two subtrees); round 2 finishes all four candidates, and its scoring call is refused: they were
    # paid for, so they answer, with their parent's score standing in, rather than the unfinished beams
    answers = {"n100": "7", "n101": "7", "n200": "9", "n201": "9"}
    gen = search_gen(
        named_policy(depth=3, answer=lambda name: answers.get(name, "0")),
        prefer({"n0": 10, "n1": 90, "n10": 80, "n11": 30}),
    )
    refuse_scoring_from(3, monkeypatch)
    result = solve(search(n=4, beam_width=2), gen)
    stop = events(result, "stop")[-1]
    assert stop["reason"] == "budget" and stop["iteration"] == 2
    assert step_names(result, stop["unscored"]) == ["n100", "n101", "n200", "n201"]
    (vote,) = events(result, "vote")
    assert not vote["unfinished"] and vote["pool"] == 4
    by_id = nodes(result)
    assert {by_id[i]["step"].split()[0]: round(by_id[i]["score"], 6) for i in stop["unscored"]} == {
        "n100": 0.8, "n101": 0.8, "n200": 0.5, "n201": 0.5
    }  # fmt: skip
    assert all(by_id[i]["unscored"] and by_id[i]["status"] == "complete" for i in stop["unscored"])
    assert result.answer == "7"  # weighted: 0.8 + 0.8 for 7 against 0.5 + 0.5 for 9


@settings(max_examples=20, deadline=None)
@given(tokens=st.integers(min_value=0, max_value=5000))
def test_the_budget_is_never_exceeded(tokens: int) -> None:
    ledger = Ledger(Budget(tokens=tokens))
    result = solve(DVTS(n=4, beam_width=2, iterations=6), search_gen(named_policy(depth=5)), ledger)
    assert ledger.usage().total.total_tokens <= tokens
    assert result.strategy == "dvts"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"n": 10, "beam_width": 4},
            "n must be a multiple of beam_width \\(4\\), so that there are n / beam_width subtrees",
        ),
        ({"iterations": 0}, "iterations must be an integer >= 1"),
        ({"max_step_tokens": 0}, "max_step_tokens must be an integer >= 1"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_strategy("dvts", params)


def test_defaults() -> None:
    s = DVTS()
    assert (s.n, s.beam_width, s.subtrees, s.iterations, s.temperature, s.aggregation) == (
        16,
        4,
        4,
        40,
        0.8,
        "last",
    )
