"""Which llama sequence id a request runs in, and which cached prompt prefix it can reuse.

Every slot is one sequence id of the shared KV cache. A finished slot keeps its cells, so the
next request with the same system prompt starts after it; a busy slot's already-evaluated prompt
can be shared too. Cells are budgeted conservatively (shared cells count once per holder) so a
step can never run out of KV space.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens held in KV, by position
    reserved: int = 0  # cells a running request may grow to; 0 when idle

    @property
    def busy(self) -> bool:
        return self.reserved > 0

    @property
    def held(self) -> int:
        return self.reserved if self.busy else len(self.cached)


@dataclass(frozen=True)
class Placement:
    slot: Slot
    source: Slot  # whose cells the reused prefix comes from (the slot itself when equal)
    reused: int  # prompt tokens already in KV, not evaluated again


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class SlotTable:
    def __init__(self, n_slots: int, n_cells: int) -> None:
        self.slots = [Slot(seq_id) for seq_id in range(n_slots)]
        self.n_cells = n_cells

    @property
    def busy(self) -> int:
        return sum(slot.busy for slot in self.slots)

    def place(self, prompt: list[int], reserve: int) -> Placement | None:
        """An idle slot for `prompt` and the longest reusable prefix, or None when full.

        At least the last prompt token is always evaluated: its logits pick the first token.
        """
        idle = [slot for slot in self.slots if not slot.busy]
        if not idle:
            return None
        limit = len(prompt) - 1
        # Best own match; among equals the emptiest, so other reusable caches survive.
        target = max(idle, key=lambda slot: (common_prefix(slot.cached, prompt), -len(slot.cached)))
        own = min(common_prefix(target.cached, prompt), limit)
        source = max(self.slots, key=lambda slot: common_prefix(slot.cached, prompt))
        shared = min(common_prefix(source.cached, prompt), limit)
        if shared <= own:
            source, shared = target, own
        if not self._fits(reserve, target, source):
            return None
        return Placement(target, source, shared)

    def _fits(self, reserve: int, target: Slot, source: Slot) -> bool:
        running = sum(slot.reserved for slot in self.slots)
        kept_source = len(source.cached) if source is not target and not source.busy else 0
        return running + kept_source + reserve <= self.n_cells

    def over_budget(self, keep: Slot) -> list[Slot]:
        """Idle caches to drop (lowest ids first) until every holder's cells fit again."""
        over = sum(slot.held for slot in self.slots) - self.n_cells
        dropped: list[Slot] = []
        for slot in self.slots:
            if over <= 0:
                break
            if not slot.busy and slot.cached and slot is not keep:
                dropped.append(slot)
                over -= len(slot.cached)
        return dropped
