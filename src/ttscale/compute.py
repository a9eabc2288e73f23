"""Compute accounting: the FLOPs model, budgets, and the :class:`Meter` that enforces them.

FLOPs model (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", table 1). A forward pass
over one token at position ``p`` (``p`` tokens already in context) costs::

    C(p) = 2 * N  +  2 * n_layers * p * d_model

``2 * N`` is the matrix multiplies: N counts every weight a token touches, i.e. all parameters except the
input embedding (a table lookup), *including* the vocab x d_model output projection (for Qwen2.5-0.5B that
is 136M of its 494M parameters, tied to the embedding or not). ``2 * n_layers * p * d_model`` is the
attention score and weighted-sum work against the ``p`` cached keys and values; it is included whenever
the model's layer count and width are known, and it is why a long reasoning trace costs more per token
than a short one. Prompt tokens served from a prefix cache cost nothing; prompt tokens run through the
model cost the same as generated ones (a prefill is a forward pass). Backward passes never happen here.

Budgets. A :class:`Budget` caps tokens (computed prompt tokens + generated tokens, the quantity FLOPs are
proportional to) and/or FLOPs. The meter reserves the worst case of a call before making it (every sample
running to its ``max_tokens``; every prompt token computed, unless the backend promises what its prefix
cache holds, see :class:`~ttscale.backends.base.PrefixHold`), lowers ``max_tokens`` to what the remainder
pays for, or refuses the call with :class:`BudgetExhausted`; after the call it books what was actually
spent. Actual spending is never above the reservation, so a budget is never overspent, even with calls
running concurrently from several threads. A backend that splits a large n into several requests says so
(``Capabilities.native_n_max``), and the reservation counts a prefill per request.

Where the count is not exact, it errs upward, except for failures. A sample that ends by length or a stop
string is booked with its last token, which the engine samples but never runs through the model (one
token's FLOPs per sample too many). A call that fails with an error other than
:class:`~ttscale.errors.PrefixLost` books nothing, though other requests of that call may have finished:
its reservation is released, so the budget stays safe, but a failed solve under-reports what it spent.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from .backends.base import Generator, ModelInfo, PrefixHold, PrefixReuse, Span, Wrapper
from .errors import BudgetExhausted, ConfigError, PrefixLost
from .types import Completion, ModelUsage, Prompt, SamplingParams, Usage


def forward_cost(model: ModelInfo, lengths: Sequence[int]) -> tuple[int, float]:
    """(tokens, FLOPs) of one forward pass of ``model`` over whole sequences of ``lengths`` tokens."""
    return int(sum(lengths)), math.fsum(span_flops(model, 0, n) for n in lengths)


def span_flops(model: ModelInfo, start: int, count: int) -> float:
    """FLOPs to run ``count`` tokens at positions ``start .. start+count-1`` through ``model``."""
    if count <= 0:
        return 0.0
    dense = 2.0 * model.n_params * count
    # sum of positions p over the span, times the per-position attention cost 2 * n_layers * d_model
    pos_sum = (2 * start + count - 1) * count / 2.0
    return dense + 2.0 * model.n_layers * model.d_model * pos_sum


def completion_flops(model: ModelInfo, c: Completion) -> float:
    """FLOPs of one completion: its computed prompt suffix plus its generated tokens."""
    return span_flops(model, c.cached_prompt_tokens, c.computed_prompt_tokens) + span_flops(
        model, c.prompt_tokens, len(c.token_ids)
    )


@dataclass(frozen=True)
class Budget:
    """A compute budget. ``None`` means unlimited on that axis."""

    tokens: int | None = None
    """Most tokens processed (computed prompt tokens + generated tokens), over all models."""
    flops: float | None = None
    """Most FLOPs, over all models."""

    def __post_init__(self) -> None:
        if self.tokens is not None and self.tokens < 0:
            raise ConfigError(f"budget tokens must be >= 0, got {self.tokens}")
        if self.flops is not None and not (self.flops >= 0 and math.isfinite(self.flops)):
            raise ConfigError(f"budget flops must be a finite number >= 0, got {self.flops}")

    @property
    def unlimited(self) -> bool:
        return self.tokens is None and self.flops is None


_reasoning: contextvars.ContextVar[bool] = contextvars.ContextVar("ttscale_reasoning", default=False)


@contextmanager
def reasoning_phase() -> Iterator[None]:
    """Inside this block, generated tokens are also booked as ``reasoning_tokens`` (thinking phases)."""
    token = _reasoning.set(True)
    try:
        yield
    finally:
        _reasoning.reset(token)


class Ledger:
    """Shared spending record of one solve: per-model usage, reservations in flight, and the budget."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self._lock = threading.Lock()
        self._spent: dict[str, ModelUsage] = {}
        self._reserved_tokens = 0
        self._reserved_flops = 0.0

    def usage(self) -> Usage:
        with self._lock:
            return Usage(dict(self._spent))

    def remaining(self) -> tuple[float, float]:
        """(tokens, FLOPs) still available, reservations in flight deducted; ``inf`` when unlimited."""
        with self._lock:
            return self._remaining_locked()

    def _remaining_locked(self) -> tuple[float, float]:
        total = Usage(self._spent).total
        tok = math.inf if self.budget.tokens is None else self.budget.tokens - total.total_tokens
        fl = math.inf if self.budget.flops is None else self.budget.flops - total.flops
        return tok - self._reserved_tokens, fl - self._reserved_flops

    def meter(self, generator: Generator, *, sampled_logprobs: bool = False) -> Meter:
        """Wrap ``generator`` so that its calls are counted here and limited by this budget (see
        :class:`Meter` for ``sampled_logprobs``)."""
        return Meter(generator, self, sampled_logprobs=sampled_logprobs)

    @contextmanager
    def forward_pass(self, model: ModelInfo, lengths: Sequence[int]) -> Iterator[None]:
        """Meter one batched forward pass of ``model`` over sequences of ``lengths`` tokens (a scoring model
        such as a Hugging Face PRM, which reads whole sequences and generates nothing).

        Its cost is reserved before the pass (so a budget that cannot pay refuses it with
        :class:`BudgetExhausted` before any compute) and recorded under the model's own name after it:
        every token as a computed prompt token, FLOPs by :func:`span_flops` from position 0.
        """
        tokens, flops = forward_cost(model, lengths)
        with self._lock:
            tok_left, fl_left = self._remaining_locked()
            if tokens > tok_left or flops > fl_left:
                raise BudgetExhausted(
                    f"budget exhausted: {tok_left:.0f} tokens / {fl_left:.3g} FLOPs left cannot pay for "
                    f"{model.name!r} to read {tokens} tokens ({flops:.3g} FLOPs)"
                )
            self._reserved_tokens += tokens
            self._reserved_flops += flops
        done = False
        try:
            yield
            done = True
        finally:
            with self._lock:
                self._reserved_tokens -= tokens
                self._reserved_flops -= flops
                if done:
                    spent = ModelUsage(1, tokens, 0, 0, 0, flops)
                    self._spent[model.name] = self._spent.get(model.name, ModelUsage()) + spent

    # -- used by Meter --------------------------------------------------------------------------------
    def _reserve(self, plan: _Plan) -> SamplingParams:
        with self._lock:
            tok_left, fl_left = self._remaining_locked()
            cap = plan.cap(tok_left, fl_left)
            if cap < 1:
                raise BudgetExhausted(
                    f"budget exhausted: {tok_left:.0f} tokens / {fl_left:.3g} FLOPs left cannot pay for the "
                    f"prompts of this call plus one token per sample; raise --budget-tokens/--budget-flops "
                    "or ask for fewer samples"
                )
            self._reserved_tokens += plan.tokens(cap)
            self._reserved_flops += plan.flops(cap)
            return replace(plan.params, max_tokens=cap)

    def _settle(self, plan: _Plan, cap: int, model: str, spent: ModelUsage | None) -> None:
        with self._lock:
            self._reserved_tokens -= plan.tokens(cap)
            self._reserved_flops -= plan.flops(cap)
            if spent is not None:
                self._spent[model] = self._spent.get(model, ModelUsage()) + spent


@dataclass(frozen=True)
class _Plan:
    """The worst case of one generate call, as a function of the per-sample token cap."""

    model: ModelInfo
    prompt_lens: tuple[int, ...]
    prefills: tuple[tuple[Span, ...], ...]
    """Per prompt, each prefill the call may run: (first position, tokens computed)."""
    params: SamplingParams

    def tokens(self, cap: int) -> int:
        computed = sum(count for spans in self.prefills for _, count in spans)
        return computed + len(self.prompt_lens) * self.params.n * cap

    def flops(self, cap: int) -> float:
        total = 0.0
        for length, spans in zip(self.prompt_lens, self.prefills, strict=True):
            total += math.fsum(span_flops(self.model, start, count) for start, count in spans)
            total += self.params.n * span_flops(self.model, length, cap)
        return total

    def cap(self, tok_left: float, fl_left: float) -> int:
        """Largest per-sample max_tokens (<= params.max_tokens) whose worst case fits; may be < 1."""
        hi = self.params.max_tokens
        if self.tokens(hi) <= tok_left and self.flops(hi) <= fl_left:
            return hi
        lo = 0  # invariant: cap lo fits (or lo == 0), cap hi+1 does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.tokens(mid) <= tok_left and self.flops(mid) <= fl_left:
                lo = mid
            else:
                hi = mid - 1
        return lo


class Meter(Wrapper):
    """A :class:`Generator` that counts what the wrapped generator spends and enforces the budget.

    It is the only place usage is counted. Strategies receive a meter and may ask it what is left.

    With ``sampled_logprobs`` every call that asks for no logprobs asks for the sampled tokens' own
    (``logprobs=0``, marked ``logprobs_optional``: a draw recorded without them may still serve it) when
    the backend gives them: an evaluation stores a logprob summary with every sample that way. What is
    sampled does not change (the logprobs are read off the raw logits).
    """

    def __init__(
        self, generator: Generator, ledger: Ledger | None = None, *, sampled_logprobs: bool = False
    ) -> None:
        super().__init__(generator)  # tokenizer calls pass through free of charge
        self.ledger = ledger or Ledger()
        self.sampled_logprobs = sampled_logprobs

    def usage(self) -> Usage:
        return self.ledger.usage()

    def remaining(self) -> tuple[float, float]:
        return self.ledger.remaining()

    def max_tokens_affordable(self, prompts: Sequence[Prompt], params: SamplingParams) -> int:
        """The per-sample max_tokens this call would get now (0 if it would be refused)."""
        hold = self._hold(prompts, params.n)
        try:
            plan = self._plan(prompts, params, hold)
        finally:
            if hold is not None:
                hold.release()
        return max(0, plan.cap(*self.ledger.remaining()))

    def _hold(self, prompts: Sequence[Prompt], n: int) -> PrefixHold | None:
        """The backend's promise of what it will compute, when it keeps a prefix cache it can promise on."""
        inner = self.inner
        if inner.capabilities.prefix_cache and isinstance(inner, PrefixReuse):
            return inner.hold_prefixes(prompts, n)
        return None

    def _plan(self, prompts: Sequence[Prompt], params: SamplingParams, hold: PrefixHold | None) -> _Plan:
        lens = tuple(self.inner.count_prompt_tokens(prompts))
        if hold is not None:
            prefills = hold.spans
        else:  # no promise: every prompt fully computed, once per request the backend splits n into
            copies = self.inner.capabilities.prefills(params.n)
            prefills = tuple(((0, length),) * copies for length in lens)
        return _Plan(self.inner.model, lens, prefills, params)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        if not prompts:
            return []
        try:
            return self._generate_once(prompts, params)
        except PrefixLost:
            # the engine gave a promised prefix's slot to other work between the reservation and the
            # request (what ran is booked): ask once more, on a fresh promise, before it counts as the
            # budget refusing; callers treat BudgetExhausted as "stop drawing", which this is not
            return self._generate_once(prompts, params)

    def _generate_once(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        if self.sampled_logprobs and params.logprobs is None and self.inner.capabilities.logprobs > 0:
            params = replace(params, logprobs=0, logprobs_optional=True)
        hold = self._hold(prompts, params.n)
        try:
            plan = self._plan(prompts, params, hold)
            capped = self.ledger._reserve(plan)
            spent: ModelUsage | None = None
            try:
                if hold is not None:
                    assert isinstance(self.inner, PrefixReuse)
                    out = self.inner.generate_held(prompts, capped, hold)
                else:
                    out = self.inner.generate(prompts, capped)
                spent = self._count(out)
                return out
            except PrefixLost as e:  # the call's other requests ran: book them
                spent = self._count([list(e.completions)])
                raise
            finally:
                self.ledger._settle(plan, capped.max_tokens, self.inner.model.name, spent)
        finally:
            if hold is not None:
                hold.release()

    def _count(self, out: list[list[Completion]]) -> ModelUsage:
        prompt = cached = completion = think = 0
        flops = 0.0
        for group in out:
            for c in group:
                prompt += c.computed_prompt_tokens
                cached += c.cached_prompt_tokens
                completion += len(c.token_ids)
                think += c.reasoning_tokens
                flops += completion_flops(self.inner.model, c)
        # inside reasoning_phase() every generated token is thinking; elsewhere, what sat in <think> blocks
        reasoning = completion if _reasoning.get() else think
        return ModelUsage(1, prompt, cached, completion, reasoning, flops)
