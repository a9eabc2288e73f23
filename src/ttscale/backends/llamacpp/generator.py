""":class:`LlamaCppGenerator`: the :class:`~ttscale.backends.base.Generator` over the embedded engine."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from ...errors import ConfigError, GenerationError, PrefixLost, PromptTooLong
from ...reasoning import THINK_OPEN, reasoning_token_count
from ...types import Completion, Prompt, SamplingParams
from ..base import Capabilities, ModelInfo, PrefixHold, prompt_seed
from .chat import ChatTemplate
from .engine import Engine, Request
from .gguf_facts import GGUFFacts, read_gguf_facts
from .native import ContextConfig, NativeModel
from .slots import Pin, common_prefix

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
        self._bos_text = self.native.token_text(int(bos)) if bos else ""
        self.template = ChatTemplate(
            self.facts.chat_template,
            bos_token=self._bos_text,
            eos_token=self.native.token_text(int(eos)) if eos else "",
        )
        self.engine = Engine(
            self.native,
            n_ctx,
            prefix_cache=self.config.prefix_cache,
            max_cached=self.config.max_cached,
            compact=self.config.compact_slots,
        )
        self._cache: OrderedDict[Prompt, list[int]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def from_model(cls, name_or_path: str, config: ContextConfig | None = None) -> LlamaCppGenerator:
        """Open a catalog model (pulled on first use) or a path to a ``.gguf`` file."""
        from ...models import get_entry, resolve

        path = resolve(name_or_path)
        if name_or_path.lower().endswith(".gguf"):
            return cls(path, name=Path(name_or_path).stem, config=config)
        return cls(path, name=name_or_path, config=config, sha256=get_entry(name_or_path).sha256)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=True,
            native_n_max=self._chunk(),
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
        ids = self._tokenize(prompt)
        with self._cache_lock:
            self._cache[prompt] = ids
            if len(self._cache) > _RENDER_CACHE:
                self._cache.popitem(last=False)
        return ids

    def _tokenize(self, prompt: Prompt) -> list[int]:
        """The rendered prompt's ids: the template's markup becomes chat control tokens, the conversation's
        own text never does (a question holding "<|im_end|>" must not close its turn)."""
        parts = self.template.render_parts(prompt)
        text = self.template.render(prompt)
        # a template that writes the BOS itself, on a vocabulary that adds one: not twice
        bos = self.native.add_bos and not (self._bos_text and text.startswith(self._bos_text))
        own = [m.content for m in prompt.messages] + [prompt.assistant_prefix]
        if all(self.encode(t) == self.native.tokenize(t, add_bos=False) for t in own if t):
            return self.native.tokenize(text, add_bos=bos)  # no control text in the conversation
        if sum(not markup for _, markup in parts) < sum(1 for t in own if t):
            raise ConfigError(
                f"the chat template of {self.model.name!r} does not copy each message verbatim, so text in "
                "the prompt that spells a control token (such as <|im_end|>) cannot be kept as text; "
                "remove it from the prompt"
            )
        ids: list[int] = []
        for i, (piece, markup) in enumerate(parts):
            ids += self.native.tokenize(piece, add_bos=bos and i == 0, parse_special=markup)
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
        """Promise what each prompt will compute: per request part, the part of the prompt neither the
        cache nor an earlier prompt of the same call holds (the first part), or its last token (later
        parts, which fork the first part's prefill). A cached match is pinned now; a match with an earlier
        prompt of the call (a judge scoring the steps of one solution one prefix at a time, say) is kept by
        making that prompt's request the donor of this one: the engine pins the donor's slot when it
        starts, until this request is admitted."""
        pins: list[Pin | None] = []
        donors: list[int | None] = []
        spans = []
        parts = -(-n // self._chunk())
        token_lists = [self.tokens(p) for p in prompts]
        try:
            for j, ids in enumerate(token_lists):
                pin, lcp = self.engine.pin_prefix(ids)
                donor = None
                for i in range(j):
                    k = common_prefix(token_lists[i], ids)
                    if k > lcp:
                        donor, lcp = i, k
                if donor is not None and pin is not None:
                    self.engine.unpin(pin)  # the donor's prompt serves more of this one
                    pin = None
                pins.append(pin)
                donors.append(donor)
                lcp = min(lcp, len(ids) - 1)
                spans.append(((lcp, len(ids) - lcp),) + ((len(ids) - 1, 1),) * (parts - 1))
        except BaseException:
            _EngineHold((), tuple(pins), (), self.engine).release()
            raise
        return _EngineHold(tuple(spans), tuple(pins), tuple(donors), self.engine)

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
        unseeded = random.getrandbits(31)
        chunk = self._chunk()
        requests: list[list[Request]] = []
        for i, ids in enumerate(token_lists):
            first = prompt_seed(params, i)
            first = unseeded + i * 1_000_003 if first is None else first
            parts = []
            for j, start in enumerate(range(0, params.n, chunk)):
                n = min(chunk, params.n - start)
                seed = first + start
                allowance = pin = donor = None
                if hold is not None:
                    allowance = hold.spans[i][j][1]
                    if j == 0:
                        pin = hold.pins[i]
                        d = hold.donors[i]
                        donor = requests[d][0] if d is not None else None
                sub = replace(params, n=n)
                parts.append(self.engine.submit(ids, sub, n, seed, allowance=allowance, pin=pin, donor=donor))
            requests.append(parts)
        groups: list[list[Completion]] = []
        error: BaseException | None = None
        for reqs, prompt in zip(requests, prompts, strict=True):
            group: list[Completion] = []
            for req in reqs:  # wait for every part, so a failure never leaves work unaccounted
                try:
                    group.extend(self._with_reasoning(c, prompt) for c in req.future.result())
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
    donors: tuple[int | None, ...] = ()
    """Per prompt, the earlier prompt of the call whose request serves its prefix (None: the cache)."""
    engine: Engine | None = None

    def release(self) -> None:
        for pin in self.pins:
            if pin is not None and self.engine is not None:
                self.engine.unpin(pin)
