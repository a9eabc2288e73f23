"""Core values passed between strategies, backends and the meter. All are frozen dataclasses.

Shapes are stable: a backend takes a sequence of prompts and returns, for each, exactly ``params.n``
completions in input order. Usage is never reported by strategies; the :class:`~ttscale.compute.Meter`
derives it from the completions a backend returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["eos", "stop", "length", "criterion"]


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    """Who speaks: ``system``, ``user`` or ``assistant``."""
    content: str
    """The message text."""

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ConfigError(f"message role must be system, user or assistant, not {self.role!r}")


@dataclass(frozen=True)
class Prompt:
    """A chat conversation plus an optional partial assistant answer to continue.

    The backend renders ``messages`` with the model's chat template, opens the assistant turn and appends
    ``assistant_prefix`` verbatim. Budget forcing, step-wise search and retrieval-in-reasoning all work by
    extending ``assistant_prefix``; with a prefix cache only the new suffix costs prefill compute.
    """

    messages: tuple[Message, ...]
    """The conversation so far; the last message is usually the user's."""
    assistant_prefix: str = ""
    """Text the assistant has already written in its (open) turn; generation continues after it."""

    @classmethod
    def user(cls, text: str, system: str | None = None, assistant_prefix: str = "") -> Prompt:
        """A one-turn prompt: optional system message, then ``text`` as the user message."""
        msgs = ((Message("system", system),) if system is not None else ()) + (Message("user", text),)
        return cls(msgs, assistant_prefix)

    def continued(self, text: str) -> Prompt:
        """The same conversation with ``text`` appended to the assistant prefix."""
        return Prompt(self.messages, self.assistant_prefix + text)


class LogitsProcessor(Protocol):
    """Edits one sequence's next-token logits in place before sampling.

    ``generated`` holds the token ids this sequence has generated so far (not the prompt). Processors must be
    pure functions of their inputs: the engine may call them from its own thread for many sequences.
    """

    def __call__(self, generated: Sequence[int], logits: npt.NDArray[np.float32]) -> None: ...


class StoppingCriterion(Protocol):
    """Decides after each generated token whether this sequence should stop (finish reason ``criterion``).

    ``logprobs`` holds the per-token logprob records generated so far (empty unless logprobs were asked).
    """

    def __call__(self, generated: Sequence[int], logprobs: Sequence[TokenLogprob]) -> bool: ...


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. Defaults follow llama.cpp/vLLM conventions; ``temperature=0`` is greedy."""

    n: int = 1
    """Completions to return per prompt. Backends with native n prefill the prompt once."""
    max_tokens: int = 256
    """Upper bound on generated tokens per completion (the meter may lower it to fit the budget)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax)."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1 disables it. Pair it with ``top_k``: top-p alone sorts the whole vocabulary."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables it."""
    min_p: float = 0.0
    """Drop tokens whose probability is below ``min_p`` times the top token's; 0 disables it."""
    stop: tuple[str, ...] = ()
    """Stop strings. Generation ends when one appears; it is left out of the text and reported."""
    seed: int | None = None
    """Base seed. Sample i of a prompt uses ``seed + i``, so a seed reproduces the outputs."""
    logprobs: int | None = None
    """If set, return the sampled token's logprob and the top ``logprobs`` alternatives for each token."""
    logprobs_optional: bool = False
    """The logprobs are wanted if at hand, not needed: a replayed draw recorded without them may serve the
    call, its completions then carrying none (an evaluation's meter asks so, for the summaries it stores)."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs added to the logits before sampling."""
    logits_processors: tuple[LogitsProcessor, ...] = ()
    """Python logits processors applied in order before sampling (needs ``capabilities.logits_processors``)."""
    stopping_criteria: tuple[StoppingCriterion, ...] = ()
    """Python criteria checked after each token (needs ``capabilities.stopping_criteria``)."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            raise ConfigError("stop must be a tuple of strings, not a single string")
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 <= self.min_p < 1:
            raise ConfigError(f"min_p must be in [0, 1), got {self.min_p}")
        if self.logprobs is not None and not 0 <= self.logprobs <= 100:
            raise ConfigError(f"logprobs must be between 0 and 100, got {self.logprobs}")
        if any(not s for s in self.stop):
            raise ConfigError("stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        """True when sampling is deterministic argmax."""
        return self.temperature == 0 or self.top_k == 1


@dataclass(frozen=True)
class TokenLogprob:
    """The logprob of one generated token and its top alternatives (log-softmax of the raw logits)."""

    token_id: int
    """The sampled token."""
    logprob: float
    """Its log-probability under the model (before temperature and truncation)."""
    top: tuple[tuple[int, float], ...] = ()
    """The top-k (token id, logprob) pairs, most likely first."""


@dataclass(frozen=True)
class Completion:
    """One generated continuation of one prompt."""

    text: str
    """Generated text, without the stop string that ended it."""
    token_ids: tuple[int, ...]
    """Generated token ids (including those of a stop string that fired)."""
    finish_reason: FinishReason
    """``eos`` (end-of-generation token), ``stop`` (stop string), ``length`` (max_tokens) or ``criterion``."""
    stop_string: str | None = None
    """The stop string that fired, when ``finish_reason == "stop"``."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Per-token logprobs, when ``params.logprobs`` was set."""
    prompt_tokens: int = 0
    """Length of the rendered prompt in tokens."""
    cached_prompt_tokens: int = 0
    """Prompt tokens whose KV came from cache (a prefix cache hit, or a fork of a sibling sample)."""
    reasoning_tokens: int = 0
    """Generated tokens inside a ``<think>`` block (see :mod:`ttscale.reasoning`)."""

    @property
    def computed_prompt_tokens(self) -> int:
        """Prompt tokens that were actually run through the model for this completion."""
        return self.prompt_tokens - self.cached_prompt_tokens


@dataclass(frozen=True)
class ModelUsage:
    """What one model spent."""

    calls: int = 0
    """Calls to ``generate`` (one call may carry many prompts and samples)."""
    prompt_tokens: int = 0
    """Prompt tokens run through the model (cache hits excluded)."""
    cached_prompt_tokens: int = 0
    """Prompt tokens served from cache."""
    completion_tokens: int = 0
    """Generated tokens."""
    reasoning_tokens: int = 0
    """Generated tokens inside a thinking phase (a subset of ``completion_tokens``)."""
    flops: float = 0.0
    """Estimated floating point operations, see :mod:`ttscale.compute`."""

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.flops + other.flops,
        )

    @property
    def total_tokens(self) -> int:
        """Tokens processed: computed prompt tokens plus generated tokens (cache hits are free)."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Usage:
    """Spending per model, and the totals."""

    by_model: Mapping[str, ModelUsage] = field(default_factory=dict)
    """Model name to what it spent."""

    @property
    def total(self) -> ModelUsage:
        out = ModelUsage()
        for u in self.by_model.values():
            out = out + u
        return out

    def __add__(self, other: Usage) -> Usage:
        merged = dict(self.by_model)
        for name, u in other.by_model.items():
            merged[name] = merged.get(name, ModelUsage()) + u
        return Usage(merged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: totals at the top level, one entry per model under ``by_model``."""
        t = self.total
        return {
            "calls": t.calls,
            "prompt_tokens": t.prompt_tokens,
            "cached_prompt_tokens": t.cached_prompt_tokens,
            "completion_tokens": t.completion_tokens,
            "reasoning_tokens": t.reasoning_tokens,
            "total_tokens": t.total_tokens,
            "flops": t.flops,
            "by_model": {name: vars_of(u) for name, u in self.by_model.items()},
        }


def vars_of(u: ModelUsage) -> dict[str, Any]:
    return {
        "calls": u.calls,
        "prompt_tokens": u.prompt_tokens,
        "cached_prompt_tokens": u.cached_prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "flops": u.flops,
    }


@dataclass(frozen=True)
class Problem:
    """A question to solve. It carries no answer: strategies can never read the key."""

    question: str
    """The problem statement as shown to the model."""
    id: str = ""
    """Stable identifier (dataset id), for traces and stores."""
    answer_kind: Literal["math", "number", "game24", "text"] = "math"
    """How answers are extracted and compared when voting."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Non-answer information a strategy may use (e.g. the numbers of a Game-of-24 puzzle)."""


@dataclass(frozen=True)
class TraceEvent:
    """One thing a strategy did: a sample, a vote, a score, a stop. ``data`` is JSON-serialisable."""

    kind: str
    """Event type, e.g. ``sample``, ``vote``, ``stop``."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Event payload."""


@dataclass(frozen=True)
class Candidate:
    """A distinct final answer among the samples, with its support."""

    answer: str
    """The answer as extracted (the representative of its equivalence class)."""
    votes: float
    """Number of samples (or summed weight) supporting it."""
    samples: tuple[int, ...] = ()
    """Indices of the samples that gave it."""


@dataclass(frozen=True)
class Result:
    """What a strategy returns: the answer, how it was reached, and what it cost."""

    answer: str | None
    """The final answer (extracted), or None if nothing could be extracted from any sample."""
    response: str
    """The full text of the response the answer came from."""
    strategy: str
    """Registered strategy name."""
    model: str
    """Name of the policy model."""
    candidates: tuple[Candidate, ...] = ()
    """Distinct answers, best first."""
    confidence: float | None = None
    """Strategy-specific confidence in the answer (e.g. vote share), when defined."""
    usage: Usage = field(default_factory=Usage)
    """Compute spent, per model, as counted by the meter."""
    trace: tuple[TraceEvent, ...] = ()
    """What the strategy did, step by step."""
    wall_seconds: float = 0.0
    """Elapsed time."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view used by ``ttscale solve --json`` and the stores."""
        return {
            "answer": self.answer,
            "response": self.response,
            "strategy": self.strategy,
            "model": self.model,
            "confidence": self.confidence,
            "candidates": [
                {"answer": c.answer, "votes": c.votes, "samples": list(c.samples)} for c in self.candidates
            ],
            "usage": self.usage.to_dict(),
            "wall_seconds": self.wall_seconds,
            "trace": [{"kind": e.kind, **dict(e.data)} for e in self.trace],
        }
