"""A deterministic test double: a :class:`Generator` that replays scripted responses.

Like ``httpx.MockTransport``, it lets the logic of strategies, meters and CLIs be unit-tested without a
model. It honours the parts of the contract that logic depends on: ``n`` completions per prompt in order,
``max_tokens`` truncation (finish reason ``length``), stop strings (left out of the text and reported),
stopping criteria, optional logprobs (``logprob_fn`` for the sampled token, ``top_fn`` for a chosen list of
top alternatives), optional prefix caching, and token counts for the meter.

A "token" here is a run of whitespace followed by a run of non-space characters (``" hello"``), so counts
are easy to predict in tests. Responses come from a list (cycled, one per sample drawn) or from a function
``responder(prompt, draw_index) -> str``.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..reasoning import reasoning_token_count
from ..types import Completion, FinishReason, Prompt, SamplingParams, TokenLogprob
from .base import Capabilities, ModelInfo, PrefixHold

_TOKEN = re.compile(r"\s*\S+|\s+")

Responder = Callable[[Prompt, int], str]
LogprobFn = Callable[[str, int], float]
TopFn = Callable[[str, int], Sequence[tuple[str, float]]]


def tokenize(text: str) -> list[str]:
    """Split text into scripted tokens (whitespace attached to the following word)."""
    return _TOKEN.findall(text)


def render(prompt: Prompt) -> str:
    """The scripted chat template."""
    turns = "".join(f"<|{m.role}|>{m.content}\n" for m in prompt.messages)
    return f"{turns}<|assistant|>{prompt.assistant_prefix}"


@dataclass(frozen=True)
class ScriptedModel:
    """Size facts the scripted backend reports, so FLOPs can be tested with round numbers."""

    name: str = "scripted"
    n_params: int = 1_000_000
    n_layers: int = 0
    d_model: int = 0
    n_ctx: int = 100_000


class ScriptedGenerator:
    """Replays scripted responses. Thread-safe; the draw counter makes runs reproducible."""

    def __init__(
        self,
        responses: Sequence[str] | Responder,
        *,
        model: ScriptedModel | None = None,
        logprob_fn: LogprobFn | None = None,
        top_fn: TopFn | None = None,
        native_n: bool = True,
        native_n_max: int = 0,
        prefix_cache: bool = False,
        continue_prefix: bool = True,
        delay: float = 0.0,
    ) -> None:
        if callable(responses):
            self._responder: Responder = responses
        else:
            items = list(responses)
            if not items:
                raise ValueError("ScriptedGenerator needs at least one response")
            self._responder = lambda _prompt, k: items[k % len(items)]
        m = model or ScriptedModel()
        self._model = ModelInfo(m.name, m.n_params, m.n_layers, m.d_model, m.n_ctx, vocab_size=50_000)
        self._logprob_fn = logprob_fn
        # (token, position) -> the top alternatives as (token text, logprob); replaces the default top list
        self._top_fn = top_fn
        self._caps = Capabilities(
            native_n=native_n,
            native_n_max=native_n_max,
            logprobs=20 if logprob_fn or top_fn else 0,
            continue_prefix=continue_prefix,
            logits_processors=False,
            stopping_criteria=True,
            prefix_cache=prefix_cache,
            tokenizer=True,
        )
        # seconds each generate call sleeps, outside the lock: lets tests interrupt a run mid-way
        self._delay = delay
        self._lock = threading.RLock()  # criteria may call encode/decode while a generation holds it
        self._draws = 0
        self._vocab: dict[str, int] = {}
        self._seen: list[tuple[int, ...]] = []
        self.calls: list[tuple[tuple[Prompt, ...], SamplingParams]] = []
        """Every call made, for tests to inspect."""

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def model(self) -> ModelInfo:
        return self._model

    def encode(self, text: str) -> list[int]:
        """Scripted token ids of ``text`` (ids are assigned in order of first appearance)."""
        with self._lock:
            return list(self._ids(tokenize(text)))

    def decode(self, token_ids: Sequence[int]) -> str:
        with self._lock:
            words = {i: w for w, i in self._vocab.items()}
        return "".join(words.get(i, "") for i in token_ids)

    def count_prompt_tokens(self, prompts: Sequence[Prompt]) -> list[int]:
        return [len(tokenize(render(p))) for p in prompts]

    def _ids(self, tokens: Sequence[str]) -> tuple[int, ...]:
        return tuple(self._vocab.setdefault(t, len(self._vocab)) for t in tokens)

    def _cached(self, ids: tuple[int, ...]) -> int:
        """Longest prefix of ``ids`` seen before, keeping one token to compute (like a real cache)."""
        k = _longest_prefix(ids, self._seen)
        self._seen.append(ids)
        return k

    def hold_prefixes(self, prompts: Sequence[Prompt], n: int) -> PrefixHold:
        """What :meth:`generate` will compute for ``prompts`` (this cache never forgets, so nothing to pin)."""
        with self._lock:
            seen = list(self._seen)
            spans = []
            for prompt in prompts:
                ids = self._ids(tokenize(render(prompt)))
                k = _longest_prefix(ids, seen)
                seen.append(ids)
                # every request after the first reads the prompt from cache but its last token
                copies = ((len(ids) - 1, 1),) * (self._caps.prefills(n) - 1)
                spans.append(((k, len(ids) - k), *copies))
        return PrefixHold(tuple(spans))

    def generate_held(
        self, prompts: Sequence[Prompt], params: SamplingParams, hold: PrefixHold
    ) -> list[list[Completion]]:
        return self.generate(prompts, params)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        if self._delay > 0:
            time.sleep(self._delay)
        with self._lock:
            self.calls.append((tuple(prompts), params))
            out = []
            for prompt in prompts:
                ids = self._ids(tokenize(render(prompt)))
                group = []
                for i in range(params.n):
                    draw = self._draws
                    self._draws += 1
                    per_request = self._caps.native_n_max if self._caps.native_n else 1
                    if i == 0 or not self._caps.native_n or (per_request and i % per_request == 0):
                        cached = self._cached(ids) if self._caps.prefix_cache else 0  # a new request
                    else:
                        cached = len(ids)  # a fork of its request's prefilled prompt
                    text = self._responder(prompt, draw)
                    done = self._complete(text, params, len(ids), cached)
                    group.append(self._count_reasoning(done, prompt))
                out.append(group)
            return out

    def _count_reasoning(self, c: Completion, prompt: Prompt) -> Completion:
        words = {i: w for w, i in self._vocab.items()}
        pieces = [words[i] for i in c.token_ids]
        return replace(c, reasoning_tokens=reasoning_token_count(pieces, prompt.assistant_prefix))

    def _complete(self, text: str, params: SamplingParams, n_prompt: int, cached: int) -> Completion:
        tokens: list[str] = []
        lps: list[TokenLogprob] = []
        so_far = ""
        reason: FinishReason = "eos"
        fired: str | None = None
        want_logprobs = self._logprob_fn is not None or self._top_fn is not None
        for tok in tokenize(text):
            tokens.append(tok)
            so_far += tok
            if want_logprobs and params.logprobs is not None:
                lps.append(self._record(tok, len(tokens) - 1, params.logprobs))
            hits = [(so_far.find(s), s) for s in params.stop if s in so_far]
            if hits:
                pos, fired = min(hits)
                so_far, reason = so_far[:pos], "stop"
                break
            if any(crit(self._ids(tokens), lps) for crit in params.stopping_criteria):
                reason = "criterion"
                break
            if len(tokens) >= params.max_tokens:
                reason = "length"
                break
        return Completion(
            text=so_far,
            token_ids=self._ids(tokens),
            finish_reason=reason,
            stop_string=fired,
            logprobs=tuple(lps) if params.logprobs is not None and want_logprobs else None,
            prompt_tokens=n_prompt,
            cached_prompt_tokens=cached,
        )

    def _record(self, tok: str, pos: int, k: int) -> TokenLogprob:
        """The logprob record of one token: from ``top_fn`` if given, else the token and one "rest" entry."""
        tid = self._ids([tok])[0]
        if self._top_fn is not None:
            ranked = sorted(self._top_fn(tok, pos), key=lambda p: -p[1])
            pairs = tuple((self._ids([t])[0], lp) for t, lp in ranked)
            lp = self._logprob_fn(tok, pos) if self._logprob_fn else dict(pairs).get(tid, -30.0)
            return TokenLogprob(tid, lp, pairs[:k])
        lp = self._logprob_fn(tok, pos) if self._logprob_fn else -30.0
        alt = math.log1p(-math.exp(lp)) if lp < 0 else -30.0
        return TokenLogprob(tid, lp, ((tid, lp), (-1, alt))[:k] if k else ())


def _longest_prefix(ids: tuple[int, ...], seen: Sequence[tuple[int, ...]]) -> int:
    """Longest prefix ``ids`` shares with any of ``seen``, leaving at least its last token to compute."""
    best = 0
    for old in seen:
        k = 0
        for a, b in zip(old, ids, strict=False):
            if a != b:
                break
            k += 1
        best = max(best, k)
    return min(best, len(ids) - 1)
