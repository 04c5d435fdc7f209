"""Which ingress record a ``seq`` stands for, while its epoch is open (SPEC §13: a dead letter's ``record``).

A node that fails deep in a DAG knows only the ``seq`` it was computing; the record that
led there is the ingress record with that ``seq``. The coordinator notes each batch it puts
into an epoch (a reference to the encoded payload it already holds, one lock per batch,
nothing per record) and forgets the batches of completed epochs. Only a dead letter pays
for a lookup: it decodes the one batch holding its ``seq`` (the last one decoded is kept, so
a burst of errors in one batch decodes it once).

Usage::

    index = IngressIndex()
    index.add(first_seq=40, subscriber="prices", count=2, payload=encode_records([r40, r41]))
    index.find(41)          # ("prices", r41)
    index.forget_below(42)  # epoch done: batches ending at or before seq 42 are dropped
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from actors.messages import decode_records


class IngressIndex:
    """The open epochs' batches: ``(first_seq, count, subscriber, payload)``; thread-safe."""

    def __init__(self) -> None:
        self._batches: deque[tuple[int, int, str | None, Any]] = deque()
        self._lock = threading.Lock()
        self._decoded: tuple[int, list[Any]] | None = None  # (first_seq, records) of the last batch decoded

    def add(self, first_seq: int, subscriber: str | None, count: int, payload: Any) -> None:
        """Note one batch (``subscriber`` None: a MetronomeNode tick, ``payload`` the tick record itself)."""
        with self._lock:
            self._batches.append((first_seq, count, subscriber, payload))

    def forget_below(self, seq: int) -> None:
        """Drop every batch whose records all come before ``seq`` (their epochs completed)."""
        with self._lock:
            batches = self._batches
            while batches and batches[0][0] + batches[0][1] <= seq:
                batches.popleft()

    def find(self, seq: int) -> tuple[str | None, Any]:
        """``(subscriber, record)`` of ``seq``; ``(None, None)`` when it is not (or no longer) known."""
        with self._lock:
            found = next((b for b in self._batches if b[0] <= seq < b[0] + b[1]), None)
            decoded = self._decoded
        if found is None:
            return None, None
        first, _count, subscriber, payload = found
        if subscriber is None:
            return None, payload
        if decoded is None or decoded[0] != first:
            decoded = (first, decode_records(payload))
            self._decoded = decoded
        records = decoded[1]
        index = seq - first
        return subscriber, records[index] if 0 <= index < len(records) else None
