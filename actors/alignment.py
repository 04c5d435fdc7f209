"""Lining up one message per input per epoch (SPEC §3).

A node waits for epoch ``e`` from every parent, a publisher for epoch ``e`` from every
node that feeds it. Each input delivers its epochs in order, but inputs run at their own
pace, so messages for later epochs may arrive first; an :class:`EpochAligner` holds them
and hands out complete epochs, in order.

Usage::

    aligner = EpochAligner({"a": 0, "b": 1})
    aligner.add(0, "b", 0, items_b)          # [] - still waiting for a
    aligner.add(0, "a", 0, items_a)          # [(0, 0, [items_a, items_b])]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EpochAligner:
    def __init__(self, inputs: Mapping[str, int]) -> None:
        self.inputs = inputs
        self.pending: dict[int, list[Any]] = {}
        self.flags: dict[int, int] = {}
        self.next_epoch = 0

    def add(self, epoch: int, sender: str, flags: int, items: Any) -> list[tuple[int, int, list[Any]]]:
        """Record ``sender``'s message for ``epoch``; the epochs now complete, oldest first."""
        slots = self.pending.get(epoch)
        if slots is None:
            slots = self.pending[epoch] = [None] * len(self.inputs)
            self.flags[epoch] = 0
        slots[self.inputs[sender]] = items
        self.flags[epoch] |= flags
        ready = []
        while True:
            slots = self.pending.get(self.next_epoch)
            if slots is None or any(s is None for s in slots):
                return ready
            epoch = self.next_epoch
            del self.pending[epoch]
            ready.append((epoch, self.flags.pop(epoch), slots))
            self.next_epoch += 1
