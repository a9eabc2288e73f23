"""FLOPs model, budgets and the meter, on the scripted backend."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale import Budget, BudgetExhausted, ConfigError, Ledger, Prompt, SamplingParams, reasoning_phase
from ttscale.backends.base import Capabilities, ModelInfo
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.compute import span_flops
from ttscale.errors import PrefixLost
from ttscale.types import Completion

WORDS = "one two three four five six seven eight nine ten eleven twelve"


def test_span_flops_matches_the_formula_term_by_term() -> None:
    m = ModelInfo("m", n_params=1000, n_layers=2, d_model=8)
    # positions 5, 6, 7: dense 2*N*3, attention 2*L*d*(5+6+7)
    assert span_flops(m, 5, 3) == 2 * 1000 * 3 + 2 * 2 * 8 * (5 + 6 + 7)
    assert span_flops(m, 0, 0) == 0
    no_attn = ModelInfo("m", n_params=1000)
    assert span_flops(no_attn, 100, 4) == 8000


def test_meter_counts_computed_cached_and_generated_tokens() -> None:
    gen = ScriptedGenerator(["a b c"], model=ScriptedModel(n_params=10))
    ledger = Ledger()
    out = ledger.meter(gen).generate([Prompt.user("q")], SamplingParams(n=3))
    u = ledger.usage().total
    p = out[0][0].prompt_tokens
    assert (u.calls, u.prompt_tokens, u.cached_prompt_tokens, u.completion_tokens) == (1, p, 2 * p, 9)
    assert u.flops == 2 * 10 * (p + 9)


def test_an_eval_meter_asks_for_the_sampled_tokens_logprobs_where_the_backend_gives_them() -> None:
    with_lp = ScriptedGenerator(["a b c"], logprob_fn=lambda tok, pos: -0.5)
    meter = Ledger().meter(with_lp, sampled_logprobs=True)
    (c,) = meter.generate([Prompt.user("q")], SamplingParams())[0]
    assert c.logprobs is not None and [r.logprob for r in c.logprobs] == [-0.5, -0.5, -0.5]
    assert [r.top for r in c.logprobs] == [(), (), ()]  # the sampled tokens only: logprobs=0
    meter.generate([Prompt.user("q")], SamplingParams(logprobs=5))
    assert [params.logprobs for _, params in with_lp.calls] == [0, 5]  # what a strategy asks for stands
    (plain,) = Ledger().meter(with_lp).generate([Prompt.user("q")], SamplingParams())[0]
    assert plain.logprobs is None  # only when asked to
    without = ScriptedGenerator(["a b c"])  # a backend with no logprobs is not asked for them
    (c,) = Ledger().meter(without, sampled_logprobs=True).generate([Prompt.user("q")], SamplingParams())[0]
    assert c.logprobs is None and without.calls[0][1].logprobs is None


def test_budget_caps_max_tokens_to_what_is_left() -> None:
    gen = ScriptedGenerator([WORDS])
    ledger = Ledger(Budget(tokens=20))
    p = gen.count_prompt_tokens([Prompt.user("q")])[0]
    out = ledger.meter(gen).generate([Prompt.user("q")], SamplingParams(n=2, max_tokens=100))
    assert all(len(c.token_ids) == (20 - p) // 2 for c in out[0])
    assert all(c.finish_reason == "length" for c in out[0])
    with pytest.raises(BudgetExhausted, match="budget exhausted"):
        ledger.meter(gen).generate([Prompt.user("q")], SamplingParams(n=2))


def test_flops_budget_is_enforced_with_attention() -> None:
    gen = ScriptedGenerator([WORDS], model=ScriptedModel(n_params=100, n_layers=4, d_model=16))
    ledger = Ledger(Budget(flops=20_000))
    ledger.meter(gen).generate([Prompt.user("q")], SamplingParams(n=1, max_tokens=50))
    assert 0 < ledger.usage().total.flops <= 20_000


def test_negative_budget_is_a_validation_error() -> None:
    with pytest.raises(ConfigError):
        Budget(tokens=-1)
    with pytest.raises(ConfigError):
        Budget(flops=float("nan"))


def test_reasoning_phase_books_reasoning_tokens() -> None:
    ledger = Ledger()
    meter = ledger.meter(ScriptedGenerator(["x y"]))
    meter.generate([Prompt.user("q")], SamplingParams())
    with reasoning_phase():
        meter.generate([Prompt.user("q")], SamplingParams())
    total = ledger.usage().total
    assert (total.completion_tokens, total.reasoning_tokens) == (4, 2)


def test_without_native_n_each_sample_pays_its_prompt() -> None:
    gen = ScriptedGenerator(["a"], native_n=False)
    ledger = Ledger()
    ledger.meter(gen).generate([Prompt.user("q")], SamplingParams(n=3))
    p = gen.count_prompt_tokens([Prompt.user("q")])[0]
    assert ledger.usage().total.prompt_tokens == 3 * p


def test_a_native_n_split_into_requests_pays_one_prompt_per_request() -> None:
    # llama.cpp serves n in requests of n_seq_max // 2 samples: without a prefix cache each prefills anew
    gen = ScriptedGenerator([WORDS], native_n_max=2)
    prompt = Prompt.user("a question of some length " * 4)
    p = gen.count_prompt_tokens([prompt])[0]
    plenty = Ledger()
    plenty.meter(gen).generate([prompt], SamplingParams(n=5, max_tokens=4))
    assert plenty.usage().total.prompt_tokens == 3 * p  # requests of 2, 2 and 1 samples
    # three prompts and 5 samples of 2 tokens: the meter plans for the three prefills, so the cap is 2
    tight = Ledger(Budget(tokens=3 * p + 5 * 2))
    capped = tight.meter(gen).max_tokens_affordable([prompt], SamplingParams(n=5, max_tokens=4))
    assert capped == 2
    assert Capabilities(native_n=True, native_n_max=16).prefills(33) == 3
    assert Capabilities(native_n=True).prefills(33) == 1 and Capabilities().prefills(33) == 33


@settings(max_examples=150, deadline=None)
@given(
    budget_tokens=st.one_of(st.none(), st.integers(0, 400)),
    budget_flops=st.one_of(st.none(), st.floats(0, 5e4)),
    calls=st.lists(
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 60), st.text("ab ", max_size=30)),
        min_size=1,
        max_size=8,
    ),
    native_n=st.booleans(),
    per_request=st.integers(0, 3),
    cache=st.booleans(),
)
def test_budget_is_never_overspent(budget_tokens, budget_flops, calls, native_n, per_request, cache) -> None:  # type: ignore[no-untyped-def]
    gen = ScriptedGenerator(
        [WORDS, "x", WORDS * 3],
        model=ScriptedModel(n_params=50, n_layers=2, d_model=4),
        native_n=native_n,
        native_n_max=per_request,
        prefix_cache=cache,
    )
    budget = Budget(budget_tokens, budget_flops)
    ledger = Ledger(budget)
    meter = ledger.meter(gen)
    for n_prompts, n, max_tokens, text in calls:
        prompts = [Prompt.user(text + f" {i}") for i in range(n_prompts)]
        with contextlib.suppress(BudgetExhausted):
            meter.generate(prompts, SamplingParams(n=n, max_tokens=max_tokens))
        total = ledger.usage().total
        if budget.tokens is not None:
            assert total.total_tokens <= budget.tokens
        if budget.flops is not None:
            assert total.flops <= budget.flops


def test_concurrent_calls_share_one_budget() -> None:
    gen = ScriptedGenerator([WORDS])
    ledger = Ledger(Budget(tokens=100))
    meter = ledger.meter(gen)

    def work() -> None:
        for _ in range(10):
            try:
                meter.generate([Prompt.user("q")], SamplingParams(n=2, max_tokens=12))
            except BudgetExhausted:
                return

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < ledger.usage().total.total_tokens <= 100


def test_a_prefix_cache_promise_lets_a_cached_call_through_a_tight_budget() -> None:
    long_q = Prompt.user(WORDS * 4)
    for cache in (True, False):
        gen = ScriptedGenerator(["a b c"], prefix_cache=cache)
        gen.generate([long_q], SamplingParams())  # outside the budget: warms the cache
        p = gen.count_prompt_tokens([long_q])[0]
        ledger = Ledger(Budget(tokens=p // 2))
        if cache:  # one token to recompute, the rest cached: the call fits and is booked at that cost
            ledger.meter(gen).generate([long_q], SamplingParams(n=2, max_tokens=3))
            assert ledger.usage().total.prompt_tokens == 1
            assert ledger.usage().total.total_tokens == 1 + 6
        else:
            with pytest.raises(BudgetExhausted):
                ledger.meter(gen).generate([long_q], SamplingParams(n=2, max_tokens=3))


class _LosesItsPrefixOnce(ScriptedGenerator):
    """A prefix-caching backend whose first held call loses its promised prefix (the engine gave the slot
    to other work); the sample that did run comes back with the error."""

    lost = 0

    def generate_held(self, prompts: Any, params: SamplingParams, hold: Any) -> list[list[Completion]]:
        out = super().generate_held(prompts, params, hold)
        if not self.lost:
            self.lost += 1
            raise PrefixLost("a promised prefix was evicted", tuple(out[0][:1]))
        return out


def test_a_call_that_loses_its_prefix_is_asked_once_more_and_both_are_booked() -> None:
    gen = _LosesItsPrefixOnce([WORDS], prefix_cache=True)
    ledger = Ledger()
    out = ledger.meter(gen).generate([Prompt.user("q")], SamplingParams(n=3, max_tokens=40))
    assert len(out[0]) == 3 and gen.lost == 1  # before: BudgetExhausted, and a sampler stopped drawing
    spent = ledger.usage().total
    assert spent.calls == 2 and spent.completion_tokens == 4 * len(WORDS.split())  # the lost call's one
