"""Sequence slots and the prefix cache over them.

The engine's context has ``n_seq_max`` sequence ids, each with its own KV stream of ``seq_len`` cells. A
slot is a sequence id plus the token ids whose KV it holds at positions ``0 .. len(tokens)-1``. A slot is
*free* (holds nothing), *active* (a sample is being generated in it) or *cached* (a finished sequence
kept so that a later prompt sharing its prefix can copy that prefix instead of recomputing it).

A new prompt looks for the slot with the longest common token prefix, active or cached, copies that
slot's stream into its own (``llama_memory_seq_cp``; llama.cpp copies whole streams between sequences,
so the engine then removes the positions past the common prefix) and prefills only the rest. Cached slots
are evicted least-recently-used first when a slot is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    """One sequence id of the llama.cpp context and what its KV holds."""

    id: int
    tokens: list[int] = field(default_factory=list)
    active: bool = False
    last_used: int = 0

    @property
    def free(self) -> bool:
        return not self.active and not self.tokens


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]: bisect on slice equality, fast in C
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class SlotTable:
    """Bookkeeping of slots; the engine performs the matching llama.cpp memory operations."""

    def __init__(self, n_slots: int) -> None:
        self.slots = [Slot(i) for i in range(n_slots)]
        self._tick = 0

    def touch(self, slot: Slot) -> None:
        self._tick += 1
        slot.last_used = self._tick

    def best_prefix(self, tokens: Sequence[int]) -> tuple[Slot | None, int]:
        """The slot sharing the longest token prefix with ``tokens``, and that length (0 if none)."""
        best: Slot | None = None
        best_len = 0
        for slot in self.slots:
            if slot.tokens:
                k = common_prefix(slot.tokens, tokens)
                if k > best_len:
                    best, best_len = slot, k
        return best, best_len

    def available(self, keep: Slot | None = None) -> int:
        """Slots that are free or could be evicted (cached), not counting ``keep``."""
        return sum(1 for s in self.slots if not s.active and s is not keep)

    def cached(self) -> list[Slot]:
        """Cached (evictable) slots, least recently used first."""
        return sorted((s for s in self.slots if not s.active and s.tokens), key=lambda s: s.last_used)

    def take(self, keep: Slot | None = None) -> tuple[Slot, bool]:
        """A slot to use: a free one, else the least recently used cached one (not ``keep``).

        Returns the slot and whether it held a cached sequence the caller must remove from the KV cache.
        """
        for slot in self.slots:
            if slot.free and slot is not keep:
                return slot, False
        victims = [s for s in self.cached() if s is not keep]
        if not victims:
            raise RuntimeError("no sequence slot available")  # callers check available() first
        return victims[0], True
