"""Whether this worker may read and publish right now: the leader's lease (SPEC §9 fencing).

A worker of a server without high availability never needs one: :data:`LEASE` allows
everything, always. A worker of a high-availability server is started with
``LEASE.require()``; from then on its subscribers read, its publishers write and its
checkpoints are saved only until the deadline of the supervisor's latest grant. The
supervisor grants a lease only while it leads and only as far as its ZooKeeper session
is certainly alive, so a leader that is cut off from ZooKeeper, or frozen and thawed,
stops on its own, before its session can expire and another server take over.

Deadlines are ``time.monotonic()`` values: one clock for every process of the host (Linux
``CLOCK_MONOTONIC``), and it runs on while a process is stopped.

Usage::

    LEASE.require()                           # once, at a worker's start (high availability only)
    LEASE.grant(time.monotonic() + 3.0)       # renewed by the supervisor while it leads
    LEASE.grant(0.0)                          # revoked: fenced at once
    if LEASE.wait(0.05):                      # True: go on; False: fenced, try again later
        ...
"""

from __future__ import annotations

import threading
import time


class Lease:
    """A deadline granted from outside, and whether one is needed at all."""

    def __init__(self) -> None:
        self._required = False
        self._until = 0.0
        self._changed = threading.Condition()

    def require(self) -> None:
        """From now on nothing is allowed past the granted deadline (none granted yet: fenced)."""
        self._required = True

    def grant(self, until: float) -> None:
        """Allow reading and publishing until the monotonic time ``until`` (a past one revokes)."""
        with self._changed:
            self._until = until
            self._changed.notify_all()

    def valid(self) -> bool:
        """Whether this worker may read and publish now."""
        return not self._required or time.monotonic() < self._until

    def wait(self, timeout: float) -> bool:
        """Whether the lease is valid, waiting up to ``timeout`` seconds for a grant when it is not."""
        if self.valid():
            return True
        with self._changed:
            self._changed.wait(timeout)
        return self.valid()

    def remaining(self) -> float | None:
        """Seconds the lease still runs (None when none is needed), for logs and details."""
        return None if not self._required else max(0.0, self._until - time.monotonic())


#: The lease of this process: every DAG of a worker is fenced together.
LEASE = Lease()
