"""The exceptions ttscale raises, as one small tree.

Every error names what went wrong and says what to do about it::

    TTScaleError
    ├── ConfigError            bad parameter, unknown name (lists what exists), invalid shape
    │   └── UnknownNameError   unknown model / strategy / parameter / dataset, with did-you-mean
    ├── CapabilityError        a backend lacks what a strategy needs (checked at construction)
    ├── BudgetExhausted        the compute budget cannot pay for another call
    │   └── PrefixLost         a reserved cached prefix was evicted; the call would cost more than reserved
    ├── ModelStoreError        a model cannot be fetched, assembled or verified
    │   └── ChecksumMismatch   the assembled file is not the file the catalog names
    ├── GenerationError        a backend failed to generate (one request, not the batch)
    │   ├── PromptTooLong      a prompt does not fit the context, refused before decoding
    │   └── EngineClosed       the engine was shut down (or stopped on an error) while a request waited
    ├── WorkerLost             a worker of a distributed run died or did not start (the run can resume)
    ├── StoreError             the run store cannot be opened, written or read (names the path)
    └── TraceFileError         a trace file cannot be written, or read back as a ttscale trace
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class TTScaleError(Exception):
    """Base of every error ttscale raises on purpose."""


class ConfigError(TTScaleError, ValueError):
    """A parameter, name or shape is invalid. The message says which and what is allowed."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not registered. Lists the known names and the closest matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        import difflib

        self.kind, self.name = kind, name
        self.known = sorted(known)
        # names it begins (a prefix: "smollm" for "smollm2-135m-instruct"), then near spellings
        starts = [k for k in self.known if name and k.lower().startswith(name.lower())]
        close = list(dict.fromkeys([*starts, *difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)]))[
            :3
        ]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(self.known) if self.known else "(none)"
        super().__init__(f"unknown {kind} {name!r}.{hint} Known {kind} names: {listing}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class CapabilityError(TTScaleError):
    """The backend cannot do something the caller needs (for example logprobs or prefix continuation)."""


class BudgetExhausted(TTScaleError):
    """The remaining budget cannot pay for even one more token of the requested call."""


class PrefixLost(BudgetExhausted):
    """A request's cached prefix was evicted between the budget reservation and the request's admission,
    and computing the prompt in full would spend more than was reserved, so it was refused before
    computing anything. ``completions`` holds what the call's other requests produced (the meter books
    their spending)."""

    def __init__(self, message: str, completions: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.completions = completions


class ModelStoreError(TTScaleError):
    """A model could not be pulled, assembled, found or verified."""


class ChecksumMismatch(ModelStoreError):
    """The assembled model file's SHA-256 differs from the catalog's; the file was not kept."""


class GenerationError(TTScaleError):
    """A request failed inside a backend. Other requests in the same batch are unaffected."""


class PromptTooLong(GenerationError, ConfigError):
    """A prompt (plus at least one generated token) does not fit the model's context."""


class EngineClosed(GenerationError):
    """The engine was closed before this request finished."""


class WorkerLost(TTScaleError):
    """A worker process of a distributed evaluation died after its retries, or did not start in time. The
    run stops; every problem finished so far is stored, so ``--resume`` continues it."""


class StoreError(TTScaleError):
    """The evaluation run store cannot be opened, written or read; the message names the file."""


class TraceFileError(TTScaleError):
    """An output file (trace, trace page, report) cannot be written, or a file given as a trace is not one
    ``ttscale solve --trace`` wrote; the message names the path."""
