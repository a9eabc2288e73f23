"""Sequence slots and the prefix cache over them.

The engine's context has ``n_seq_max`` sequence ids, each with its own KV stream of ``seq_len`` cells. A
slot is a sequence id plus the token ids whose KV it holds at positions ``0 .. len(tokens)-1``. A slot is
*free* (holds nothing), *active* (a sample is being generated in it) or *cached* (a finished sequence
kept so that a later prompt sharing its prefix can copy that prefix instead of recomputing it).

A new prompt looks for the slot with the longest common token prefix, active or cached, copies that
slot's stream into its own (``llama_memory_seq_cp``; llama.cpp copies whole streams between sequences,
so the engine then removes the positions past the common prefix) and prefills only the rest. Cached slots
are evicted least-recently-used first when a slot is needed.

Live slots are kept packed at the lowest sequence ids. With a stream per sequence, llama.cpp splits a
batch into one micro-batch per run of consecutive sequence ids (each micro-batch reads all the weights
again), so 32 samples on ids 0..31 decode in one pass, and the same 32 on every other id in 32 passes:
measured 0.27-0.31 s against 0.90 s per step on the 0.5B model. Finished samples leave holes between
live ones; :meth:`SlotTable.compaction` plans moves that close them (a move copies a stream and swaps
the two slots' ids, so whoever holds a :class:`Slot` still holds its content).

A slot can be *pinned* by callers that were promised its prefix (the meter reserves a call's cost from
what the cache holds, see :class:`~ttscale.backends.base.PrefixHold`). Pins are soft: a pinned slot is
evicted only when no unpinned slot can be, so pins never block admission; the promised request then pays
for the lost prefix out of its own reservation.
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
    pins: int = 0
    """Holds (:class:`Pin`) whose requests were promised this slot's prefix and are not yet admitted."""
    epoch: int = 0
    """Bumped when the slot's content is dropped, so pins of the old content no longer count."""

    @property
    def free(self) -> bool:
        return not self.active and not self.tokens


@dataclass(eq=False)
class Pin:
    """One promise of a slot's prefix; consumed once, when its request is admitted or the call gives up."""

    slot: Slot
    epoch: int
    live: bool = True


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


@dataclass(frozen=True)
class Compaction:
    """One packing plan: the cached slots to clear first, then the moves to make."""

    evict: tuple[Slot, ...]
    moves: tuple[tuple[Slot, Slot], ...]


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
        """Cached (evictable) slots in eviction order: unpinned before pinned, least recently used first."""
        return sorted(
            (s for s in self.slots if not s.active and s.tokens), key=lambda s: (s.pins > 0, s.last_used)
        )

    def pin(self, slot: Slot) -> Pin:
        slot.pins += 1
        return Pin(slot, slot.epoch)

    def unpin(self, pin: Pin) -> None:
        """Drop ``pin`` (once; later calls, or a pin whose slot was cleared since, do nothing)."""
        if pin.live:
            pin.live = False
            if pin.epoch == pin.slot.epoch:
                pin.slot.pins -= 1

    def clear(self, slot: Slot) -> None:
        """Forget what ``slot`` holds (the engine removed its KV); its pins lapse."""
        slot.tokens = []
        slot.pins = 0
        slot.epoch += 1

    def move(self, src: Slot, dst: Slot) -> tuple[int, int]:
        """Give ``src``'s content the id of the free slot ``dst``: the two swap ids (and places in the
        table), so pins and sequences holding ``src`` follow its content. Returns (old id, new id); the
        engine copies that stream and clears the old one."""
        if not dst.free or dst.pins or src.free:
            raise RuntimeError(f"cannot move slot {src.id} into slot {dst.id}")  # compaction plans only these
        old, new = src.id, dst.id
        src.id, dst.id = new, old
        self.slots[new], self.slots[old] = src, dst
        return old, new

    def compaction(self) -> Compaction:
        """Evictions and moves (occupied slot, free slot) that pack the live slots at the lowest ids.

        Cached slots below the highest live id go to the highest free slots above it; live slots at the
        top go down into free slots below them. A slot vacated by a move is not a destination in the same
        plan: llama.cpp copies streams at the next decode, so a chain of copies could read a stream after
        it was overwritten.

        When a cached slot sits among the live ones and no free slot is left above them (the cache fills
        every slot the live sequences do not use), one cached prefix is given up: the least recently used
        unpinned one of the blocker itself and the cached slots above the live ones. Evicting the blocker
        leaves a hole for a live slot; evicting one above frees a place for the blocker. Every decode step
        would otherwise pay an extra pass over the weights per gap, while a lost prefix costs only a
        prefill, and only if it would have been asked for again.
        """
        live = [s for s in self.slots if s.active]
        if not live:
            return Compaction((), ())
        top = live[-1].id
        free = [s for s in self.slots if s.free and not s.pins]
        above = [s for s in free if s.id > top]
        spare = [s for s in self.cached() if s.id > top and not s.pins]  # least recently used first
        evict: list[Slot] = []
        holes: list[Slot] = []
        moves: list[tuple[Slot, Slot]] = []
        for cached in [s for s in self.slots if s.tokens and not s.active and s.id < top]:
            if above:
                moves.append((cached, above.pop()))
                continue
            victims = ([] if cached.pins else [cached]) + spare
            if not victims:
                continue  # pinned, and nothing above may go: it stays until its request is admitted
            victim = min(victims, key=lambda v: v.last_used)
            evict.append(victim)
            if victim is cached:
                holes.append(cached)
            else:
                spare.remove(victim)
                moves.append((cached, victim))
        below = sorted([s for s in free if s.id < top] + holes, key=lambda s: s.id)
        for hole, src in zip(below, reversed(live), strict=False):
            if src.id < hole.id:
                break
            moves.append((src, hole))
        return Compaction(tuple(evict), tuple(moves))

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
