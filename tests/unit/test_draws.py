"""Recording and replaying draws (``--draws``), on the scripted backend."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from ttscale import Prompt, SamplingParams, cli
from ttscale.backends.base import prompt_seed
from ttscale.backends.draws import DrawFile, DrawReplay, draw_key, replayable
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.cli_eval import draws_for, same_draws
from ttscale.compute import Ledger
from ttscale.errors import StoreError
from ttscale.evals.store import RunStore
from ttscale.types import Completion, ModelUsage

PROMPT = Prompt.user("What is 6 * 7?")
SEEDED = SamplingParams(n=3, max_tokens=20, temperature=0.7, seed=11)


def scripted(*responses: str) -> ScriptedGenerator:
    """A generator whose k-th draw answers ``responses[k % len]``: a second real draw differs from a replay."""
    return ScriptedGenerator(list(responses), logprob_fn=lambda tok, pos: -0.1 * (pos + 1), prefix_cache=True)


def draw(
    gen: DrawReplay, params: SamplingParams, prompt: Prompt = PROMPT
) -> tuple[list[Completion], ModelUsage]:
    ledger = Ledger()
    out = ledger.meter(gen).generate([prompt], params)
    return out[0], ledger.usage().total


def test_a_recorded_call_is_replayed_and_booked_as_it_was_drawn(tmp_path: Path) -> None:
    path = tmp_path / "draws.sqlite"
    first = DrawReplay(scripted("so 42", "then 41", "maybe 40"), DrawFile(path))
    drawn, spent = draw(first, replace(SEEDED, logprobs=2))
    first.close()
    assert [c.text for c in drawn] == ["so 42", "then 41", "maybe 40"]

    # a later run, on a generator that would answer otherwise, asks the same without logprobs
    other = scripted("no 7")
    again = DrawReplay(other, DrawFile(path))
    replayed, booked = draw(again, SEEDED)
    assert [c.text for c in replayed] == [c.text for c in drawn]
    assert [c.token_ids for c in replayed] == [c.token_ids for c in drawn]
    assert all(c.logprobs is None for c in replayed)  # cut down to what was asked: none
    assert other.calls == []  # nothing decoded
    assert booked == spent  # same prompt, cached and generated tokens, same FLOPs
    assert (again.stats.replayed, again.stats.drawn) == (1, 0)


def test_a_recording_with_fewer_logprobs_is_drawn_again_and_upgraded(tmp_path: Path) -> None:
    gen = DrawReplay(scripted("a 1", "b 2", "c 3", "d 4", "e 5", "f 6"), DrawFile(tmp_path / "d.sqlite"))
    plain, _ = draw(gen, SEEDED)
    with_top, _ = draw(
        gen, replace(SEEDED, logprobs=2)
    )  # the recording has no logprobs: drawn again (next responses)
    assert [c.text for c in with_top] != [c.text for c in plain]
    assert all(c.logprobs is not None and all(len(r.top) == 2 for r in c.logprobs) for c in with_top)
    cut, _ = draw(
        gen, replace(SEEDED, logprobs=1)
    )  # the upgraded recording serves a smaller top-k, cut to it
    assert [c.text for c in cut] == [c.text for c in with_top]
    assert all(c.logprobs is not None and all(len(r.top) == 1 for r in c.logprobs) for c in cut)
    again, _ = draw(gen, SEEDED)  # and a call without logprobs: the upgrade replaced the first recording
    assert [c.text for c in again] == [c.text for c in with_top]
    assert (gen.stats.replayed, gen.stats.drawn) == (2, 2)


def test_an_evaluation_s_optional_logprobs_are_served_by_a_recording_without_them(tmp_path: Path) -> None:
    # a draw file recorded by a run that asked for no logprobs; an evaluation now asks every call for the
    # sampled tokens' logprobs, for its summaries, but only if they are at hand
    gen = DrawReplay(scripted("a 1", "b 2", "c 3", "d 4", "e 5", "f 6"), DrawFile(tmp_path / "d.sqlite"))
    plain, _ = draw(gen, SEEDED)
    ledger = Ledger()
    again = ledger.meter(gen, sampled_logprobs=True).generate([PROMPT], SEEDED)[0]
    assert [c.text for c in again] == [c.text for c in plain]  # the very same samples, not redrawn
    assert all(c.logprobs is None for c in again)  # and no summary for them
    assert (gen.stats.replayed, gen.stats.drawn) == (1, 1)
    needed, _ = draw(gen, replace(SEEDED, logprobs=0))  # a strategy that needs them still gets them
    assert all(c.logprobs is not None for c in needed) and (gen.stats.replayed, gen.stats.drawn) == (1, 2)


def test_a_model_opened_from_a_file_is_keyed_by_the_file_s_checksum(tmp_path: Path) -> None:
    weights = tmp_path / "mine.gguf"

    def opened(content: bytes, *responses: str) -> DrawReplay:
        weights.write_bytes(content)
        gen = scripted(*responses)
        gen.path = weights  # type: ignore[attr-defined]  # as LlamaCppGenerator keeps the file it opened
        return DrawReplay(gen, DrawFile(tmp_path / "d.sqlite"))

    first = opened(b"weights one", "so 42", "then 41", "maybe 40")
    drawn, _ = draw(first, SEEDED)
    first.close()
    same = opened(b"weights one", "no 7")
    assert [c.text for c in draw(same, SEEDED)[0]] == [c.text for c in drawn]
    same.close()
    swapped = opened(b"weights two", "no 7")  # the same name, another file: not served its samples
    assert [c.text for c in draw(swapped, SEEDED)[0]] == ["no 7"] * 3
    swapped.close()


def test_only_calls_that_decide_their_tokens_are_replayed(tmp_path: Path) -> None:
    gen = DrawReplay(scripted(*(f"r {i}" for i in range(40))), DrawFile(tmp_path / "d.sqlite"))
    unseeded = SamplingParams(n=2, max_tokens=20, temperature=0.7)
    criterion = replace(SEEDED, stopping_criteria=(lambda generated, logprobs: False,))
    assert not replayable(unseeded) and not replayable(criterion)
    for params in (unseeded, criterion):
        a, _ = draw(gen, params)
        b, _ = draw(gen, params)
        assert [c.text for c in a] != [c.text for c in b]  # each call is a fresh sample

    base, _ = draw(gen, SEEDED)
    for changed in (replace(SEEDED, seed=12), replace(SEEDED, max_tokens=19), replace(SEEDED, n=2)):
        out, _ = draw(gen, changed)
        assert [c.text for c in out] != [c.text for c in base][: changed.n]
    out, _ = draw(gen, SEEDED, Prompt.user("What is 6 * 8?"))
    assert [c.text for c in out] != [c.text for c in base]

    greedy = SamplingParams(n=1, max_tokens=20, temperature=0.0, seed=1)
    first, _ = draw(gen, greedy)
    second, _ = draw(gen, replace(greedy, seed=2))  # greedy: the seed decides nothing
    assert [c.text for c in second] == [c.text for c in first]


def test_the_key_names_the_model_and_every_message(tmp_path: Path) -> None:
    gen = scripted("x")
    key = draw_key(gen.model, PROMPT, SEEDED)
    system = Prompt.user("What is 6 * 7?", system="Be brief.")
    prefixed = PROMPT.continued("Let me think.")
    assert len({key, draw_key(gen.model, system, SEEDED), draw_key(gen.model, prefixed, SEEDED)}) == 3
    other = ScriptedGenerator(["x"], model=ScriptedModel(name="other"))
    assert draw_key(other.model, PROMPT, SEEDED) != key


def test_bad_draw_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some words\n" * 20)
    with pytest.raises(StoreError, match=r"cannot use draw file .*notes\.txt.*--draws FILE"):
        DrawFile(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE runs (id TEXT)")
    with pytest.raises(StoreError, match="is not a ttscale draw file"):
        DrawFile(other)
    future = tmp_path / "future.sqlite"
    DrawFile(future).close()
    with sqlite3.connect(future) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(StoreError, match="format version '99'.*reads version 1"):
        DrawFile(future)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot use draw file"):
        DrawFile(blocker / "sub" / "draws.sqlite")  # its folder would sit under a file


# -- through the CLI --------------------------------------------------------------------------------------

runner = CliRunner()


def test_eval_with_draws_scores_the_recorded_samples_again(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Add {i} and 1.", "answer": "42"}) + "\n"
                            for i in range(3)))  # fmt: skip
    right, wrong = tmp_path / "right.json", tmp_path / "wrong.json"
    right.write_text(json.dumps(["So the answer is \\boxed{42}."]))
    wrong.write_text(json.dumps(["So the answer is \\boxed{7}."]))
    store, draws = tmp_path / "runs.sqlite", tmp_path / "draws.sqlite"

    def run(script: Path, *extra: str) -> dict[str, object]:
        args = ["eval", "--backend", "scripted", "--script", str(script), "--store", str(store), "--dataset",
                f"jsonl:{data}", "-s", "self_consistency", "-p", "n=3", "--json", *extra]  # fmt: skip
        out = runner.invoke(cli.app, args)
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    recorded = run(right, "--draws", str(draws))
    assert recorded["accuracy"] == 1.0
    # the same samples again, from a script that would answer 7: every draw comes from the file
    replayed = run(wrong, "--draws", str(draws), "--seed", "0")
    assert replayed["accuracy"] == 1.0
    assert replayed["usage"] == recorded["usage"]  # booked as drawn
    shown = runner.invoke(cli.app, ["runs", "show", str(replayed["run_id"]), "--store", str(store), "--json"])
    assert json.loads(shown.stdout)["versions"]["draws"] == str(draws.resolve())
    undrawn = run(wrong, "--seed", "1")
    assert undrawn["accuracy"] == 0.0  # another seed: other draws, computed

    def resume(run_id: object, *extra: str) -> Result:
        args = ["eval", "--resume", str(run_id), "--store", str(store), "--script", str(wrong), *extra]
        return runner.invoke(cli.app, args)

    # a run goes on with the draw file it was made with, and only with it
    assert resume(recorded["run_id"]).exit_code == 0
    assert resume(recorded["run_id"], "--draws", str(draws)).exit_code == 0
    other = resume(recorded["run_id"], "--draws", str(tmp_path / "other.sqlite"))
    assert other.exit_code == 2 and "was made with draw file" in other.output
    added = resume(undrawn["run_id"], "--draws", str(draws))
    assert added.exit_code == 2 and "was made without --draws" in added.output

    refused = runner.invoke(cli.app, ["eval", "--dataset", "gsm8k", "-s", "cot", "--store", str(store),
                                      "--draws", str(draws), "--executor", "ray"])  # fmt: skip
    assert refused.exit_code != 0
    assert "--draws needs --executor local" in refused.output


def test_a_replayed_prompt_is_booked_at_no_more_than_the_engine_now_promises(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    first = DrawReplay(scripted("so 42", "then 41", "maybe 40"), DrawFile(path))
    drawn, cold = draw(first, SEEDED)  # a cold cache: the whole prompt computed
    assert cold.prompt_tokens > 1
    warm = scripted("no 7")
    warm.generate([PROMPT], SamplingParams(max_tokens=1))  # this engine already holds the prompt
    again = DrawReplay(warm, DrawFile(path))
    out, spent = draw(again, SEEDED)
    assert [c.text for c in out] == [c.text for c in drawn] and len(warm.calls) == 1  # replayed
    assert spent.prompt_tokens == 1  # the one token the engine promised, not the recording's cold prefill
    assert spent.cached_prompt_tokens == cold.cached_prompt_tokens + cold.prompt_tokens - 1
    assert (spent.completion_tokens, spent.flops < cold.flops) == (cold.completion_tokens, True)


def test_a_draw_that_cannot_be_recorded_is_still_returned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    draws = DrawFile(tmp_path / "d.sqlite")
    gen = DrawReplay(scripted("so 42"), draws)
    with sqlite3.connect(draws.path) as other:  # every write fails from now on, as on a full disk
        other.execute("CREATE TRIGGER full BEFORE INSERT ON draws BEGIN SELECT RAISE(FAIL, 'disk full'); END")
    out, _ = draw(gen, SEEDED)
    assert [c.text for c in out] == ["so 42"] * 3
    assert "could not record a draw" in caplog.text and "disk full" in caplog.text
    with sqlite3.connect(draws.path) as other:  # and reads too: a miss, drawn afresh
        other.execute("DROP TABLE draws")
    assert [c.text for c in draw(gen, SEEDED)[0]] == ["so 42"] * 3
    assert "could not read draws" in caplog.text


def test_each_prompt_of_a_call_is_keyed_with_its_own_seed() -> None:
    model = ScriptedGenerator(["x"]).model
    prompt = Prompt.user("q")
    params = SamplingParams(n=2, temperature=0.7, seed=40)
    # prompt 1 of a seeded call draws with seeds 42 and 43, as prompt 0 of a call seeded 42 does
    assert draw_key(model, prompt, params, 1) == draw_key(model, prompt, replace(params, seed=42), 0)
    assert draw_key(model, prompt, params, 1) != draw_key(model, prompt, params, 0)
    assert prompt_seed(params, 3) == 46 and prompt_seed(replace(params, seed=None), 3) is None


def test_a_resumed_run_goes_on_with_its_own_draw_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        made = store.run(store.create_run({"strategy": "cot"}, {"draws": str(tmp_path / "d.sqlite")}, 3))
        typed = store.run(
            store.create_run({"strategy": "cot"}, {"draws": "d.sqlite"}, 3)
        )  # recorded as typed
        plain = store.run(store.create_run({"strategy": "cot"}, {}, 3))
    assert draws_for(made, None) == tmp_path / "d.sqlite"  # left out on resume: the run's own file
    assert draws_for(None, Path("new.sqlite")) == Path("new.sqlite") and draws_for(plain, None) is None
    monkeypatch.chdir(tmp_path)
    assert same_draws("d.sqlite", tmp_path / "d.sqlite") and draws_for(typed, Path("./d.sqlite")) is not None
    assert not same_draws("d.sqlite", tmp_path / "e.sqlite") and not same_draws(None, Path("d.sqlite"))
