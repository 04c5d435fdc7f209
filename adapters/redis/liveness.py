"""Whether a Redis consumer is alive: a key of its own that it keeps from expiring while it is open.

Lists and streams share this one signal (SPEC §6): a consumer is dead once it has not been
heard of for ``claim_idle_ms``, and only then are its items taken over by another consumer —
a stream consumer's pending entries claimed, a list consumer's processing list given back.
Nothing the server keeps for the consumer itself can say so: on Redis 7.0 the idle time of
``XINFO CONSUMERS`` resets only when the consumer is delivered or claims entries, so a live
replica with nothing to read would look idle, and a list has no notion of consumers at all.

Each open consumer sets its key (``SET key 1 PX claim_idle_ms``) on every read and keep-alive,
at most every third of ``claim_idle_ms`` (one cheap command per few seconds at the default);
a consumer that dies, hangs or loses the server stops refreshing it and it expires.

Usage::

    beat = Liveness(alive_key("jobs:processing", "worker-1"), ttl_ms=30_000)
    beat.refresh(client)                     # in read_batch / keep_alive: a command at most every 10 s
    alive = are_alive(client, [beat.key, alive_key("jobs:processing", "worker-2")])   # [True, False]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

ALIVE = "alive"  # the last part of every liveness key


def alive_key(prefix: str, consumer: str) -> str:
    """The liveness key of ``consumer`` among the consumers of ``prefix`` (a list's, a stream group's)."""
    return f"{prefix}:{consumer}:{ALIVE}"


class Liveness:
    """One consumer's liveness key, refreshed at most every ``ttl_ms / 3`` and expiring after ``ttl_ms``."""

    def __init__(self, key: str, ttl_ms: int) -> None:
        self.key = key
        self.ttl_ms = max(1, int(ttl_ms))
        self.every = self.ttl_ms / 3000  # seconds between two refreshes: two may be missed before it expires
        self._due = 0.0

    def refresh(self, client: Any) -> None:
        """Keep the key alive (one ``SET ... PX`` when a third of the TTL has passed since the last)."""
        now = time.monotonic()
        if now >= self._due:
            client.set(self.key, b"1", px=self.ttl_ms)
            self._due = now + self.every

    def again(self) -> None:
        """The next :meth:`refresh` sends the command whatever the time (after an error, at open)."""
        self._due = 0.0


def are_alive(client: Any, keys: Sequence[str]) -> list[bool]:
    """For each liveness key, whether it exists (one round trip)."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return [bool(n) for n in pipe.execute()]
