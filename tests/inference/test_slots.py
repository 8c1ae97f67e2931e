"""Slot choice, prefix reuse and KV budgeting of the batching engine (plain Python, no model)."""

from __future__ import annotations

from services.inference.slots import SlotTable, common_prefix

SYSTEM = [2, 10, 11, 12, 13, 14]


def test_common_prefix_stops_at_the_first_difference() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_an_idle_slot_with_the_same_prefix_is_reused_in_place() -> None:
    table = SlotTable(n_slots=3, n_cells=1000)
    table.slots[2].cached = [*SYSTEM, 50, 51]
    placement = table.place([*SYSTEM, 60], reserve=20)
    assert placement is not None
    assert placement.slot is table.slots[2]
    assert placement.source is placement.slot
    assert placement.reused == len(SYSTEM)


def test_a_busy_slot_shares_its_evaluated_prefix_with_a_new_request() -> None:
    table = SlotTable(n_slots=2, n_cells=1000)
    busy = table.slots[0]
    busy.cached, busy.reserved = [*SYSTEM, 70, 71], 100
    placement = table.place([*SYSTEM, 80, 81], reserve=20)
    assert placement is not None
    assert placement.slot is table.slots[1]
    assert placement.source is busy
    assert placement.reused == len(SYSTEM)


def test_the_last_prompt_token_is_always_evaluated() -> None:
    table = SlotTable(n_slots=1, n_cells=1000)
    table.slots[0].cached = [*SYSTEM]
    placement = table.place([*SYSTEM], reserve=10)
    assert placement is not None
    assert placement.reused == len(SYSTEM) - 1


def test_no_placement_when_every_slot_is_busy() -> None:
    table = SlotTable(n_slots=2, n_cells=1000)
    for slot in table.slots:
        slot.reserved = 10
    assert table.place([1, 2, 3], reserve=5) is None


def test_running_requests_keep_their_reserved_cells() -> None:
    table = SlotTable(n_slots=2, n_cells=100)
    table.slots[0].reserved = 80
    assert table.place([1, 2, 3], reserve=30) is None
    assert table.place([1, 2, 3], reserve=20) is not None


def test_idle_caches_are_dropped_only_as_far_as_needed() -> None:
    table = SlotTable(n_slots=3, n_cells=100)
    table.slots[0].cached = list(range(100, 140))
    table.slots[1].cached = list(range(200, 240))
    placement = table.place([7, 8, 9], reserve=50)
    assert placement is not None
    assert placement.slot is table.slots[2]
    placement.slot.reserved = 50
    dropped = table.over_budget(keep=placement.source)
    assert dropped == [table.slots[0]], "40 + 40 + 50 cells: one idle cache must go"
