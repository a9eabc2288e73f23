"""Outcome scorers on the scripted backend: LLM judge P(Yes), self-certainty, DeepConf confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from ttscale import ConfigError, Ledger, Problem
from ttscale.backends.scripted import ScriptedGenerator, ScriptedModel
from ttscale.errors import CapabilityError
from ttscale.scorers import SCORERS, Sample, ScorerSpec
from ttscale.scorers.confidence import Confidence
from ttscale.scorers.llm_judge import COST_MARGIN, LLMJudge, verdict_token_ids
from ttscale.scorers.self_certainty import (
    SelfCertainty,
    kl_from_uniform,
    kl_from_uniform_topk,
)
from ttscale.strategies.deepconf_confidence import group_confidences, token_confidence
from ttscale.types import Completion, Prompt, SamplingParams, TokenLogprob


def lowest_group_confidence(conf: list[float], window: int) -> float:
    return min(group_confidences(conf, window), default=0.0)


PROBLEM = Problem("What is 2 + 3?")
PROBLEM_PROMPT = Prompt.user(PROBLEM.question)
log = math.log


def judge_gen(top: dict[str, Sequence[tuple[str, float]]], name: str = "judge") -> ScriptedGenerator:
    """A judge whose single verdict token is the key of ``top`` found in the prompt; top lists as given."""

    def respond(prompt: object, k: int) -> str:
        text = prompt.messages[-1].content  # type: ignore[attr-defined]
        return next(tok for tok in top if f"[{tok}]" in text)

    return ScriptedGenerator(respond, model=ScriptedModel(name=name), top_fn=lambda tok, i: top[tok])


# -- registry -------------------------------------------------------------------------------------------


def test_registry_names_and_specs() -> None:
    assert SCORERS.names() == ["confidence", "followup_judge", "llm_judge", "self_certainty"]
    specs = {name: SCORERS.get(name) for name in SCORERS.names()}
    assert all(isinstance(s, ScorerSpec) for s in specs.values())
    assert [n for n, s in specs.items() if s.needs_judge] == ["followup_judge", "llm_judge"]


# -- LLM judge ------------------------------------------------------------------------------------------


def test_judge_p_yes_is_normalised_against_yes_plus_no() -> None:
    gen = judge_gen(
        {
            "A": [("Yes", log(0.6)), ("No", log(0.2)), ("The", log(0.1))],  # 0.6 / 0.8
            "B": [(" yes", log(0.3)), ("Yes", log(0.2)), (" No", log(0.1)), ("no", log(0.15))],  # .5/.75
            "C": [("The", log(0.7)), ("**", log(0.2))],  # neither: no evidence
            "D": [("Yes", log(0.4)), ("Sure", log(0.5))],  # only Yes
        }
    )
    judge = LLMJudge(gen)
    scores = judge.score(PROBLEM, [Sample(f"solution [{t}]") for t in "ABCD"])
    assert scores == pytest.approx([0.75, 2 / 3, 0.5, 1.0])
    v = judge.verdicts(PROBLEM, [Sample("[B]")])[0]
    assert v.yes == pytest.approx(0.5) and v.no == pytest.approx(0.25)


def test_judge_is_one_batched_greedy_one_token_call_with_top20() -> None:
    gen = judge_gen({"A": [("Yes", log(0.9))], "B": [("No", log(0.9))]})
    scores = LLMJudge(gen).score(PROBLEM, [Sample("x [A]"), Sample("y [B]"), Sample("z [A]")])
    assert scores == [1.0, 0.0, 1.0]
    assert len(gen.calls) == 1
    prompts, params = gen.calls[0]
    assert len(prompts) == 3
    assert (params.n, params.max_tokens, params.temperature, params.logprobs) == (1, 1, 0.0, 20)
    user = prompts[1].messages[-1].content
    assert "What is 2 + 3?" in user and "y [B]" in user
    assert user.rstrip().endswith("Is this solution correct? Answer Yes or No.")


def test_judge_with_no_token_record_scores_half() -> None:
    judge = LLMJudge(judge_gen({"A": [("Yes", 0.0)]}))
    assert judge.read(Completion("", (), "eos", logprobs=())).score == 0.5
    assert judge.read(Completion("", (), "eos", logprobs=None)).score == 0.5


def test_judge_usage_is_metered_on_the_shared_ledger_under_its_name() -> None:
    ledger = Ledger()
    policy = ledger.meter(ScriptedGenerator(["I think \\boxed{5}."], model=ScriptedModel(name="policy")))
    policy.generate([PROBLEM_PROMPT], SamplingParams(n=2, max_tokens=8))
    judge = LLMJudge(ledger.meter(judge_gen({"A": [("Yes", log(0.5))]})))
    judge.score(PROBLEM, [Sample("s [A]"), Sample("t [A]")])
    by_model = ledger.usage().by_model
    assert set(by_model) == {"policy", "judge"}
    assert by_model["judge"].calls == 1 and by_model["judge"].completion_tokens == 2
    assert by_model["policy"].calls == 1


def test_judge_cost_estimate_covers_the_real_spend() -> None:
    ledger = Ledger()
    meter = ledger.meter(judge_gen({"A": [("Yes", 0.0)]}))
    judge = LLMJudge(meter)
    texts = ["Let's think step by step.\n" + " ".join(["w"] * n) + " [A]" for n in (3, 40)]
    samples = [Sample(t) for t in texts]
    est_tokens, est_flops = judge.cost(PROBLEM, [n + 1 for n in (3, 40)])
    judge.score(PROBLEM, samples)
    spent = ledger.usage().total
    assert spent.total_tokens <= est_tokens and spent.flops <= est_flops
    base = meter.count_prompt_tokens([judge.prompt(PROBLEM, "")])[0]
    assert est_tokens == sum(base + t + COST_MARGIN + 1 for t in (4, 41))


def test_judge_needs_logprobs_and_a_tokenizer() -> None:
    with pytest.raises(CapabilityError, match="llm_judge.*top-20 logprobs"):
        LLMJudge(ScriptedGenerator(["Yes"]))


class _SpaceTokenizer:
    """Splits a leading space into its own token, as some BPE vocabularies do."""

    def encode(self, text: str) -> list[int]:
        return ([0] if text.startswith(" ") else []) + [hash(text.strip())]

    def decode(self, token_ids: Sequence[int]) -> str:
        return ""


def test_a_first_token_shared_by_yes_and_no_is_dropped() -> None:
    yes, no = verdict_token_ids(_SpaceTokenizer())
    assert 0 not in yes and 0 not in no
    assert hash("Yes") in yes and hash("no") in no


# -- self-certainty ---------------------------------------------------------------------------------------


def _normalise(weights: Sequence[float]) -> list[float]:
    total = math.fsum(weights)
    return [log(w / total) for w in weights]


def test_topk_formula_on_a_hand_computed_case() -> None:
    # V = 4, top-2 = 0.5, 0.3; tail 0.2 over 2 tokens = 0.1 each
    expected = -log(4) - (log(0.5) + log(0.3) + 2 * log(0.1)) / 4
    assert kl_from_uniform_topk([log(0.5), log(0.3)], 4) == pytest.approx(expected, abs=1e-12)
    assert kl_from_uniform_topk([log(0.5), log(0.3)], 4) == pytest.approx(
        kl_from_uniform([log(0.5), log(0.3), log(0.1), log(0.1)]), abs=1e-12
    )


def test_topk_approximation_is_exact_for_a_flat_tail_and_a_lower_bound_otherwise() -> None:
    v, k = 1000, 20
    head = [1000.0 / (j + 1) for j in range(k)]
    flat = _normalise(head + [0.5] * (v - k))
    assert kl_from_uniform_topk(flat[:k], v) == pytest.approx(kl_from_uniform(flat), rel=1e-9)

    zipf = _normalise([1.0 / (j + 1) ** 1.2 for j in range(v)])  # a long, uneven tail
    exact, approx = kl_from_uniform(zipf), kl_from_uniform_topk(zipf[:k], v)
    assert 0 < approx < exact
    assert approx > 0.5 * exact  # the top-20 carries most of what moves
    assert kl_from_uniform_topk(zipf, v) == pytest.approx(exact, rel=1e-12)  # k = V: exact


def test_topk_approximation_orders_peaked_above_flat_and_stays_finite() -> None:
    v = 50_000
    peaked = kl_from_uniform_topk([log(0.97), log(0.01)], v)
    flat = kl_from_uniform_topk([log(0.05)] * 10, v)
    assert peaked > flat > 0
    assert math.isfinite(kl_from_uniform_topk([0.0, 0.0], v))  # the top holds "more" than all the mass
    assert kl_from_uniform_topk([], v) == 0.0


def _top_fn(tok: str, i: int) -> list[tuple[str, float]]:
    p = 0.95 if tok.strip().startswith("sure") else 0.3
    return [(tok, log(p)), ("alt", log((1 - p) / 2))]


def test_self_certainty_scores_mean_token_kl_of_samples() -> None:
    gen = ScriptedGenerator(["sure sure sure", "maybe perhaps"], top_fn=_top_fn)
    out = gen.generate([PROBLEM_PROMPT], SamplingParams(n=2, logprobs=20))[0]
    sc = SelfCertainty(vocab_size=gen.model.vocab_size)
    scores = sc.score(PROBLEM, [Sample(c.text, c) for c in out])
    per_token = kl_from_uniform_topk([log(0.95), log(0.025)], 50_000)
    assert scores[0] == pytest.approx(per_token)
    assert scores[0] > scores[1] > 0


def test_logprob_scorers_refuse_samples_without_logprobs() -> None:
    for scorer in (SelfCertainty(vocab_size=10), Confidence()):
        with pytest.raises(CapabilityError, match="generated without them"):
            scorer.score(PROBLEM, [Sample("text only")])


@pytest.mark.parametrize("name", ["self_certainty", "confidence"])
def test_logprob_scorers_need_a_policy_with_logprobs(name: str) -> None:
    with pytest.raises(CapabilityError, match=f"{name} scorer needs top-20 logprobs"):
        SCORERS.get(name).build(ScriptedGenerator(["x"]), None)
    scorer = SCORERS.get(name).build(ScriptedGenerator(["x"], top_fn=_top_fn), None)
    assert scorer.policy_logprobs == 20 and scorer.cost(PROBLEM, [100]) == (0, 0.0)


# -- DeepConf confidence ----------------------------------------------------------------------------------


def test_token_confidence_is_minus_mean_top_k_logprob() -> None:
    rec = TokenLogprob(1, -0.1, ((1, -0.1), (2, -3.0), (3, -5.0)))
    assert token_confidence(rec, 20) == pytest.approx(8.1 / 3)
    assert token_confidence(rec, 2) == pytest.approx(3.1 / 2)
    assert token_confidence(TokenLogprob(1, -0.1), 20) == 0.0


def test_lowest_group_finds_the_confused_stretch_a_mean_dilutes() -> None:
    conf = [10.0] * 20 + [1.0] * 4 + [10.0] * 20
    assert lowest_group_confidence(conf, 4) == pytest.approx(1.0)
    assert lowest_group_confidence(conf, 8) == pytest.approx(5.5)
    assert lowest_group_confidence(conf, 100) == pytest.approx(sum(conf) / len(conf))  # one group
    assert lowest_group_confidence([], 4) == 0.0


def test_confidence_scorer_aggregates_by_lowest_group_or_mean() -> None:
    gen = ScriptedGenerator(["sure sure maybe sure"], top_fn=_top_fn)
    c = gen.generate([PROBLEM_PROMPT], SamplingParams(logprobs=20))[0][0]
    conf = (
        [-(log(0.95) + log(0.025)) / 2] * 2 + [-(log(0.3) + log(0.35)) / 2] + [-(log(0.95) + log(0.025)) / 2]
    )
    low = Confidence(window=2).score(PROBLEM, [Sample(c.text, c)])[0]
    mean = Confidence(aggregate="mean").score(PROBLEM, [Sample(c.text, c)])[0]
    assert low == pytest.approx((conf[1] + conf[2]) / 2)
    assert mean == pytest.approx(sum(conf) / 4)
    assert low < mean


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"window": 0}, "window"), ({"aggregate": "max"}, "aggregate"), ({"top_logprobs": 0}, "top_logprobs")],
)
def test_confidence_validates(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Confidence(**kwargs)  # type: ignore[arg-type]


def test_self_certainty_validates() -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        SelfCertainty(vocab_size=1)
