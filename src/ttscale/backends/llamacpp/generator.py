""":class:`LlamaCppGenerator`: the :class:`~ttscale.backends.base.Generator` over the embedded engine."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from ...errors import PromptTooLong
from ...reasoning import THINK_OPEN, reasoning_token_count
from ...types import Completion, Prompt, SamplingParams
from ..base import Capabilities, ModelInfo
from .chat import ChatTemplate
from .engine import Engine
from .gguf_facts import GGUFFacts, read_gguf_facts
from .native import ContextConfig, NativeModel

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
        token_lists = [self.tokens(p) for p in prompts]
        for ids in token_lists:  # refuse before anything is decoded
            if len(ids) + 1 > self._model.n_ctx:
                raise PromptTooLong(
                    f"prompt of {len(ids)} tokens leaves no room to generate in a context of "
                    f"{self._model.n_ctx}; shorten it"
                )
        base_seed = params.seed if params.seed is not None else random.getrandbits(31)
        chunk = self.native.n_seq_max // 2 or 1  # a request larger than this is split; prefix cache helps
        futures: list[list[Future[list[Completion]]]] = []
        for i, ids in enumerate(token_lists):
            parts = []
            for start in range(0, params.n, chunk):
                n = min(chunk, params.n - start)
                seed = base_seed + start + (i * 1_000_003 if params.seed is None else 0)
                parts.append(self.engine.submit(ids, replace(params, n=n), n, seed))
            futures.append(parts)
        return [
            [self._with_reasoning(c, prompt) for f in parts for c in f.result()]
            for parts, prompt in zip(futures, prompts, strict=True)
        ]

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
