"""The one seam every backend implements: :class:`Generator`.

A generator takes a batch of prompts and returns exactly ``params.n`` completions for each, in input order.
What it can do is declared in :class:`Capabilities` up front, so a strategy that needs logprobs or prefix
continuation fails when it is built, never halfway through a search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import CapabilityError
from ..types import Completion, Prompt, SamplingParams


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports."""

    native_n: bool = False
    """Draws n samples of one prompt with a single prefill (otherwise the prompt is sent n times)."""
    native_n_max: int = 0
    """Most samples one prefill serves with native n (0: any n). A larger n is split into
    ``ceil(n / native_n_max)`` requests, each prefilling the prompt unless a prefix cache serves it."""

    def prefills(self, n: int) -> int:
        """How many times a call drawing ``n`` samples of one prompt prefills it, with no prefix cache."""
        if not self.native_n:
            return n
        return -(-n // self.native_n_max) if self.native_n_max > 0 else 1

    logprobs: int = 0
    """Largest ``SamplingParams.logprobs`` it honours; 0 means no logprobs at all."""
    continue_prefix: bool = False
    """Continues ``Prompt.assistant_prefix`` inside an open assistant turn."""
    logits_processors: bool = False
    """Applies ``SamplingParams.logits_processors``."""
    stopping_criteria: bool = False
    """Applies ``SamplingParams.stopping_criteria``."""
    prefix_cache: bool = False
    """Reuses the KV of earlier prompts that share a token prefix."""
    tokenizer: bool = False
    """Exposes ``encode``/``decode`` of the model's vocabulary (see :class:`Tokenizer`)."""


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the model behind a generator, used for FLOPs accounting."""

    name: str
    """Catalog or served name."""
    n_params: int
    """Parameters touched per token: all weights except the input embedding lookup, output head included."""
    n_layers: int = 0
    """Transformer blocks (0 if unknown; the attention FLOPs term is then left out)."""
    d_model: int = 0
    """Hidden size (0 if unknown)."""
    n_ctx: int = 0
    """Longest sequence (prompt + completion) the backend accepts; 0 if unknown."""
    vocab_size: int = 0
    """Vocabulary size (0 if unknown)."""
    sha256: str = ""
    """Checksum of the weights file, when known."""


@runtime_checkable
class Generator(Protocol):
    """A batched text generator.

    ``generate`` returns ``len(prompts)`` lists, the i-th holding exactly ``params.n`` completions of
    ``prompts[i]``; with a seed, sample j of prompt i is drawn with seed ``prompt_seed(params, i) + j``.
    It raises :class:`~ttscale.errors.GenerationError` for a request that fails and
    :class:`~ttscale.errors.PromptTooLong` before decoding anything when a prompt does not fit.
    ``count_prompt_tokens`` gives the rendered length of each prompt (the meter's worst-case cost).
    """

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def model(self) -> ModelInfo: ...

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]: ...

    def count_prompt_tokens(self, prompts: Sequence[Prompt]) -> list[int]: ...


def prompt_seed(params: SamplingParams, index: int) -> int | None:
    """The seed of the first sample of prompt ``index`` in a seeded call: prompt i draws with seeds
    ``seed + i·n .. seed + i·n + n - 1``, so no two samples of one call share a seed (two prompts that
    share one would draw the same random numbers, correlating samples meant to be independent)."""
    return None if params.seed is None else params.seed + index * params.n


Span = tuple[int, int]
"""(first position, token count) of one prefill."""


@dataclass(frozen=True)
class PrefixHold:
    """What a prefix-caching backend will compute for the prompts of one call, promised ahead of the call.

    ``spans[i]`` lists, for prompt i, each prefill the backend will run for it (one per request it splits
    the prompt into) as (first position, token count): only the part of the prompt its cache does not
    already hold, always at least the last token (whose logits start the samples). The backend keeps the
    matched cached prefixes (pins them) until the call's requests are admitted, so the promise normally
    holds; if a prefix is lost anyway, the request computes no more in all than was promised (it shortens
    its samples by the excess, spread over them: each lost prompt token sits at an earlier position than
    the generated tokens it replaces, so it costs no more FLOPs), or is refused with
    :class:`~ttscale.errors.PrefixLost` before computing anything.

    Release it when the call is over (``generate_held`` does, and releasing twice is harmless).
    """

    spans: tuple[tuple[Span, ...], ...]

    def release(self) -> None:
        """Unpin whatever this hold still pins (nothing, for backends that do not pin)."""


@runtime_checkable
class PrefixReuse(Protocol):
    """A generator whose prefix cache the meter can count on when reserving a call's cost."""

    def hold_prefixes(self, prompts: Sequence[Prompt], n: int) -> PrefixHold:
        """Match each prompt against the cache, pin the matches, say what will be computed."""
        ...

    def generate_held(
        self, prompts: Sequence[Prompt], params: SamplingParams, hold: PrefixHold
    ) -> list[list[Completion]]:
        """``generate``, computing no more prompt tokens per request than ``hold`` promised."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    """Access to the model's vocabulary, for strategies that work on token ids (TIP, judges).

    ``encode`` never adds BOS and never parses special tokens: it tokenizes plain text as the model would
    inside a longer text. ``decode`` renders ids back to text (special tokens as nothing).
    """

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


class Wrapper:
    """A generator in front of another: model, capabilities, prompt counts and tokenizer pass through.

    Subclasses (the meter, the draw replay) add ``generate``; ``inner`` is what they wrap.
    """

    def __init__(self, inner: Generator) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def model(self) -> ModelInfo:
        return self.inner.model

    def count_prompt_tokens(self, prompts: Sequence[Prompt]) -> list[int]:
        return self.inner.count_prompt_tokens(prompts)

    def encode(self, text: str) -> list[int]:
        """The wrapped generator's tokenizer (see :class:`Tokenizer`)."""
        return self._tokenizer().encode(text)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer().decode(token_ids)

    def _tokenizer(self) -> Tokenizer:
        if not isinstance(self.inner, Tokenizer):
            raise CapabilityError(f"model {self.inner.model.name!r} on this backend exposes no tokenizer")
        return self.inner


def weights_file(generator: Generator) -> Path | None:
    """The local weights file behind a generator (looked for through its wrappers' ``inner``), if any."""
    seen: Any = generator
    while seen is not None:
        path = getattr(seen, "path", None)
        if isinstance(path, Path) and path.is_file():
            return path
        seen = getattr(seen, "inner", None)
    return None


def model_checksum(generator: Generator) -> str:
    """The SHA-256 of the generator's weights: the backend's (a catalog model's) or, for a model opened from
    a file, that file hashed now (~1 s per GB); empty if neither is known."""
    sha = generator.model.sha256
    if sha:
        return sha
    path = weights_file(generator)
    if path is None:
        return ""
    from ..models.sources import sha256_file

    return sha256_file(path)


def require(
    generator: Generator,
    *,
    who: str,
    logprobs: int = 0,
    continue_prefix: bool = False,
    logits_processors: bool = False,
    stopping_criteria: bool = False,
    tokenizer: bool = False,
) -> None:
    """Raise :class:`CapabilityError` naming ``who`` if ``generator`` lacks a needed capability."""
    caps = generator.capabilities
    missing = []
    if logprobs and caps.logprobs < logprobs:
        missing.append(f"top-{logprobs} logprobs (backend gives {caps.logprobs})")
    if continue_prefix and not caps.continue_prefix:
        missing.append("continuing an assistant prefix")
    if logits_processors and not caps.logits_processors:
        missing.append("logits processors")
    if stopping_criteria and not caps.stopping_criteria:
        missing.append("stopping criteria")
    if tokenizer and not caps.tokenizer:
        missing.append("access to its tokenizer")
    if missing:
        raise CapabilityError(
            f"{who} needs {', '.join(missing)}, which model {generator.model.name!r} on this backend does not "
            "support. Use the embedded llama.cpp backend or a backend that declares these capabilities."
        )
