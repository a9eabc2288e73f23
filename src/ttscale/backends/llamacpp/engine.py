"""The embedded engine: one thread owns the llama.cpp context and decodes every request together.

Requests (token ids + sampling params + n) arrive from any thread through a queue. Each step the engine
admits what fits (sequence slots; each slot owns a KV stream sized for a whole sequence), prefills each new prompt once (only the part not already
in the prefix cache), forks the prompt's KV to the request's n samples, and then decodes one token for
every live sequence of every request in a single ``llama_decode`` call: continuous batching. Sampling
uses llama.cpp's own sampler chain per sequence (a per-sequence seed); Python only touches the logits when
a request asks for logprobs or brings logits processors.

Failure is per request: an exception in one request's processor, criterion or sampler fails that
request's future and frees its slots; the other sequences in the batch carry on.
"""

from __future__ import annotations

import codecs
import itertools
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import EngineClosed, GenerationError, PrefixLost
from ...types import Completion, FinishReason, SamplingParams, TokenLogprob
from .native import NativeModel
from .slots import Pin, Slot, SlotTable


@dataclass(eq=False)
class Request:
    """One prompt and its n samples, as the engine tracks it."""

    tokens: list[int]
    params: SamplingParams
    n: int
    max_new: int
    seed: int
    allowance: int | None = None
    """Most prompt tokens this request may compute (what the meter reserved from a :class:`Pin`'s promise)."""
    pin: Pin | None = None
    dependents: list[Request] = field(default_factory=list)
    """Later requests promised this request's prompt as their prefix; its slot is pinned for each."""
    home: Slot | None = None
    """The slot this request prefilled its prompt into, once started; ``home_epoch`` its content's epoch."""
    home_epoch: int = -1
    future: Future[list[Completion]] = field(default_factory=Future)
    outputs: list[Completion | None] = field(default_factory=list)
    live: int = 0
    done: bool = False


@dataclass(eq=False)
class Sequence_:
    """One sample being generated."""

    req: Request
    index: int
    slot: Slot
    chain: Any
    cached: int
    pos: int
    pending: int = -1
    generated: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )


@dataclass
class EngineStats:
    """Counters since the engine started (read by benchmarks)."""

    prompt_tokens_computed: int = 0
    prompt_tokens_cached: int = 0
    decode_steps: int = 0
    tokens_generated: int = 0
    decoded_tokens: int = 0
    """Tokens run through decode steps (one per live sequence per step)."""
    prefill_seconds: float = 0.0
    step_seconds: float = 0.0
    """Time in decode steps: ``llama_decode`` plus sampling and bookkeeping of every live sequence."""
    evictions: int = 0
    slot_moves: int = 0
    """Streams moved to keep live sequences on consecutive ids (see :mod:`.slots`)."""
    id_runs: int = 0
    """Runs of consecutive sequence ids summed over decode steps: llama.cpp's passes (1 per step is ideal)."""


class Engine:
    """Owns a :class:`NativeModel` and runs the scheduling loop on its own thread."""

    def __init__(
        self,
        native: NativeModel,
        max_seq_len: int,
        prefix_cache: bool = True,
        max_cached: int | None = None,
        compact: bool = True,
    ) -> None:
        self.native = native
        self.max_seq_len = max_seq_len
        self.prefix_cache = prefix_cache
        self.max_cached = native.n_seq_max if max_cached is None else max_cached
        self.compact = compact
        self.stats = EngineStats()
        self._slots = SlotTable(native.n_seq_max)
        # pins (any thread) and evictions (engine thread) are decided under this lock, so a pin taken is
        # seen by every later eviction; token lists are only read outside it (an estimate may lag)
        self._slot_lock = threading.RLock()
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._waiting: deque[Request] = deque()
        self._active: list[Sequence_] = []
        self._closed = threading.Event()
        # submit checks and enqueues under this lock, and the loop closes under it before failing what is
        # queued: a request is either refused or failed, never left waiting on a stopped loop
        self._submit_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ttscale-llamacpp-engine", daemon=True)
        self._thread.start()

    # -- public, any thread --------------------------------------------------------------------------------
    def submit(
        self,
        tokens: list[int],
        params: SamplingParams,
        n: int,
        seed: int,
        *,
        allowance: int | None = None,
        pin: Pin | None = None,
        donor: Request | None = None,
    ) -> Request:
        """Queue a request and return it (its ``future`` resolves to its n completions in sample order).

        With ``allowance``, the request computes at most that many prompt tokens plus its samples' tokens:
        if its prefix was lost, the excess comes off its samples' max_new (or it fails with
        :class:`PrefixLost` before computing, when that leaves nothing). ``pin`` (a cached prefix) is
        released at admission. ``donor`` is an earlier request of the same call whose prompt is this
        one's prefix: admission is first in, first out, so the donor starts first, and its slot is
        pinned from then until this request is admitted.
        """
        if n > self.native.n_seq_max:
            raise GenerationError(f"n={n} exceeds the engine's {self.native.n_seq_max} sequence slots")
        max_new = min(params.max_tokens, self.max_seq_len - len(tokens))
        req = Request(tokens, params, n, max_new, seed, allowance, pin, outputs=[None] * n)
        if donor is not None:
            with self._slot_lock:  # the donor may be starting on the engine thread right now
                if donor.home is None:
                    donor.dependents.append(req)
                elif donor.home.epoch == donor.home_epoch and req.pin is None:
                    req.pin = self._slots.pin(donor.home)
        with self._submit_lock:
            if self._closed.is_set():  # pins no longer matter: the engine frees everything on closing
                raise EngineClosed(self._closed_reason)
            self._queue.put(req)
        return req

    def pin_prefix(self, tokens: list[int]) -> tuple[Pin | None, int]:
        """The cached prefix a request for ``tokens`` would reuse now, pinned, and its length."""
        if not self.prefix_cache:
            return None, 0
        with self._slot_lock:
            slot, lcp = self._slots.best_prefix(tokens)
            return (self._slots.pin(slot) if slot is not None else None), lcp

    def unpin(self, pin: Pin) -> None:
        with self._slot_lock:
            self._slots.unpin(pin)

    _closed_reason = "the engine is closed; create a new generator"

    def close(self) -> None:
        """Stop the loop, fail unfinished requests with :class:`EngineClosed`, free llama.cpp memory."""
        with self._submit_lock:
            if not self._closed.is_set():
                self._closed.set()
                self._queue.put(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    # -- the loop, engine thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                self._admit()
                if self._active:
                    self._step()
        except BaseException as exc:  # a bug or a llama.cpp failure: nobody may wait forever
            # EngineClosed, not a per-request failure: an evaluation stops (resumable) instead of
            # recording every problem in flight as failed, and later requests are refused, not queued
            self._closed_reason = f"the engine stopped on an error: {exc!r}; create a new generator"
            self._close_and_fail(EngineClosed(self._closed_reason))
            raise
        finally:
            self._close_and_fail(EngineClosed("the engine was closed before this request finished"))
            self.native.close()

    def _close_and_fail(self, exc: Exception) -> None:
        with self._submit_lock:
            self._closed.set()
        self._fail_everything(exc)

    def _fail_everything(self, exc: Exception) -> None:
        reqs = {s.req for s in self._active} | set(self._waiting)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                reqs.add(item)
        for req in reqs:
            self._fail(req, exc)
        self._waiting.clear()

    def _admit(self) -> None:
        block = not self._active and not self._waiting
        while True:
            try:
                item = self._queue.get(block=block)
            except queue.Empty:
                break
            if item is None:
                return
            self._waiting.append(item)
            block = False
        while self._waiting and self._fits(self._waiting[0]):
            req = self._waiting.popleft()
            if not req.future.set_running_or_notify_cancel():
                continue
            try:
                self._start(req)
            except Exception as exc:  # noqa: BLE001 - isolate a bad request (e.g. its logits processor)
                self._fail(req, exc)

    def _fits(self, req: Request) -> bool:
        if req.future.cancelled():
            return True  # admitted only to be dropped
        if not self._active:
            return True  # alone it always fits: submit() checked n against the slots
        # each slot has its own KV stream sized for a whole sequence, so slots are the only limit
        return self._slots.available() >= req.n + 1

    def _start(self, req: Request) -> None:
        """Prefill the prompt (reusing a cached prefix), fork it n ways, draw every sample's first token."""
        with self._slot_lock:
            if req.pin is not None:
                self._slots.unpin(req.pin)
            source, lcp = self._slots.best_prefix(req.tokens) if self.prefix_cache else (None, 0)
            if self._slots.available(keep=source) < req.n:
                source, lcp = None, 0  # keeping the source would leave too few slots for the samples
            lcp = min(lcp, len(req.tokens) - 1)  # the last prompt token is always recomputed for its logits
            self._keep_promise(req, len(req.tokens) - lcp)
            req.live = req.n
            first = self._take_slot(keep=source)
            req.home, req.home_epoch = first, first.epoch
            for dep in req.dependents:  # they start after this one; keep its prompt for them until then
                if dep.pin is None and not dep.done:
                    dep.pin = self._slots.pin(first)
            req.dependents.clear()
        try:
            if source is not None and lcp > 0:
                self.native.seq_copy(source.id, first.id)  # the whole source, then drop what differs
                self.native.seq_remove(first.id, lcp, -1)
            first.tokens = list(req.tokens[:lcp])
            t0 = time.perf_counter()
            row = self._prefill(first, req.tokens[lcp:])
            self.stats.prefill_seconds += time.perf_counter() - t0
        except BaseException:
            first.active = False
            with self._slot_lock:
                self._slots.clear(first)
            self.native.seq_remove(first.id)
            raise
        self.stats.prompt_tokens_computed += len(req.tokens) - lcp
        self.stats.prompt_tokens_cached += lcp + (req.n - 1) * len(req.tokens)
        seqs = [self._new_sequence(req, 0, first, lcp)]
        for i in range(1, req.n):
            slot = self._take_slot(keep=first)
            self.native.seq_copy(first.id, slot.id)
            slot.tokens = list(req.tokens)
            seqs.append(self._new_sequence(req, i, slot, len(req.tokens)))
        self._active.extend(seqs)
        base = self.native.logits(row).copy() if req.params.logits_processors else None
        for seq in seqs:
            if req.done:
                break
            if base is not None:
                self.native.logits(row)[:] = base  # each sample's processors start from the model's logits
            self._sample(seq, row)

    def _keep_promise(self, req: Request, computed: int) -> None:
        """Hold ``req`` to its allowance: a lost prefix is paid for by shorter samples, or refused."""
        if req.allowance is None or computed <= req.allowance:
            return
        cut = -(-(computed - req.allowance) // req.n)  # ceil: n samples give up at least the excess
        if req.max_new - cut < 1:
            raise PrefixLost(
                f"the cached prefix this request was promised was evicted before it started: its prompt "
                f"needs {computed} tokens computed, {computed - req.allowance} more than the budget reserved; "
                "refused before computing (a larger --budget-tokens or fewer problems in flight avoids it)"
            )
        req.max_new -= cut

    def _new_sequence(self, req: Request, i: int, slot: Slot, cached: int) -> Sequence_:
        chain = self.native.sampler(req.params, req.seed + i)
        return Sequence_(req, i, slot, chain, cached, pos=len(req.tokens))

    def _take_slot(self, keep: Slot | None) -> Slot:
        with self._slot_lock:
            slot, evict = self._slots.take(keep=keep)
            if evict:
                self.native.seq_remove(slot.id)
                self.stats.evictions += 1
                self._slots.clear(slot)
            slot.active = True
            self._slots.touch(slot)
            return slot

    def _prefill(self, slot: Slot, suffix: list[int]) -> int:
        """Decode ``suffix`` into ``slot`` in chunks; returns the batch row holding the last logits."""
        cap = self.native.batch_cap
        row = 0
        for start in range(0, len(suffix), cap):
            chunk = suffix[start : start + cap]
            base = len(slot.tokens)
            entries = [(t, base + j, slot.id, start + j == len(suffix) - 1) for j, t in enumerate(chunk)]
            self._decode(entries)
            slot.tokens.extend(chunk)
            row = len(chunk) - 1
        return row

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """``llama_decode``; every stream is sized for a whole sequence, so a failure is a real error."""
        code = self.native.decode(entries)
        if code != 0:
            raise GenerationError(f"llama_decode failed with code {code}")

    def _step(self) -> None:
        """One decode of one token for every live sequence, then one sampling round."""
        t0 = time.perf_counter()
        if self.compact:
            self._compact()
        # in id order: llama.cpp takes a micro-batch per run of consecutive ids in the order given
        batch = sorted(self._active, key=lambda s: s.slot.id)  # at most n_seq_max <= batch capacity
        self.stats.id_runs += 1 + sum(b.slot.id != a.slot.id + 1 for a, b in itertools.pairwise(batch))
        try:
            self._decode([(s.pending, s.pos, s.slot.id, True) for s in batch])
        except GenerationError as exc:  # fail the newest request, retry the others next step
            self._fail(self._active[-1].req, exc)
            return
        self.stats.decode_steps += 1
        self.stats.decoded_tokens += len(batch)
        for seq in batch:  # the decode put every pending token in the KV: record them all first, since
            seq.slot.tokens.append(seq.pending)  # a failed sample below may free (and clear) sibling slots
            seq.pos += 1
        for row, seq in enumerate(batch):
            if not seq.req.done:
                self._sample(seq, row)
        self.stats.step_seconds += time.perf_counter() - t0

    def _compact(self) -> None:
        """Move streams so the live sequences sit on consecutive ids (the copies run at the next decode)."""
        with self._slot_lock:
            plan = self._slots.compaction()
            for slot in plan.evict:  # cached prefixes in the way, with no free slot to move them to
                self.native.seq_remove(slot.id)
                self._slots.clear(slot)
                self.stats.evictions += 1
            for src, dst in plan.moves:
                old, new = self._slots.move(src, dst)
                self.native.seq_copy(old, new)
                self.native.seq_remove(old)
                self.stats.slot_moves += 1

    def _sample(self, seq: Sequence_, row: int) -> None:
        params = seq.req.params
        try:
            if params.logprobs is not None or params.logits_processors:
                logits = self.native.logits(row)
                record = _logprob_record(logits, params.logprobs) if params.logprobs is not None else None
                for proc in params.logits_processors:
                    proc(seq.generated, logits)
            else:
                record = None
            tok = self.native.sample(seq.chain, row)
            if record is not None and not self.native.is_eog(tok):  # records match the returned tokens
                seq.logprobs.append(record.with_token(tok))
            self._advance(seq, tok)
        except Exception as exc:  # noqa: BLE001 - one request's failure must not stop the batch
            self._fail(seq.req, GenerationError(f"request failed while sampling: {exc!r}"))

    def _advance(self, seq: Sequence_, tok: int) -> None:
        params = seq.req.params
        if self.native.is_eog(tok):
            return self._finish(seq, "eos")
        seq.generated.append(tok)
        self.stats.tokens_generated += 1
        before = len(seq.text)
        seq.text += seq.decoder.decode(self.native.piece(tok))
        hit = _find_stop(seq.text, before, params.stop)
        if hit is not None:
            seq.text = seq.text[: hit[0]]
            return self._finish(seq, "stop", hit[1])
        if any(crit(seq.generated, seq.logprobs) for crit in params.stopping_criteria):
            return self._finish(seq, "criterion")
        if len(seq.generated) >= seq.req.max_new:
            return self._finish(seq, "length")
        seq.pending = tok

    def _finish(self, seq: Sequence_, reason: FinishReason, stop: str | None = None) -> None:
        req = seq.req
        if reason != "stop":
            seq.text += seq.decoder.decode(b"", final=True)
        req.outputs[seq.index] = Completion(
            text=seq.text,
            token_ids=tuple(seq.generated),
            finish_reason=reason,
            stop_string=stop,
            logprobs=tuple(seq.logprobs) if req.params.logprobs is not None else None,
            prompt_tokens=len(req.tokens),
            cached_prompt_tokens=seq.cached,
        )
        self._release(seq)
        if req.live == 0 and not req.done:
            self._retire(req)
            req.future.set_result([c for c in req.outputs if c is not None])

    def _release(self, seq: Sequence_) -> None:
        """Stop generating ``seq``; its slot stays cached (its KV is a reusable prefix)."""
        if seq in self._active:
            self._active.remove(seq)
            self.native.free_sampler(seq.chain)
            seq.slot.active = False
            self._slots.touch(seq.slot)
            seq.req.live -= 1
            self._trim_cache()

    def _trim_cache(self) -> None:
        """Free the least recently used finished sequences beyond ``max_cached`` (pinned ones are kept)."""
        with self._slot_lock:
            cached = [s for s in self._slots.cached() if not s.pins]
            for slot in cached[: max(0, len(cached) - self.max_cached)]:
                self.native.seq_remove(slot.id)
                self._slots.clear(slot)
                self.stats.evictions += 1

    def _retire(self, req: Request) -> None:
        """Mark ``req`` finished."""
        req.done = True

    def _fail(self, req: Request, exc: BaseException) -> None:
        if req.pin is not None:
            self.unpin(req.pin)
        for seq in [s for s in self._active if s.req is req]:
            self._release(seq)
        self._retire(req)
        if not req.future.done():
            req.future.set_exception(exc)


@dataclass(frozen=True)
class _PartialLogprob:
    logits: np.ndarray[Any, Any]
    """A copy of the model's raw logits (processors may rewrite the live buffer after this record)."""
    log_z: float
    top: tuple[tuple[int, float], ...]

    def with_token(self, tok: int) -> TokenLogprob:
        return TokenLogprob(tok, float(self.logits[tok]) - self.log_z, self.top)


def _logprob_record(logits: np.ndarray[Any, Any], k: int | None) -> _PartialLogprob:
    """Log-softmax of the model's raw logits (before processors, temperature or truncation), and its top k.

    Runs once per token per sequence on the engine thread, so it is kept to ~0.2 ms for a 152k vocabulary
    (a float64 log-softmax plus ``argpartition`` took ~5 ms, doubling a 48-sequence decode step): the log
    partition function is one float32 ``exp`` with a float64 sum, and only the top-k candidates are sorted.
    """
    raw = np.array(logits, dtype=np.float32, copy=True)
    m = float(raw.max())
    log_z = m + float(np.log(np.exp(raw - m).sum(dtype=np.float64)))
    top: tuple[tuple[int, float], ...] = ()
    if k:
        idx = _top_indices(raw, k)
        top = tuple((int(i), float(raw[i]) - log_z) for i in idx)
    return _PartialLogprob(raw, log_z, top)


def _top_indices(x: np.ndarray[Any, Any], k: int) -> np.ndarray[Any, Any]:
    """Indices of the ``k`` largest values, largest first (stable among ties).

    The k-th largest of a strided subsample is a lower bound on the k-th largest overall, so every top-k
    entry passes that threshold; only the few that pass are partitioned, not the whole vocabulary.
    """
    k = min(k, x.size)
    sample = x[::64]
    cand = np.flatnonzero(x >= np.partition(sample, -k)[-k]) if k < sample.size else np.arange(x.size)
    if k < cand.size:  # keep every value tied with the k-th so ties break by index, not partition order
        cand = cand[x[cand] >= np.partition(x[cand], -k)[-k]]
    order = np.lexsort((cand, -x[cand]))  # by value descending, then index ascending
    return cand[order[:k]]


def _find_stop(text: str, before: int, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """Earliest stop string that ends in the newly added text, as (position, string)."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s, max(0, before - len(s) + 1))
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    return best
