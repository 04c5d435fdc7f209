"""The ingress gate: bounds what is between a DAG's sources and its sinks (SPEC §3 backpressure).

A subscriber takes record slots before it reads and charges the bytes of what it read; the
coordinator gives both back when the epoch holding those records completes. While no slot
is free, or the bytes in flight reach ``max_bytes``, subscribers stop reading: nothing is
dropped, the broker keeps the rest. One batch may overshoot ``max_bytes`` (its size is only
known once read), so memory stays within ``max_bytes`` plus one batch per subscriber.

Usage::

    gate = IngressGate(records=5000, max_bytes=16 << 20)
    granted = gate.acquire(1000, timeout=0.05)   # 0 while full
    gate.charge(len(payload))                    # after reading and encoding
    ...
    gate.release(granted, len(payload))          # the epoch completed
"""

from __future__ import annotations

import threading


class IngressGate:
    def __init__(self, records: int, max_bytes: int) -> None:
        self.capacity = records
        self.max_bytes = max_bytes
        self._free = records
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False

    def _has_room(self) -> bool:
        return self._free > 0 and self._bytes < self.max_bytes

    def acquire(self, n: int, timeout: float) -> int:
        """Take up to ``n`` record slots, waiting at most ``timeout`` seconds for room; 0 if none."""
        with self._cond:
            if not self._has_room() and not self._closed:
                self._cond.wait(timeout)
            if self._closed or not self._has_room():
                return 0
            got = min(n, self._free)
            self._free -= got
            return got

    def charge(self, nbytes: int) -> None:
        """Count ``nbytes`` more in flight (what a subscriber just read)."""
        with self._cond:
            self._bytes += nbytes

    def release(self, records: int, nbytes: int = 0) -> None:
        """Give back ``records`` slots and ``nbytes`` bytes."""
        if records or nbytes:
            with self._cond:
                self._free += records
                self._bytes -= nbytes
                self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter for good: the DAG's actors are being torn down."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def backlog(self) -> int:
        """Records read and not yet completed (``ingress_backlog``, SPEC §8)."""
        return self.capacity - self._free

    @property
    def bytes_in_flight(self) -> int:
        return self._bytes
