"""The evaluation runner on the scripted backend: grading, seeds, concurrency, failures and resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.errors import ConfigError, GenerationError
from ttscale.evals.datasets import Example
from ttscale.evals.metrics import summarize
from ttscale.evals.records import ProblemRecord, sample_records
from ttscale.evals.runner import (
    EvalConfig,
    Progress,
    check_slice,
    check_versions,
    problem_seed,
    resume_config,
    run_eval,
    versions,
)
from ttscale.evals.store import RunStore
from ttscale.models import CATALOG
from ttscale.types import Problem, Prompt, TraceEvent

N = 7


def examples(n: int = N, offset: int = 0) -> list[Example]:
    out = []
    for i in range(offset, offset + n):
        problem = Problem(
            f"Question {i}: what is {i} + 1?" + " really" * (i % 3), id=f"q{i}", answer_kind="number"
        )
        out.append(Example(problem, str(i + 1)))
    return out


def question_number(prompt: Prompt) -> int:
    found = re.search(r"Question (\d+)", prompt.messages[-1].content)
    assert found is not None
    return int(found.group(1))


def respond(prompt: Prompt, _draw: int) -> str:
    """Right for questions whose number is not a multiple of 3; the answer depends on the prompt only."""
    i = question_number(prompt)
    if "fail" in prompt.messages[-1].content:
        raise GenerationError("the engine choked on this one")
    return f"Adding one. The answer is \\boxed{{{i + 1 if i % 3 else i + 2}}}."


def config(**changes: object) -> EvalConfig:
    base: dict[str, object] = {"dataset": "jsonl:x", "model": "scripted", "strategy": "self_consistency"}
    base["params"] = {"n": "3", "temperature": "0.7"}
    return EvalConfig.from_dict(base | changes)


def run(
    tmp_path: Path, cfg: EvalConfig, exs: list[Example], name: str = "runs.sqlite"
) -> list[ProblemRecord]:
    gen = ScriptedGenerator(respond)
    with RunStore.open(tmp_path / name) as store:
        run_id = store.create_run(cfg.to_dict(), versions(gen), len(exs))
        run_eval(store, run_id, cfg, exs, gen)
        assert store.run(run_id).status == "complete"
        return store.problems(run_id)


def test_every_problem_is_graded_and_stored(tmp_path: Path) -> None:
    records = run(tmp_path, config(), examples())
    assert [r.index for r in records] == list(range(N))
    assert [r.correct for r in records] == [i % 3 != 0 for i in range(N)]
    assert all(len(r.samples) == 3 and r.usage.completion_tokens > 0 and r.error is None for r in records)
    first = records[1]
    assert (first.answer, first.gold) == ("2", "2")
    assert (first.samples[0].answer, first.samples[0].correct) == ("2", True)
    assert first.result["trace"][0]["kind"] == "sample"  # the full trace is kept
    assert summarize(records).accuracy == pytest.approx(4 / 7)


def test_problem_seeds_come_from_the_run_seed_and_index(tmp_path: Path) -> None:
    records = run(tmp_path, config(seed=5, offset=10), examples(3, offset=10))
    assert [r.seed for r in records] == [problem_seed(5, i) for i in (10, 11, 12)]
    assert len({problem_seed(5, i) + k for i in range(100) for k in range(64)}) == 6400  # no shared samples
    assert problem_seed(2**31 - 1, 10**6) < 2**31


def test_the_strategy_receives_the_problem_seed(tmp_path: Path) -> None:
    gen = ScriptedGenerator(respond)
    cfg = config(seed=3, concurrency=3)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(cfg.to_dict(), {}, N)
        run_eval(store, run_id, cfg, examples(), gen)
    seen = {question_number(prompts[0]): params.seed for prompts, params in gen.calls}
    assert seen == {i: problem_seed(3, i) for i in range(N)}


def test_concurrency_does_not_change_the_results(tmp_path: Path) -> None:
    one = run(tmp_path, config(concurrency=1), examples(), "one.sqlite")
    many = run(tmp_path, config(concurrency=4), examples(), "many.sqlite")

    def key(r: ProblemRecord) -> tuple[object, ...]:
        return (r.index, r.seed, r.answer, r.correct, r.usage, r.samples)

    assert [key(r) for r in one] == [key(r) for r in many]


def test_a_failed_problem_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    exs = examples(3)
    exs[1] = Example(Problem("Question 1: fail please", id="q1", answer_kind="number"), "2")
    records = run(tmp_path, config(), exs)
    assert [r.error is None for r in records] == [True, False, True]
    assert records[1].error == "GenerationError: the engine choked on this one"
    assert not records[1].correct and records[1].samples == () and records[1].answer is None
    assert summarize(records).n_errors == 1


def test_budget_exhaustion_is_a_recorded_failure(tmp_path: Path) -> None:
    records = run(tmp_path, config(budget_tokens=5), examples(2))
    assert all(r.error is not None and r.error.startswith("BudgetExhausted") for r in records)


def test_an_interrupted_run_resumes_without_loss_or_repeats(tmp_path: Path) -> None:
    cfg = config(seed=9)  # one at a time: nothing is in flight when the interrupt lands
    exs = examples()
    uninterrupted = run(tmp_path, cfg, exs, "whole.sqlite")
    gen = ScriptedGenerator(respond)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(cfg.to_dict(), {}, N)

        def stop_after_three(p: Progress) -> None:
            if p.done == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_eval(store, run_id, cfg, exs, gen, on_progress=stop_after_three)
        assert len(store.problem_ids(run_id)) == 3 and store.run(run_id).status == "incomplete"
        calls_before = len(gen.calls)
        run_eval(store, run_id, cfg, exs, gen)  # a repeat would violate the primary key and raise
        assert len(gen.calls) - calls_before == N - 3  # only the missing problems were solved
        resumed = store.problems(run_id)
    assert [r.index for r in resumed] == list(range(N))
    assert summarize(resumed).accuracy == summarize(uninterrupted).accuracy
    assert summarize(resumed).usage == summarize(uninterrupted).usage
    assert [(r.answer, r.seed, r.usage) for r in resumed] == [
        (r.answer, r.seed, r.usage) for r in uninterrupted
    ]


# -- config and resume checks ---------------------------------------------------------------------------


def test_config_round_trips_and_refuses_a_seed_param() -> None:
    cfg = config(limit=5, offset=2, seed=1, budget_flops=1e12)
    assert EvalConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="--seed"):
        config(params={"seed": "4"})
    with pytest.raises(ConfigError, match="concurrency"):
        config(concurrency=0)


def test_resume_accepts_repeated_options_and_refuses_conflicting_ones() -> None:
    recorded = config(limit=5, seed=1)
    same = {"limit": 5, "seed": None, "params": {"n": "03", "temperature": "0.70"}, "model": None}
    assert resume_config(recorded, same) == recorded  # "03" is 3: compared as the built strategy
    with pytest.raises(ConfigError) as info:
        resume_config(recorded, {"limit": 6, "strategy": "cot", "params": {}})
    message = str(info.value)
    assert "--limit 6 (the run has 5)" in message and "--strategy 'cot'" in message
    with pytest.raises(ConfigError, match="--params"):
        resume_config(recorded, {"params": {"n": "4"}})


def test_a_changed_dataset_is_refused_on_resume() -> None:
    exs = examples(3)
    check_slice({0: "q0", 1: "q1"}, exs, 0, 3)
    with pytest.raises(ConfigError, match="now has 3 problems, the run planned 4"):
        check_slice({}, exs, 0, 4)
    with pytest.raises(ConfigError, match="problem 1 of the run was 'other'"):
        check_slice({1: "other"}, exs, 0, 3)


def test_versions_name_the_model_checksum_and_machine() -> None:
    name = next(iter(CATALOG))
    found = versions(ScriptedGenerator(["x"], model=ScriptedModel(name=name)))
    assert found["model_sha256"] == CATALOG[name].sha256  # from the catalog when the backend has none
    assert found["ttscale"] and found["python"] and found["cpu_count"]
    assert versions(ScriptedGenerator(["x"]))["model_sha256"] is None
    with pytest.raises(ConfigError, match="model sha256"):
        check_versions({"model_sha256": "a"}, {"model_sha256": "b"})
    assert check_versions({"python": "3.11.1"}, {"python": "3.11.7"}) == ["python was 3.11.1, now 3.11.7"]
    assert check_versions({}, {"llama_cpp_system": "CPU : AVX2 = 1"}) == []  # recorded by an older version
    assert check_versions(
        {"llama_cpp_system": "CPU : AVX2 = 1"}, {"llama_cpp_system": "CPU : AVX512 = 1"}
    ) == ["llama_cpp_system was CPU : AVX2 = 1, now CPU : AVX512 = 1"]


def test_a_model_opened_from_a_file_is_recorded_by_that_file_s_checksum(tmp_path: Path) -> None:
    import hashlib

    from ttscale.compute import Ledger

    weights = tmp_path / "mine.gguf"
    weights.write_bytes(b"GGUF weights, version one")
    gen = ScriptedGenerator(["x"], model=ScriptedModel(name="mine"))
    gen.path = weights  # type: ignore[attr-defined]  # as LlamaCppGenerator keeps the file it opened
    wrapped = Ledger(None).meter(gen)  # found through wrappers too
    first = versions(wrapped)["model_sha256"]
    assert first == hashlib.sha256(b"GGUF weights, version one").hexdigest()
    weights.write_bytes(b"GGUF weights, version two")  # the user swapped the file between sessions
    with pytest.raises(ConfigError, match="model sha256"):
        check_versions({"model_sha256": first}, versions(wrapped))


def test_every_stored_sample_carries_its_logprob_summary_when_the_backend_gives_logprobs(
    tmp_path: Path,
) -> None:
    gen = ScriptedGenerator(respond, logprob_fn=lambda tok, pos: -0.25)
    exs = examples(2)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(config().to_dict(), versions(gen), len(exs))
        run_eval(store, run_id, config(), exs, gen)  # majority voting: the strategy asks for no logprobs
        samples = [s for p in store.problems(run_id) for s in p.samples]
    assert len(samples) == 6
    assert all(s.logprob_mean == -0.25 and s.data["logprob"]["tokens"] == s.tokens for s in samples)
    assert run(tmp_path, config(), exs, "plain.sqlite")[0].samples[0].logprob_mean is None  # none given


def test_tree_searches_are_spared_the_logprobs_of_a_summary_they_do_not_store() -> None:
    from ttscale.strategies import build_strategy
    from ttscale.strategies.base import logprob_summaries

    assert not any(logprob_summaries(build_strategy(n, {})) for n in ("beam_search", "dvts", "mcts"))
    assert all(logprob_summaries(build_strategy(n, {})) for n in ("cot", "self_consistency", "best_of_n"))


def test_a_logprob_summary_over_a_sample_s_parts() -> None:
    from ttscale.strategies.base import logprob_summary
    from ttscale.types import Completion, TokenLogprob

    def part(*lps: float) -> Completion:
        return Completion(
            "x", tuple(range(len(lps))), "eos", logprobs=tuple(TokenLogprob(0, lp) for lp in lps)
        )

    assert logprob_summary([part(-1.0, -3.0), part(-2.0)]) == {"mean": -2.0, "min": -3.0, "tokens": 3}
    assert logprob_summary([part()]) == {"tokens": 0}  # an end of sequence at once: nothing sampled
    assert logprob_summary([part(-1.0), Completion("y", (1,), "eos")]) is None  # a part without logprobs


def test_sample_records_keep_weights_scores_and_groups() -> None:
    example = examples(1, offset=4)[0]  # gold 5
    trace = (
        TraceEvent("sample", {"index": 0, "text": "a", "answer": "5", "tokens": 3, "score": 0.25}),
        TraceEvent("sample", {"index": 1, "text": "b", "answer": "4", "tokens": 2, "confidence": 7.0}),
        TraceEvent("sample", {"index": 2, "text": "c", "answer": "5.0", "tokens": 1}),
        TraceEvent("sample", {"index": 3, "text": "d", "answer": None}),
        TraceEvent("vote", {"weights": [0.9, 0.8, 0.7, 0.6]}),
    )
    s = list(sample_records(example, trace))
    assert [x.correct for x in s] == [True, False, True, False]
    assert [x.group for x in s] == [0, 1, 0, None]  # 5 and 5.0 are one answer
    assert [x.weight for x in s] == [0.9, 0.8, 0.7, 0.6]
    assert (s[0].score, s[1].confidence, s[0].tokens, s[3].tokens) == (0.25, 7.0, 3, None)
    assert s[0].text == "a" and "text" not in s[0].data and s[0].data["index"] == 0
