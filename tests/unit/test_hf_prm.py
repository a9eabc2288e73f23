"""Hugging Face PRMs on the CPU, with tiny randomly initialised models of the real architectures built here:
a Qwen2 2-label token classifier (the Qwen2.5-Math-PRM layout) and a Qwen2 causal LM read at Math-Shepherd's
step tag. Their scores mean nothing; what is tested is where they are read, how, and what it costs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from search_helpers import named_policy, search_gen  # noqa: E402

from ttscale import Budget, Ledger, Problem  # noqa: E402
from ttscale.compute import span_flops  # noqa: E402
from ttscale.errors import BudgetExhausted, ConfigError, GenerationError  # noqa: E402
from ttscale.scorers.hf_prm import (  # noqa: E402
    QWEN_STEP_TOKEN,
    SHEPHERD_TAG,
    HFProcessRewardModel,
    MeteredHFPRM,
    weights_touched,
)
from ttscale.scorers.process import build_process_scorer, check_prm_name  # noqa: E402
from ttscale.strategies.beam_search import BeamSearch  # noqa: E402

QUESTION = "Tom has 3 boxes of 4 apples. How many apples?"
STEPS = ["There are 3 boxes.", "Each box has 4 apples, so 3 * 4 = 12.", "The answer is \\boxed{12}."]
CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "<|im_start|>", "<|im_end|>", QWEN_STEP_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([QUESTION, *STEPS, "Step 1: Step 2: the answer is"] * 3, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.add_tokens([SHEPHERD_TAG])
    fast.chat_template = CHAT
    return fast


def qwen2_config(vocab: int, **extra: Any) -> Any:
    return transformers.Qwen2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **extra,
    )


@pytest.fixture(scope="module")
def two_class_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen2.5-Math-PRM-shaped model: Qwen2 with a 2-label token-classification head."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("qwen_prm")
    tok = tiny_tokenizer()
    model = transformers.Qwen2ForTokenClassification(qwen2_config(len(tok), num_labels=2))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def shepherd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Math-Shepherd-shaped model: a causal LM with the step tag in its vocabulary (tied head)."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("shepherd")
    tok = tiny_tokenizer()
    model = transformers.Qwen2ForCausalLM(qwen2_config(len(tok), tie_word_embeddings=True))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("fixture", ["two_class_dir", "shepherd_dir"])
def test_one_score_per_step_read_at_the_markers(fixture: str, request: pytest.FixtureRequest) -> None:
    prm = HFProcessRewardModel(str(request.getfixturevalue(fixture)), device="cpu")
    assert prm.family == ("two_class" if fixture == "two_class_dir" else "token_pair")
    enc = prm.encode(QUESTION, STEPS)
    assert len(enc.marks) == 3 and all(enc.ids[i] == prm.marker for i in enc.marks)
    scores = prm.score_candidates(QUESTION, [STEPS])[0]
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)
    # causal model: a step's score does not depend on the steps after it
    shorter = prm.score_candidates(QUESTION, [STEPS[:2]])[0]
    assert shorter == pytest.approx(scores[:2], abs=1e-5)
    # batching with padding changes nothing
    together = prm.score_candidates(QUESTION, [STEPS[:1], STEPS, STEPS[:2]])
    assert together[1] == pytest.approx(scores, abs=1e-5) and together[2] == pytest.approx(shorter, abs=1e-5)
    # a step cannot fake a marker
    assert len(prm.encode(QUESTION, [f"a {QWEN_STEP_TOKEN} {SHEPHERD_TAG} b", "c"]).marks) == 2


def test_two_class_score_is_the_probability_of_label_one(two_class_dir: Path) -> None:
    prm = HFProcessRewardModel(str(two_class_dir), device="cpu")
    with torch.no_grad():
        prm.model.score.weight.zero_()
        prm.model.score.bias.copy_(torch.tensor([0.0, 2.0]))
    expected = 1 / (1 + math.exp(-2.0))  # softmax([0, 2])[1]
    assert prm.score_candidates(QUESTION, [STEPS])[0] == pytest.approx([expected] * 3, abs=1e-6)


def test_token_pair_score_is_good_against_bad(shepherd_dir: Path) -> None:
    prm = HFProcessRewardModel(str(shepherd_dir), device="cpu")
    head = prm.model.get_output_embeddings().weight  # tied to the input embedding
    with torch.no_grad():
        head[prm.good].copy_(head[prm.bad])  # equal logits for "+" and "-": every score is exactly 1/2
    assert prm.score_candidates(QUESTION, [STEPS])[0] == pytest.approx([0.5] * 3, abs=1e-6)


def test_forward_passes_are_metered_under_the_prm_and_refused_over_budget(shepherd_dir: Path) -> None:
    prm = HFProcessRewardModel(str(shepherd_dir), device="cpu")
    embed = prm.model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in prm.model.parameters())  # tied head appears once here
    assert weights_touched(prm.model) == total - embed + embed  # embedding out, the tied head back in
    ledger = Ledger()
    scorer = MeteredHFPRM(prm, ledger)
    problem = Problem(QUESTION)
    scorer.score_steps(problem, [STEPS, STEPS[:2]])
    scorer.score_steps(problem, [STEPS])  # already scored in this solve: no second pass
    lengths = [len(prm.encode(QUESTION, STEPS).ids), len(prm.encode(QUESTION, STEPS[:2]).ids)]
    used = ledger.usage().by_model[str(shepherd_dir)]
    assert used.calls == 1 and used.prompt_tokens == sum(lengths) and used.completion_tokens == 0
    assert used.flops == pytest.approx(sum(span_flops(prm.info, 0, n) for n in lengths))
    tight = MeteredHFPRM(prm, Ledger(Budget(tokens=lengths[0] - 1)))
    with pytest.raises(BudgetExhausted, match=str(shepherd_dir)):
        tight.score_steps(problem, [STEPS])
    # more candidates than one batch holds, and a budget for the first batch only: nothing is spent
    prm.batch_size = 1
    short = Ledger(Budget(tokens=sum(lengths) - 1))
    with pytest.raises(BudgetExhausted, match="in 2 candidates"):
        MeteredHFPRM(prm, short).score_steps(problem, [STEPS, STEPS[:2]])
    assert short.usage().total.total_tokens == 0  # before: the first batch was paid for and thrown away


def test_non_finite_scores_name_the_model_and_step(two_class_dir: Path) -> None:
    prm = HFProcessRewardModel(str(two_class_dir), device="cpu")
    with torch.no_grad():
        prm.model.score.bias.fill_(math.nan)
    with pytest.raises(GenerationError, match=r"gave nan for step 1"):
        prm.score_candidates(QUESTION, [STEPS])


def test_beam_search_with_a_hf_prm(two_class_dir: Path) -> None:
    name = f"hf:{two_class_dir}"
    strategy = BeamSearch(n=4, beam_width=2, iterations=3, prm=name, seed=0)
    ledger = Ledger()
    result = strategy.solve(Problem("What is 6 times 7?"), ledger.meter(search_gen(named_policy(depth=3))))
    nodes = [e.data for e in result.trace if e.kind == "node"][1:]
    assert nodes and all(len(n["scores"]) == n["depth"] for n in nodes if n["scores"])
    usage = ledger.usage().by_model
    assert str(two_class_dir) in usage and usage[str(two_class_dir)].flops > 0
    assert usage["scripted"].completion_tokens > 0  # the policy, metered on the same ledger


def test_bad_names_and_unsupported_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prm=hf: needs a model"):
        check_prm_name("hf:")
    with pytest.raises(ConfigError, match="cannot load the process reward model"):
        HFProcessRewardModel(str(tmp_path / "nowhere"), device="cpu")
    bert = transformers.BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1)
    bert.architectures = ["BertModel"]
    from ttscale.scorers.hf_prm import detect_family

    with pytest.raises(ConfigError, match="cannot tell how"):
        detect_family(bert, "some/bert")
    with pytest.raises(ConfigError, match="Skywork PRMs"):
        detect_family(bert, "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B")
    policy = Ledger().meter(search_gen(named_policy(depth=2)))
    with pytest.raises(ConfigError, match="cannot load"):
        build_process_scorer(f"hf:{tmp_path / 'nowhere'}", policy, None)
