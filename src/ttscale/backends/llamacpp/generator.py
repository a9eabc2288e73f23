""":class:`LlamaCppGenerator`: the :class:`~ttscale.backends.base.Generator` over the embedded engine."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from ...errors import GenerationError, PrefixLost, PromptTooLong
from ...reasoning import THINK_OPEN, reasoning_token_count
from ...types import Completion, Prompt, SamplingParams
from ..base import Capabilities, ModelInfo, PrefixHold
from .chat import ChatTemplate
from .engine import Engine
from .gguf_facts import GGUFFacts, read_gguf_facts
from .native import ContextConfig, NativeModel
from .slots import Pin

_RENDER_CACHE = 4096


class LlamaCppGenerator:
    """Generates with a local GGUF model through llama.cpp, batching concurrent calls together.

    Thread-safe: call :meth:`generate` from as many threads as you like; their requests decode together.
    Close it (or use it as a context manager) to stop the engine thread and free the model.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        config: ContextConfig | None = None,
        sha256: str = "",
    ) -> None:
        path = Path(path)
        self.path = path
        self.facts: GGUFFacts = read_gguf_facts(path)
        self.config = config or ContextConfig()
        self.native = NativeModel(path, self.config)
        n_ctx = min(self.facts.n_ctx_train or self.native.seq_len, self.native.seq_len)
        self._model = ModelInfo(
            name=name or path.stem,
            n_params=self.facts.n_params,
            n_layers=self.facts.n_layers,
            d_model=self.facts.d_model,
            n_ctx=n_ctx,
            vocab_size=self.native.n_vocab,
            sha256=sha256,
        )
        bos = self.native.meta("tokenizer.ggml.bos_token_id")
        eos = self.native.meta("tokenizer.ggml.eos_token_id")
        self.template = ChatTemplate(
            self.facts.chat_template,
            bos_token=self.native.token_text(int(bos)) if bos else "",
            eos_token=self.native.token_text(int(eos)) if eos else "",
        )
        self.engine = Engine(
            self.native, n_ctx, prefix_cache=self.config.prefix_cache, max_cached=self.config.max_cached
        )
        self._cache: OrderedDict[Prompt, list[int]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def from_model(cls, name_or_path: str, config: ContextConfig | None = None) -> LlamaCppGenerator:
        """Open a catalog model (pulled on first use) or a path to a ``.gguf`` file."""
        from ...models import get_entry, resolve

        path = resolve(name_or_path)
        if name_or_path.endswith(".gguf"):
            return cls(path, name=Path(name_or_path).stem, config=config)
        return cls(path, name=name_or_path, config=config, sha256=get_entry(name_or_path).sha256)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=True,
            logprobs=100,
            continue_prefix=True,
            logits_processors=True,
            stopping_criteria=True,
            prefix_cache=self.config.prefix_cache,
            tokenizer=True,
        )

    @property
    def model(self) -> ModelInfo:
        return self._model

    def tokens(self, prompt: Prompt) -> list[int]:
        """Token ids of the rendered prompt (memoised: the meter and generate both ask)."""
        with self._cache_lock:
            hit = self._cache.get(prompt)
            if hit is not None:
                self._cache.move_to_end(prompt)
                return hit
        ids = self.native.tokenize(self.template.render(prompt))
        with self._cache_lock:
            self._cache[prompt] = ids
            if len(self._cache) > _RENDER_CACHE:
                self._cache.popitem(last=False)
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of plain ``text`` (no BOS, special-token markup not parsed)."""
        return self.native.tokenize(text, add_bos=False, parse_special=False)

    def decode(self, token_ids: Sequence[int]) -> str:
        return b"".join(self.native.piece(t) for t in token_ids).decode("utf-8", errors="replace")

    def count_prompt_tokens(self, prompts: Sequence[Prompt]) -> list[int]:
        return [len(self.tokens(p)) for p in prompts]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        return self._run([self.tokens(p) for p in prompts], prompts, params, None)

    def hold_prefixes(self, prompts: Sequence[Prompt], n: int) -> PrefixHold:
        """Pin the cached prefix each prompt would reuse now, and promise what will be computed: per
        request part, the uncached rest of the prompt (the first part) or its last token (later parts,
        which fork the first part's prefill). Matches within the call itself are not promised: a later
        prompt may be admitted after an earlier one's sequence has left the cache."""
        pins: list[Pin | None] = []
        spans = []
        parts = -(-n // self._chunk())
        try:
            for prompt in prompts:
                ids = self.tokens(prompt)
                pin, lcp = self.engine.pin_prefix(ids)
                pins.append(pin)
                lcp = min(lcp, len(ids) - 1)
                spans.append(((lcp, len(ids) - lcp),) + ((len(ids) - 1, 1),) * (parts - 1))
        except BaseException:
            _EngineHold((), tuple(pins), self.engine).release()
            raise
        return _EngineHold(tuple(spans), tuple(pins), self.engine)

    def generate_held(
        self, prompts: Sequence[Prompt], params: SamplingParams, hold: PrefixHold
    ) -> list[list[Completion]]:
        if not isinstance(hold, _EngineHold) or len(hold.spans) != len(prompts):
            raise GenerationError("generate_held needs the hold this generator gave for these prompts")
        try:
            return self._run([self.tokens(p) for p in prompts], prompts, params, hold)
        finally:
            hold.release()

    def _chunk(self) -> int:
        """Most samples per engine request; a larger n is split (the prefix cache makes that cheap)."""
        return self.native.n_seq_max // 2 or 1

    def _run(
        self,
        token_lists: list[list[int]],
        prompts: Sequence[Prompt],
        params: SamplingParams,
        hold: _EngineHold | None,
    ) -> list[list[Completion]]:
        for ids in token_lists:  # refuse before anything is decoded
            if len(ids) + 1 > self._model.n_ctx:
                raise PromptTooLong(
                    f"prompt of {len(ids)} tokens leaves no room to generate in a context of "
                    f"{self._model.n_ctx}; shorten it"
                )
        base_seed = params.seed if params.seed is not None else random.getrandbits(31)
        chunk = self._chunk()
        futures: list[list[Future[list[Completion]]]] = []
        for i, ids in enumerate(token_lists):
            parts = []
            for j, start in enumerate(range(0, params.n, chunk)):
                n = min(chunk, params.n - start)
                seed = base_seed + start + (i * 1_000_003 if params.seed is None else 0)
                allowance = hold.spans[i][j][1] if hold is not None else None
                pin = hold.pins[i] if hold is not None and j == 0 else None
                parts.append(
                    self.engine.submit(ids, replace(params, n=n), n, seed, allowance=allowance, pin=pin)
                )
            futures.append(parts)
        groups: list[list[Completion]] = []
        error: BaseException | None = None
        for parts, prompt in zip(futures, prompts, strict=True):
            group: list[Completion] = []
            for f in parts:  # wait for every part, so a failure never leaves work unaccounted
                try:
                    group.extend(self._with_reasoning(c, prompt) for c in f.result())
                except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finish
                    error = error or exc
            groups.append(group)
        if isinstance(error, PrefixLost):
            raise PrefixLost(str(error), tuple(c for g in groups for c in g)) from error
        if error is not None:
            raise error
        return groups

    def _with_reasoning(self, c: Completion, prompt: Prompt) -> Completion:
        """Count the completion's tokens inside a ``<think>`` block (reasoning models, budget forcing)."""
        if THINK_OPEN not in prompt.assistant_prefix and THINK_OPEN not in c.text:
            return c
        pieces = [self.native.piece(t).decode("utf-8", errors="replace") for t in c.token_ids]
        return replace(c, reasoning_tokens=reasoning_token_count(pieces, prompt.assistant_prefix))

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class _EngineHold(PrefixHold):
    """A :class:`PrefixHold` with the engine pins it keeps until the requests are admitted."""

    pins: tuple[Pin | None, ...] = ()
    engine: Engine | None = None

    def release(self) -> None:
        for pin in self.pins:
            if pin is not None and self.engine is not None:
                self.engine.unpin(pin)
