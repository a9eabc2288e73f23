"""The engine's slot table: prefix matching, LRU eviction, and soft pins (no llama.cpp needed)."""

from __future__ import annotations

from ttscale.backends.llamacpp.slots import SlotTable


def _cached(table: SlotTable, i: int, tokens: list[int]) -> None:
    slot = table.slots[i]
    slot.tokens = tokens
    table.touch(slot)


def test_best_prefix_finds_the_longest_match() -> None:
    table = SlotTable(3)
    _cached(table, 0, [1, 2, 3])
    _cached(table, 1, [1, 2, 3, 4, 5])
    slot, k = table.best_prefix([1, 2, 3, 4, 9])
    assert slot is table.slots[1] and k == 4


def test_pinned_slots_are_evicted_last() -> None:
    table = SlotTable(2)
    _cached(table, 0, [1, 2])  # least recently used
    _cached(table, 1, [3, 4])
    pin = table.pin(table.slots[0])
    victim, evict = table.take()
    assert victim is table.slots[1] and evict  # the unpinned one goes first, although more recent
    victim.active = True
    last, evict = table.take()
    assert last is table.slots[0] and evict  # soft: with nothing else left, the pinned one goes too
    table.unpin(pin)
    assert table.slots[0].pins == 0


def test_a_pin_lapses_when_its_slot_is_cleared_and_unpin_is_idempotent() -> None:
    table = SlotTable(1)
    _cached(table, 0, [1, 2])
    old = table.pin(table.slots[0])
    table.clear(table.slots[0])
    _cached(table, 0, [7, 8])
    new = table.pin(table.slots[0])
    table.unpin(old)  # refers to the dropped content: must not release the new pin
    assert table.slots[0].pins == 1
    table.unpin(new)
    table.unpin(new)
    assert table.slots[0].pins == 0
