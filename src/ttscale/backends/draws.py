"""Record sampled draws in a file and replay identical ones: score one draw with several verifiers.

Comparing verifiers (best-of-n by an LLM judge, by self-certainty, ...) means drawing the same samples
again for each, since the draw is seeded: ``seed + i`` for sample i. :class:`DrawReplay` wraps a generator
and keeps every seeded call it passes on in a :class:`DrawFile` (SQLite); a later call with the same
model, prompt and sampling parameters gets the recorded completions back without decoding anything. This
is how search-and-learn compares its selection methods: generate once, score many times. It also pairs
the comparison (every verifier picks from the very same samples), which makes differences less noisy.

Accounting. A replayed completion carries the token counts it was generated with (prompt computed and
cached, generated, thinking), and the meter books it from those exactly as it booked it when it was drawn:
a replayed run reports what its method costs, not the seconds the replay took. One exception: a prompt
is booked at no more than the engine now promises to compute of it (the meter reserved the call's
budget from that promise), so a draw recorded on a colder cache costs what its prompt would cost here.
Wall time and latency of a replayed run measure the replay and the calls not found, nothing more.

Greedy calls (temperature 0) are keyed without their seed, which decides nothing there. Calls are
matched per prompt, but replayed only whole: if one prompt of a call is missing, the call is drawn.

What is replayed. A call whose prompts are all recorded for its key (model name and weights checksum,
every message, the assistant prefix, and every sampling parameter but ``logprobs``). A recording with at
least the logprobs asked for serves the call, cut down to what was asked; one with fewer is drawn again
and replaced, unless the call marks its logprobs optional (``SamplingParams.logprobs_optional``: an
evaluation's meter asking for the sampled tokens' logprobs for its summaries), which any recording
serves. Never replayed, always passed on: calls without a seed at a temperature above 0 (each must be a
fresh sample), and calls with Python logits processors or stopping criteria (code, which no key can
name). The sampled tokens do not depend on the logprobs asked for: the engine reads them off the raw
logits beside sampling.

Format (version :data:`FORMAT_VERSION` in ``meta``; a file of another version is refused)::

    meta(key TEXT PRIMARY KEY, value TEXT)
    draws(key TEXT PRIMARY KEY, model TEXT, logprobs INTEGER, payload BLOB, created_at REAL)

``payload`` is the zlib-compressed JSON list of the prompt's completions; ``logprobs`` is the top-k the
recording carries, -1 for none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import CapabilityError, StoreError
from ..types import Completion, Prompt, SamplingParams, TokenLogprob
from .base import Generator, ModelInfo, PrefixHold, PrefixReuse, Wrapper, model_checksum, prompt_seed

FORMAT_VERSION = 1

_log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS draws (key TEXT PRIMARY KEY, model TEXT NOT NULL, logprobs INTEGER NOT NULL,"
    " payload BLOB NOT NULL, created_at REAL NOT NULL)",
)


def _level(logprobs: int | None) -> int:
    """The top-k a call asks for or a recording carries, with -1 for none."""
    return -1 if logprobs is None else logprobs


def replayable(params: SamplingParams) -> bool:
    """Whether a call with ``params`` may be served from a recording (see the module docstring)."""
    seeded = params.seed is not None or params.temperature == 0
    return seeded and not params.logits_processors and not params.stopping_criteria


def draw_key(model: ModelInfo, prompt: Prompt, params: SamplingParams, index: int = 0) -> str:
    """What identifies the draw of prompt ``index`` of a call: everything that decides its sampled tokens,
    its own seed included (:func:`~ttscale.backends.base.prompt_seed`; greedy: no seed)."""
    seed = None if params.temperature == 0 else prompt_seed(params, index)
    spec = {
        "model": [model.name, model.sha256],
        "messages": [[m.role, m.content] for m in prompt.messages],
        "prefix": prompt.assistant_prefix,
        "params": [
            params.n,
            params.max_tokens,
            params.temperature,
            params.top_p,
            params.top_k,
            params.min_p,
            list(params.stop),
            seed,
            [list(b) for b in params.logit_bias],
        ],
    }
    return hashlib.sha256(json.dumps(spec, ensure_ascii=False).encode()).hexdigest()


def _encode(group: Sequence[Completion]) -> bytes:
    rows = [
        {
            "text": c.text,
            "token_ids": list(c.token_ids),
            "finish_reason": c.finish_reason,
            "stop_string": c.stop_string,
            "logprobs": None
            if c.logprobs is None
            else [[r.token_id, r.logprob, [list(t) for t in r.top]] for r in c.logprobs],
            "prompt_tokens": c.prompt_tokens,
            "cached_prompt_tokens": c.cached_prompt_tokens,
            "reasoning_tokens": c.reasoning_tokens,
        }
        for c in group
    ]
    return zlib.compress(json.dumps(rows).encode(), 6)


def _decode(payload: bytes, logprobs: int | None) -> list[Completion]:
    """The recorded completions, with logprobs cut to what the call asked for."""
    out = []
    for row in json.loads(zlib.decompress(payload)):
        records = None
        if logprobs is not None and row["logprobs"] is not None:
            records = tuple(
                TokenLogprob(tid, lp, tuple((int(a), float(b)) for a, b in top[:logprobs]))
                for tid, lp, top in row["logprobs"]
            )
        out.append(
            Completion(
                text=row["text"],
                token_ids=tuple(row["token_ids"]),
                finish_reason=row["finish_reason"],
                stop_string=row["stop_string"],
                logprobs=records,
                prompt_tokens=row["prompt_tokens"],
                cached_prompt_tokens=row["cached_prompt_tokens"],
                reasoning_tokens=row["reasoning_tokens"],
            )
        )
    return out


def _prompt_within(group: list[Completion], promised: int) -> list[Completion]:
    """``group`` with at most ``promised`` prompt tokens computed in all (the excess counted as cached)."""
    excess = sum(c.computed_prompt_tokens for c in group) - promised
    out = []
    for c in group:
        cut = min(max(excess, 0), c.computed_prompt_tokens)
        out.append(replace(c, cached_prompt_tokens=c.cached_prompt_tokens + cut) if cut else c)
        excess -= cut
    return out


class DrawFile:
    """The SQLite file of recorded draws; shared by the threads of one evaluation (one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot use draw file {self.path}: {e}; pass another --draws FILE") from None
        try:
            self._prepare()  # a real write: an unwritable file fails here, before any model loads
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self) -> None:
        conn = self._conn
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "draws" not in tables:
                raise StoreError(f"{self.path} is not a ttscale draw file; pass another --draws FILE")
            with conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),)
                )
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_opened', ?)", (str(time.time()),))
            found = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0]
        except sqlite3.Error as e:
            raise StoreError(f"cannot use draw file {self.path}: {e}; pass another --draws FILE") from None
        if found != str(FORMAT_VERSION):
            raise StoreError(
                f"draw file {self.path} has format version {found!r}; this ttscale reads version "
                f"{FORMAT_VERSION}. Pass another --draws FILE."
            )

    def get(self, key: str, logprobs: int | None, *, optional: bool = False) -> list[Completion] | None:
        """The recording for ``key`` if it carries at least ``logprobs`` (any, when they are ``optional``),
        else None."""
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT logprobs, payload FROM draws WHERE key = ?", (key,)
                ).fetchone()
        except sqlite3.Error as e:  # the file went bad under us: draw afresh rather than fail the solve
            _log.warning("could not read draws from %s (%s); drawing afresh", self.path, e)
            return None
        if row is None or (row[0] < _level(logprobs) and not optional):
            return None
        return _decode(row[1], logprobs)

    def put(self, key: str, model: str, logprobs: int | None, group: Sequence[Completion]) -> None:
        """Record one prompt's draw (replacing a recording with fewer logprobs)."""
        payload = _encode(group)
        try:
            with self._lock, self._conn:
                self._conn.execute(
                    "INSERT INTO draws VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET logprobs = "
                    "excluded.logprobs, payload = excluded.payload, created_at = excluded.created_at "
                    "WHERE excluded.logprobs > draws.logprobs",
                    (key, model, _level(logprobs), payload, time.time()),
                )
        except sqlite3.Error as e:  # a full disk, say: the draw itself is in hand, only its replay is lost
            _log.warning("could not record a draw in %s (%s); it will be drawn again next time", self.path, e)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@dataclass
class ReplayStats:
    """Calls served from the file and calls passed on (recorded if replayable)."""

    replayed: int = 0
    drawn: int = 0


class DrawReplay(Wrapper):
    """A generator that answers recorded calls from a :class:`DrawFile` and records the others.

    It keeps the wrapped generator's capabilities, tokenizer and prefix holds, so the meter reserves and
    books a call the same way whether it is replayed or not. It owns the file, not the generator: closing
    it closes both.
    """

    def __init__(self, inner: Generator, draws: DrawFile) -> None:
        super().__init__(inner)
        self.draws = draws
        # keyed by the weights' checksum: a model opened from a file is hashed, so a different file under
        # the same name draws afresh instead of being served another model's samples
        self._key_model = replace(inner.model, sha256=model_checksum(inner))
        self.stats = ReplayStats()
        self._lock = threading.Lock()

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        keys, found = self._lookup(prompts, params)
        if found is not None:
            return found
        return self._record(keys, params, self.inner.generate(prompts, params))

    def hold_prefixes(self, prompts: Sequence[Prompt], n: int) -> PrefixHold:
        if not isinstance(self.inner, PrefixReuse):
            raise CapabilityError(f"model {self.model.name!r} on this backend keeps no prefix cache")
        return self.inner.hold_prefixes(prompts, n)

    def generate_held(
        self, prompts: Sequence[Prompt], params: SamplingParams, hold: PrefixHold
    ) -> list[list[Completion]]:
        keys, found = self._lookup(prompts, params)
        if found is not None:
            hold.release()  # nothing will be computed: let the engine have its pins back now
            # the meter reserved what the engine now promises to compute of each prompt: a recording made
            # on a colder cache books no more than that (what this call's prompt would cost here)
            return [
                _prompt_within(g, sum(n for _, n in spans))
                for g, spans in zip(found, hold.spans, strict=True)
            ]
        if not isinstance(self.inner, PrefixReuse):
            raise CapabilityError(f"model {self.model.name!r} on this backend keeps no prefix cache")
        return self._record(keys, params, self.inner.generate_held(prompts, params, hold))

    def _lookup(
        self, prompts: Sequence[Prompt], params: SamplingParams
    ) -> tuple[list[str] | None, list[list[Completion]] | None]:
        """The call's keys (None: not replayable), and its recorded completions if every prompt has them."""
        if not replayable(params):
            with self._lock:
                self.stats.drawn += 1
            return None, None
        keys = [draw_key(self._key_model, p, params, i) for i, p in enumerate(prompts)]
        groups = [self.draws.get(k, params.logprobs, optional=params.logprobs_optional) for k in keys]
        hit = all(g is not None and len(g) == params.n for g in groups)
        with self._lock:
            if hit:
                self.stats.replayed += 1
            else:
                self.stats.drawn += 1
        return keys, ([g for g in groups if g is not None] if hit else None)

    def _record(
        self, keys: list[str] | None, params: SamplingParams, out: list[list[Completion]]
    ) -> list[list[Completion]]:
        if keys is not None:
            for key, group in zip(keys, out, strict=True):
                self.draws.put(key, self.model.name, params.logprobs, group)
        return out

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.draws.close()
