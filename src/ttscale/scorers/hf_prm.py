"""Hugging Face process reward models (``prm=hf:<model id or folder>``): trained PRMs, run with transformers.

Optional extra ``hf`` (``pip install 'ttscale[hf]'``: transformers and torch); meant for a GPU, and it
runs on the CPU too (float32). Each supported family has its own input layout, step separator and way of
turning logits into a step score; the family is read from the model's ``config.json``:

``two_class`` — Qwen2.5-Math-PRM-7B / -72B (Zhang et al. 2025, arXiv 2501.07301). The chat template
with the system prompt "Please reason step by step, and put your final answer within \\boxed{}.", the
problem as the user turn, and the steps as the assistant turn, each followed by the special token
``<extra_0>``. The model's head gives 2 logits per token; the score of step k is ``softmax(logits)[1]``
at the k-th ``<extra_0>``. Recognised by ``architectures`` naming ``ProcessRewardModel`` or a
``...ForTokenClassification`` with 2 labels (loaded through its ``auto_map`` code with
``trust_remote_code``, or transformers' own token-classification class).

``token_pair`` — Math-Shepherd (Wang et al. 2024, arXiv 2312.08935; peiyi9979/math-shepherd-mistral-7b-prm).
A causal LM reads ``"{question} Step 1: s_1 ки\\nStep 2: s_2 ки\\n..."``; at each step tag ``ки`` the
score is ``softmax(logit["+"], logit["-"])[0]``, the probability of the "good" token against the "bad"
one. Recognised by a ``...ForCausalLM`` architecture whose vocabulary has the tag token.

Not supported: Skywork-o1-Open-PRM, whose value head lives in SkyworkAI's own model class (its checkpoint
layout is not something transformers loads by itself); naming it gets a clear error.

Scores come from one forward pass per candidate (batched, right-padded): in a causal model the score at
step k's marker depends only on the tokens up to it, so one pass scores every step of a candidate. A
candidate already scored in this solve is not read again. The pass is metered on the solve's ledger
(:meth:`~ttscale.compute.Ledger.forward_pass`): every token as a computed prompt token of the PRM, FLOPs
``2·N`` per token plus attention, with N counted from the loaded weights (all but the input embedding).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..backends.base import ModelInfo
from ..errors import BudgetExhausted, CapabilityError, ConfigError, GenerationError
from ..types import Problem

if TYPE_CHECKING:
    from ..compute import Ledger

Family = Literal["two_class", "token_pair"]

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_STEP_TOKEN = "<extra_0>"
SHEPHERD_TAG, SHEPHERD_GOOD, SHEPHERD_BAD = "ки", "+", "-"


def _transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise CapabilityError("prm=hf:... needs transformers and torch: pip install 'ttscale[hf]'") from exc
    return torch, transformers


def detect_family(config: Any, name: str) -> Family:
    """The scoring family of a PRM from its transformers config (see the module docstring)."""
    archs = [str(a) for a in (getattr(config, "architectures", None) or [])]
    labels = int(getattr(config, "num_labels", 0) or 0)
    if any("ProcessRewardModel" in a for a in archs) or (
        any(a.endswith("ForTokenClassification") for a in archs) and labels == 2
    ):
        return "two_class"
    if "skywork" in name.lower() and "prm" in name.lower():
        raise ConfigError(
            f"{name}: Skywork PRMs keep their value head in SkyworkAI's own model class, which ttscale "
            "does not load; use a Qwen2.5-Math-PRM or Math-Shepherd model, or prm=llm_judge_prm"
        )
    if any(a.endswith("ForCausalLM") for a in archs):
        return "token_pair"
    raise ConfigError(
        f"cannot tell how {name} scores steps: its config names architectures {archs or 'none'}; "
        "supported are Qwen2.5-Math-PRM style (2-label token classification at <extra_0>) and "
        "Math-Shepherd style (a causal LM judging '+'/'-' at the step tag 'ки')"
    )


def weights_touched(model: Any) -> int:
    """Parameters a token touches: every weight but the input embedding, the output head counted even
    when it is tied to the embedding (the convention of :class:`~ttscale.backends.base.ModelInfo`)."""
    embed = model.get_input_embeddings()
    skip = {id(p) for p in embed.parameters()} if embed is not None else set()
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or id(p) in skip:
            continue
        seen.add(id(p))
        total += p.numel()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and any(id(p) in skip for p in head.parameters()):
        total += sum(p.numel() for p in head.parameters())  # tied: still a full matmul per token
    return total


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    marks: list[int]
    """Positions whose output scores step 1, 2, ... in order."""


class HFProcessRewardModel:
    """A transformers PRM as a :class:`~ttscale.scorers.process.ProcessScorer` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        device: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = True,
    ) -> None:
        torch, tf = _transformers()
        self.name = name
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            config = tf.AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
            self.tokenizer = tf.AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the process reward model {name!r}: {exc}") from exc
        self.family = detect_family(config, name)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        if self.family == "two_class":
            remote = bool(getattr(config, "auto_map", None))
            cls = tf.AutoModel if remote else tf.AutoModelForTokenClassification
        else:
            cls = tf.AutoModelForCausalLM
        self.model = cls.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code)
        self.model.to(self.device).eval()
        self.info = ModelInfo(
            name=name,
            n_params=weights_touched(self.model),
            n_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
            d_model=int(getattr(config, "hidden_size", 0) or 0),
            n_ctx=int(getattr(config, "max_position_embeddings", 0) or 0),
            vocab_size=int(getattr(config, "vocab_size", 0) or 0),
        )
        self._setup_tokens()
        self._lock = threading.Lock()

    def _token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise ConfigError(f"{self.name}: its tokenizer has no token for {text!r}")
        return int(ids[-1])

    def _setup_tokens(self) -> None:
        if self.family == "two_class":
            self.marker = self._token(QWEN_STEP_TOKEN)
            if len(self.tokenizer.encode(QWEN_STEP_TOKEN, add_special_tokens=False)) != 1:
                raise ConfigError(f"{self.name}: {QWEN_STEP_TOKEN} is not one token in its vocabulary")
        else:
            self.marker = self._token(SHEPHERD_TAG)
            self.good, self.bad = self._token(SHEPHERD_GOOD), self._token(SHEPHERD_BAD)

    @property
    def model_name(self) -> str:
        return self.name

    # -- inputs ----------------------------------------------------------------------------------------
    def encode(self, question: str, steps: Sequence[str]) -> _Encoded:
        """The token ids of one candidate in the family's layout, and where each step is scored."""
        marker_text = QWEN_STEP_TOKEN if self.family == "two_class" else SHEPHERD_TAG
        clean = [s.replace(marker_text, " ").strip() for s in steps]  # a step must not fake a marker
        if self.family == "two_class":
            messages = [
                {"role": "system", "content": QWEN_PRM_SYSTEM},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "".join(s + QWEN_STEP_TOKEN for s in clean)},
            ]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        else:
            body = "\n".join(f"Step {k}: {s} {SHEPHERD_TAG}" for k, s in enumerate(clean, 1))
            ids = list(self.tokenizer.encode(f"{question} {body}"))
        marks = [i for i, t in enumerate(ids) if t == self.marker]
        if self.family == "token_pair":
            # the question itself may contain the tag; the steps' tags are the last len(steps)
            marks = marks[len(marks) - len(steps) :] if len(marks) >= len(steps) else marks
        if len(marks) != len(steps):
            raise GenerationError(
                f"process reward model {self.name!r}: found {len(marks)} step markers for {len(steps)} "
                "steps; its tokenizer merges the marker with neighbouring text"
            )
        if self.info.n_ctx and len(ids) > self.info.n_ctx:
            raise GenerationError(
                f"process reward model {self.name!r}: a candidate of {len(ids)} tokens exceeds its "
                f"{self.info.n_ctx}-token context; lower max_step_tokens or the number of iterations"
            )
        return _Encoded(ids, marks)

    # -- scoring ---------------------------------------------------------------------------------------
    def score_candidates(
        self, question: str, candidates: Sequence[Sequence[str]], ledger: Ledger | None = None
    ) -> list[list[float]]:
        """One score per step of every candidate (each a non-empty list of steps), batched."""
        encoded = [self.encode(question, list(c)) for c in candidates]
        if ledger is not None:  # all batches or none: a later batch refused would waste the earlier ones
            self._check_affordable(ledger, [len(e.ids) for e in encoded])
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))  # little padding per batch
        out: list[list[float]] = [[] for _ in encoded]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            with self._lock:  # one forward at a time: concurrent solves share the loaded model
                scores = self._forward([encoded[i] for i in chunk], ledger)
            for i, s in zip(chunk, scores, strict=True):
                out[i] = s
        return out

    def _check_affordable(self, ledger: Ledger, lengths: Sequence[int]) -> None:
        from ..compute import forward_cost

        tokens, flops = forward_cost(self.info, lengths)  # what Ledger.forward_pass reserves, all batches
        tok_left, fl_left = ledger.remaining()
        if tokens > tok_left or flops > fl_left:
            raise BudgetExhausted(
                f"budget exhausted: {tok_left:.0f} tokens / {fl_left:.3g} FLOPs left cannot pay for "
                f"{self.info.name!r} to read {tokens} tokens ({flops:.3g} FLOPs) in {len(lengths)} candidates"
            )

    def _forward(self, batch: list[_Encoded], ledger: Ledger | None) -> list[list[float]]:
        torch, _ = _transformers()
        width = max(len(e.ids) for e in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(batch), width), int(pad), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):  # right padding: real tokens keep positions 0..len-1
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        lengths = [len(e.ids) for e in batch]
        if ledger is None:
            logits = self._logits(ids, mask)
        else:
            with ledger.forward_pass(self.info, lengths):
                logits = self._logits(ids, mask)
        out: list[list[float]] = []
        for row, e in enumerate(batch):
            at = logits[row, e.marks].float()
            if self.family == "two_class":
                probs = torch.softmax(at[:, :2], dim=-1)[:, 1]
            else:
                probs = torch.softmax(at[:, [self.good, self.bad]], dim=-1)[:, 0]
            values = [float(v) for v in probs.tolist()]
            for k, v in enumerate(values):
                if not math.isfinite(v):
                    raise GenerationError(
                        f"process reward model {self.name!r} gave {v} for step {k + 1} (non-finite logits)"
                    )
            out.append(values)
        return out

    def _logits(self, ids: Any, mask: Any) -> Any:
        torch, _ = _transformers()
        with torch.inference_mode():
            result = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        logits = result.logits if hasattr(result, "logits") else result[0]
        return logits.cpu()


class MeteredHFPRM:
    """A loaded PRM bound to one solve: its forward passes are paid for on the solve's ledger, and a
    candidate scored once in the solve is not read again (a search rescores the same paths often)."""

    def __init__(self, prm: HFProcessRewardModel, ledger: Ledger | None) -> None:
        self.prm = prm
        self.ledger = ledger
        self._memo: dict[tuple[str, ...], list[float]] = {}

    @property
    def model_name(self) -> str:
        return self.prm.name

    def score_steps(self, problem: Problem, steps: Sequence[Sequence[str]]) -> list[list[float]]:
        keys = [tuple(c) for c in steps]
        todo = [k for k in dict.fromkeys(keys) if k and k not in self._memo]
        if todo:
            scores = self.prm.score_candidates(problem.question, todo, self.ledger)
            self._memo.update(zip(todo, scores, strict=True))
        return [self._memo[k] if k else [] for k in keys]


_LOADED: dict[str, HFProcessRewardModel] = {}
_LOADING = threading.Lock()


def load_hf_prm(name: str) -> HFProcessRewardModel:
    """The PRM called ``name``, loaded once per process (a 7B model takes a while to load)."""
    if not name.strip():
        raise ConfigError("prm=hf: needs a model: prm=hf:Qwen/Qwen2.5-Math-PRM-7B or prm=hf:/path/to/model")
    with _LOADING:
        if name not in _LOADED:
            _LOADED[name] = HFProcessRewardModel(name)
        return _LOADED[name]
