"""Beam search on the scripted backend: what it keeps, what it answers, its trace, budget and validation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_helpers import (
    all_prompt_texts,
    events,
    named_policy,
    nodes,
    policy_calls,
    prefer,
    search_gen,
    solve,
    step_names,
)

from ttscale import Budget, ConfigError, Ledger
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.errors import CapabilityError
from ttscale.evals.datasets import load
from ttscale.strategies import build_strategy
from ttscale.strategies.beam_search import BeamSearch


def test_each_round_keeps_n_over_beam_width_beams_with_beam_width_children_each() -> None:
    gen = search_gen(named_policy(depth=5))
    result = solve(BeamSearch(n=8, beam_width=2, iterations=3), gen)
    rounds = events(result, "round")
    assert [len(r["candidates"]) for r in rounds] == [8, 8, 8]
    assert [len(r["kept"]) for r in rounds] == [4, 4, 4]
    by_id = nodes(result)
    for before, after in zip(rounds, rounds[1:], strict=False):
        parents = [by_id[c]["parent"] for c in after["candidates"]]
        assert sorted(set(parents)) == sorted(before["kept"])
        assert all(parents.count(p) == 2 for p in before["kept"])
    assert [p[1].n for p in policy_calls(gen)] == [8, 2, 2]  # 8 first steps, then 2 per kept beam


def test_the_beams_the_prm_prefers_are_kept_ties_to_the_earlier_node() -> None:
    pct = prefer({"n5": 90, "n2": 80, "n7": 70, "n0": 60, "n21": 95, "n01": 85})
    result = solve(BeamSearch(n=8, beam_width=2, iterations=2), search_gen(named_policy(depth=5), pct))
    first, second = events(result, "round")
    assert step_names(result, first["kept"]) == ["n5", "n2", "n7", "n0"]
    assert step_names(result, second["candidates"]) == [
        "n50",
        "n51",
        "n20",
        "n21",
        "n70",
        "n71",
        "n00",
        "n01",
    ]
    assert step_names(result, second["kept"]) == ["n21", "n01", "n50", "n51"]  # then 50% ties, earliest first
    statuses = {n["step"]: n["status"] for n in events(result, "node")}
    assert statuses["n1"] == statuses["n70"] == "pruned" and statuses["n21"] == "chosen"


def test_completed_candidates_leave_the_beam_and_the_samples_go_to_the_survivors() -> None:
    def policy(prompt: Any, k: int) -> str:
        if prompt.assistant_prefix == "":
            return f"r{k} so \\boxed{{{k}}}." if k < 4 else f"r{k}\n\nmore"
        return f"{prompt.assistant_prefix.split()[0]}x{k} so \\boxed{{{k}}}."

    gen = search_gen(policy, prefer({"r0": 99, "r1": 99}))
    result = solve(BeamSearch(n=6, beam_width=2, iterations=5), gen)
    first, second = events(result, "round")
    assert step_names(result, first["completed"]) == ["r0", "r1", "r2", "r3"]
    assert step_names(result, first["kept"]) == ["r4", "r5"]  # 2 survivors, fewer than n / beam_width = 3
    assert [(len(p), c.n) for p, c in policy_calls(gen)] == [(1, 6), (2, 3)]  # 6 samples over 2 beams
    assert len(second["completed"]) == 6
    assert len(events(result, "sample")) == 6  # the n best-scored of the 10 completed solutions
    complete = [n for n in events(result, "node") if n["status"] == "complete"]
    assert {n["step"].split()[0] for n in complete} >= {"r0", "r1"}


def _twin_policy(prompt: Any, k: int) -> str:
    """First steps come in identical pairs (s0, s0, s1, s1, ...); every second step finishes."""
    if prompt.assistant_prefix == "":
        name = f"s{k // 2}"
        return f"{name}\n\n{name}r so \\boxed{{1}}."
    return f"{prompt.assistant_prefix.split()[0]}x{k} so \\boxed{{2}}."


def test_duplicate_candidates_are_filtered_before_the_beams_are_kept() -> None:
    result = solve(BeamSearch(n=4, beam_width=2, iterations=2), search_gen(_twin_policy))
    first = events(result, "round")[0]
    assert step_names(result, first["candidates"]) == ["s0", "s0", "s1", "s1"]
    assert step_names(result, first["kept"]) == ["s0", "s1"]  # one of each, not the two s0 tied first
    assert step_names(result, first["duplicates"]) == ["s0", "s1"]
    by_id = nodes(result)
    for dup in first["duplicates"]:
        original = by_id[by_id[dup]["duplicate_of"]]
        assert original["step"] == by_id[dup]["step"] and original["id"] < dup
        assert by_id[dup]["status"] == "pruned"


def test_filter_duplicates_off_keeps_identical_beams() -> None:
    result = solve(
        BeamSearch(n=4, beam_width=2, iterations=2, filter_duplicates=False), search_gen(_twin_policy)
    )
    first = events(result, "round")[0]
    assert step_names(result, first["kept"]) == ["s0", "s0"]
    assert first["duplicates"] == []


@pytest.mark.parametrize(
    ("selection", "scores", "answer"),
    [
        # answers: n00 -> 7, n01 -> 7, n10 -> 9, n11 -> 5
        ("weighted", {"n00": 50, "n01": 50, "n10": 90, "n11": 10}, "7"),  # 1.0 for 7 beats 0.9 for 9
        ("naive", {"n00": 50, "n01": 50, "n10": 90, "n11": 10}, "9"),  # the single best solution
        ("weighted", {"n00": 20, "n01": 20, "n10": 90, "n11": 10}, "9"),  # 0.9 beats 0.4
        ("majority", {"n00": 20, "n01": 20, "n10": 90, "n11": 10}, "7"),  # two votes beat one
    ],
)
def test_final_selection(selection: str, scores: dict[str, float], answer: str) -> None:
    answers = {"n00": "7", "n01": "7", "n10": "9", "n11": "5"}
    gen = search_gen(named_policy(depth=2, answer=lambda name: answers.get(name, "0")), prefer(scores))
    result = solve(BeamSearch(n=4, beam_width=2, selection=selection), gen)  # type: ignore[arg-type]
    assert result.answer == answer
    (vote,) = events(result, "vote")
    assert vote["selection"] == selection and vote["pool"] == 4 and not vote["unfinished"]
    assert f"\\boxed{{{answer}}}" in result.response


def test_choice_names_the_path_of_the_response() -> None:
    gen = search_gen(named_policy(depth=3), prefer({"n1": 90, "n10": 90, "n101": 90}))
    result = solve(BeamSearch(n=4, beam_width=2), gen)
    (choice,) = events(result, "choice")
    assert step_names(result, choice["path"]) == ["n1", "n10", "n101"]
    by_id = nodes(result)
    assert [by_id[i]["parent"] for i in choice["path"]] == [0, *choice["path"][:-1]]
    assert result.response == "n1\n\nn10\n\nn101 so \\boxed{42}."
    assert by_id[choice["path"][-1]]["status"] == "complete"
    assert all(by_id[i]["status"] != "pruned" for i in choice["path"])


def test_lookahead_scores_a_candidate_by_a_greedy_rollout_of_k_steps() -> None:
    pct = prefer({"n0": 80, "n1": 30, "n00": 20, "n10": 90})
    gen = search_gen(named_policy(depth=4), pct)
    result = solve(BeamSearch(n=2, beam_width=2, iterations=1, lookahead=1), gen)
    (first,) = events(result, "round")
    assert step_names(result, first["kept"]) == ["n1"]  # 0.9 at the end of its rollout beats 0.2
    calls = policy_calls(gen)
    assert calls[1][1].temperature == 0.0 and calls[1][1].n == 1 and len(calls[1][0]) == 2
    n1 = next(n for n in events(result, "node") if n["step"] == "n1")
    # "last" aggregation judges only the end of the rollout, not the step it started from
    assert (
        n1["scores"] == [] and n1["tail_scores"] == pytest.approx([0.9]) and n1["score"] == pytest.approx(0.9)
    )
    assert n1["lookahead"] == ["n10"]
    gen = search_gen(named_policy(depth=4), pct)
    result = solve(BeamSearch(n=2, beam_width=2, iterations=1, lookahead=1, aggregation="min"), gen)
    n1 = next(n for n in events(result, "node") if n["step"] == "n1")
    assert n1["scores"] == pytest.approx([0.3]) and n1["score"] == pytest.approx(0.3)  # min(0.3, 0.9)


def test_seeds_advance_with_every_sample_drawn() -> None:
    gen = search_gen(named_policy(depth=4))
    solve(BeamSearch(n=4, beam_width=2, iterations=3, seed=100), gen)
    assert [c.seed for _, c in policy_calls(gen)] == [100, 104, 108]


def test_a_budget_cut_search_answers_from_what_it_scored() -> None:
    gen = search_gen(named_policy(depth=9))
    ledger = Ledger(Budget(tokens=2500))
    result = solve(BeamSearch(n=4, beam_width=2, iterations=40), gen, ledger)
    assert ledger.usage().total.total_tokens <= 2500
    stop = events(result, "stop")[-1]
    assert stop["reason"] == "budget" and "budget" in stop["note"]
    (vote,) = events(result, "vote")
    assert vote["unfinished"] and vote["pool"] == 2  # no solution finished: the two live beams stand in
    assert result.answer is not None


@settings(max_examples=25, deadline=None)
@given(tokens=st.integers(min_value=0, max_value=6000), lookahead=st.integers(0, 2))
def test_the_budget_is_never_exceeded(tokens: int, lookahead: int) -> None:
    ledger = Ledger(Budget(tokens=tokens))
    strategy = BeamSearch(n=4, beam_width=2, iterations=6, lookahead=lookahead)
    result = solve(strategy, search_gen(named_policy(depth=5)), ledger)
    assert ledger.usage().total.total_tokens <= tokens
    assert result.strategy == "beam_search"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"n": 6, "beam_width": 4},
            "n must be a multiple of beam_width \\(4\\), so that n / beam_width beams",
        ),
        ({"iterations": 0}, "iterations must be an integer >= 1, got 0"),
        ({"max_step_tokens": 0}, "max_step_tokens must be an integer >= 1, got 0"),
        ({"beam_width": 0}, "beam_width must be an integer >= 1"),
        ({"lookahead": -1}, "lookahead must be an integer >= 0"),
        (
            {"selection": "best"},
            "'selection' of strategy 'beam_search' expects 'weighted' | 'naive' | 'majority'",
        ),
        ({"aggregation": "max"}, "expects 'last' | 'min' | 'prod' | 'mean', got 'max'"),
        ({"prm": "hf_prm"}, "prm must be llm_judge_prm, hf:<Hugging Face PRM> or one of orm:"),
        ({"steps": "sentences"}, "steps must be blank_line, newline, step_markers or regex:<pattern>"),
        ({"temperature": -1}, "temperature must be a finite number >= 0"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_strategy("beam_search", params)


def test_typed_construction_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="selection must be weighted or naive or majority, got 'best'"):
        BeamSearch(selection="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="aggregation must be last or min or prod or mean"):
        BeamSearch(aggregation="max")  # type: ignore[arg-type]


def test_defaults_follow_search_and_learn() -> None:
    s = BeamSearch()
    assert (s.n, s.beam_width, s.iterations, s.temperature, s.top_p, s.aggregation) == (
        16,
        4,
        40,
        0.8,
        1.0,
        "last",
    )
    assert (s.lookahead, s.selection, s.prm, s.steps) == (0, "weighted", "llm_judge_prm", "blank_line")
    assert s.filter_duplicates  # every search-and-learn beam-search recipe sets filter_duplicates: true


def test_a_policy_that_cannot_continue_a_prefix_is_refused_before_sampling() -> None:
    gen = ScriptedGenerator(["x"], continue_prefix=False)
    with pytest.raises(CapabilityError, match="beam_search needs continuing an assistant prefix"):
        BeamSearch(n=2, beam_width=1).solve(load("gsm8k", limit=1)[0].problem, Ledger().meter(gen))
    assert gen.calls == []


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("beam_search", {"n": 4, "beam_width": 2, "lookahead": 1}),
        ("dvts", {"n": 4, "beam_width": 2}),
        ("mcts", {"iterations": 4, "k": 2}),
        ("mcts", {"iterations": 3, "k": 2, "value": "outcome"}),
    ],
)
def test_no_prompt_ever_holds_the_answer_key(name: str, params: dict[str, object]) -> None:
    example = load("gsm8k", limit=1)[0]
    gold = example.answer
    assert gold == "18" and gold not in example.problem.question  # a key that could only leak
    gen = search_gen(named_policy(depth=3, answer=lambda n: "9"), prefer({"n1": 80}))
    result = solve(build_strategy(name, params), gen, problem=example.problem)
    texts = all_prompt_texts(gen)
    assert len(texts) > 4 and all(example.problem.question in t for t in texts)  # every prompt is recorded
    assert not [t for t in texts if gold in t]
    assert result.answer == "9" and events(result, "node")
