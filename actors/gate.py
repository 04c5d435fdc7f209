"""The ingress gate: bounds what is between a DAG's sources and its sinks (SPEC §3 backpressure).

A subscriber takes record slots before it reads and charges the bytes of what it read; the
coordinator gives both back when the epoch holding those records completes. While no slot
is free, or the bytes in flight reach ``max_bytes``, subscribers stop reading: nothing is
dropped, the broker keeps the rest. One batch may overshoot ``max_bytes`` (its size is only
known once read), so memory stays within ``max_bytes`` plus one batch per subscriber.

Usage::

    gate = IngressGate(records=5000, max_bytes=16 << 20)
    granted = gate.acquire(1000, timeout=0.05)   # 0 while full
    gate.give_back(granted - len(records))       # slots not used
    gate.charge(len(records), len(payload))      # what was read is in flight
    ...
    gate.release(len(records), len(payload))     # the epoch completed
"""

from __future__ import annotations

import threading


class IngressGate:
    def __init__(self, records: int, max_bytes: int) -> None:
        self.capacity = records
        self.max_bytes = max_bytes
        self._free = records
        self._in_flight = 0  # records read and not completed (slots may also be held by waiting readers)
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

    def charge(self, records: int, nbytes: int) -> None:
        """Count what a subscriber just read as in flight (its slots stay taken until released)."""
        with self._cond:
            self._in_flight += records
            self._bytes += nbytes

    def admit(self, records: int, nbytes: int) -> None:
        """Records that came from elsewhere than a source (injected, SPEC §13): in flight at once, their
        slots taken even past the capacity, so subscribers wait until they completed."""
        with self._cond:
            self._free -= records
            self._in_flight += records
            self._bytes += nbytes

    def give_back(self, slots: int) -> None:
        """Return slots taken but not used for records read."""
        if slots:
            with self._cond:
                self._free += slots
                self._cond.notify_all()

    def release(self, records: int, nbytes: int) -> None:
        """An epoch completed: its ``records`` and ``nbytes`` are no longer in flight."""
        if records or nbytes:
            with self._cond:
                self._free += records
                self._in_flight -= records
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
        return self._in_flight

    @property
    def bytes_in_flight(self) -> int:
        return self._bytes
