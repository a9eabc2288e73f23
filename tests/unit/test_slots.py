"""The engine's slot table: prefix matching, LRU eviction, and soft pins (no llama.cpp needed)."""

from __future__ import annotations

import pytest

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


def _live(table: SlotTable, *ids: int) -> None:
    for i in ids:
        table.slots[i].active = True
        table.slots[i].tokens = [i]


def _apply(table: SlotTable) -> list[tuple[int, int]]:
    """Run one compaction plan through move(); the (old id, new id) of each move."""
    plan = table.compaction()
    for slot in plan.evict:
        table.clear(slot)
    return [table.move(src, dst) for src, dst in plan.moves]


def _ids(table: SlotTable, live: bool) -> list[int]:
    return [s.id for s in table.slots if s.active == live and s.tokens]


def test_compaction_moves_the_top_live_slots_into_the_holes_below() -> None:
    table = SlotTable(8)
    _live(table, 0, 2, 5, 6)
    assert _apply(table) == [(6, 1), (5, 3)]
    assert _ids(table, live=True) == [0, 1, 2, 3]
    assert [s.id for s in table.slots] == list(range(8))  # the table stays in id order
    assert _apply(table) == []  # packed: nothing more to do


def test_cached_slots_make_way_and_their_holes_fill_at_the_next_plan() -> None:
    table = SlotTable(6)
    _live(table, 0, 3)
    _cached(table, 1, [7, 7])
    pinned = table.slots[1]
    pin = table.pin(pinned)
    # the cached slot goes to the highest free id; its old id is not reused until the copies have run
    assert _apply(table) == [(1, 5), (3, 2)]
    assert pinned.id == 5 and pinned.tokens == [7, 7] and pinned.pins == 1  # the pin follows the content
    assert _ids(table, live=True) == [0, 2]
    assert _apply(table) == [(2, 1)]
    assert _ids(table, live=True) == [0, 1] and _ids(table, live=False) == [5]
    table.unpin(pin)
    assert pinned.pins == 0


def test_with_no_free_slot_above_the_least_recently_used_cached_prefix_gives_way() -> None:
    table = SlotTable(6)
    _live(table, 0, 2, 4)
    for i, used in ((1, 5), (3, 1), (5, 3)):  # every other slot cached: no free slot anywhere
        _cached(table, i, [10 + i])
        table.slots[i].last_used = used
    blocker1, blocker3, above5 = table.slots[1], table.slots[3], table.slots[5]
    plan = table.compaction()
    # slot 3 is the least recently used: it is evicted and a live slot takes its place; slot 1 is more
    # recent than slot 5 above the live ones, so slot 5 is evicted and slot 1 moves there
    assert plan.evict == (above5, blocker3)
    assert [(a.id, b.id) for a, b in plan.moves] == [(1, 5), (4, 3)]
    assert _apply(table) == [(1, 5), (4, 3)]
    assert blocker1.id == 5 and blocker1.tokens == [11]
    assert _ids(table, live=True) == [0, 2, 3] and _ids(table, live=False) == [5]
    assert _apply(table) == [(3, 1)]  # slot 1's old place, vacated by a move, is used at the next plan
    assert _ids(table, live=True) == [0, 1, 2]


def test_a_pinned_blocker_stays_unless_a_prefix_above_can_make_room() -> None:
    table = SlotTable(3)
    _live(table, 0, 2)
    _cached(table, 1, [7])
    pin = table.pin(table.slots[1])
    assert table.compaction().evict == () and _apply(table) == []  # promised, and nothing else can go
    table.unpin(pin)
    assert [s.id for s in table.compaction().evict] == [1]


def test_move_refuses_an_occupied_destination() -> None:
    table = SlotTable(3)
    _live(table, 0, 1)
    with pytest.raises(RuntimeError, match="cannot move slot 1 into slot 0"):
        table.move(table.slots[1], table.slots[0])
