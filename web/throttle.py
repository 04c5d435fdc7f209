"""Login throttling (SPEC §7): per user name and per client address, in bounded memory.

* **per name**: after ``limit`` (5) failed logins of one user name within ``window`` (60 s),
  that name is refused (429) for ``window`` seconds, whoever asks;
* **per address**: after ``address_limit`` (20) failed logins from one client address within
  ``window``, that address is refused for ``window`` seconds, whatever name it tries (behind a
  reverse proxy every client has the proxy's address: the limit then applies to all together);
* **bounded**: at most ``max_entries`` names and ``max_entries`` addresses are remembered, each as
  a 32-byte digest with at most ``limit`` times; an entry is forgotten ``window`` seconds after
  its last failure, and when the table is full the entry that failed least recently goes first.
  However many names are tried, the throttle holds at most about 10 MB (about 1 KB an entry).

Usage::

    throttle = LoginThrottle()
    wait = throttle.wait_seconds("ana", "10.0.0.7")   # 0.0: go ahead; else answer 429
    throttle.failed("ana", "10.0.0.7")                 # after a wrong password
    throttle.succeeded("ana")                          # after a right one

>>> t = LoginThrottle(limit=2, window=60); t.failed("ana", now=0); t.failed("ana", now=1)
>>> t.wait_seconds("ana", now=2) > 0
True
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from dataclasses import dataclass, field

DEFAULT_MAX_ENTRIES = 5_000


@dataclass
class _Record:
    failures: collections.deque[float] = field(default_factory=collections.deque)
    last: float = 0.0
    blocked_until: float = 0.0


class _BoundedCounter:
    """Failures per key within a window, in an LRU table of at most ``max_entries`` keys (not thread-safe:
    :class:`LoginThrottle` holds its lock around every call)."""

    def __init__(self, limit: int, window: float, max_entries: int) -> None:
        self.limit, self.window, self.max_entries = limit, window, max_entries
        self.records: collections.OrderedDict[bytes, _Record] = collections.OrderedDict()

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def expire(self, now: float) -> None:
        """Forget the entries whose last failure is a window old (the table is in order of last failure)."""
        while self.records:
            oldest = next(iter(self.records.values()))
            if oldest.last > now - self.window or oldest.blocked_until > now:
                break
            self.records.popitem(last=False)

    def wait(self, text: str, now: float) -> float:
        record = self.records.get(self.key(text))
        return max(0.0, record.blocked_until - now) if record else 0.0

    def failed(self, text: str, now: float) -> None:
        self.expire(now)
        key = self.key(text)
        record = self.records.pop(key, None) or _Record(collections.deque(maxlen=self.limit))
        self.records[key] = record  # now the most recently failed
        record.last = now
        record.failures.append(now)
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        if len(record.failures) >= self.limit:
            record.blocked_until = now + self.window
            record.failures.clear()
        while len(self.records) > self.max_entries:
            self.records.popitem(last=False)

    def forget(self, text: str) -> None:
        self.records.pop(self.key(text), None)


class LoginThrottle:
    """Failed logins counted per user name and per client address (see the module's docstring)."""

    def __init__(self, limit: int = 5, window: float = 60.0, address_limit: int = 20,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.limit, self.window = limit, window
        self._names = _BoundedCounter(limit, window, max_entries)
        self._addresses = _BoundedCounter(address_limit, window, max_entries)
        self._lock = threading.Lock()

    def wait_seconds(self, name: str, address: str = "", now: float | None = None) -> float:
        """How long ``name`` (or this client ``address``) must wait before another attempt (0: go ahead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(self._names.wait(name, now), self._addresses.wait(address, now) if address else 0.0)

    def address_wait(self, address: str, now: float | None = None) -> float:
        """How long the client ``address`` must wait, whatever name it tries (0: go ahead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._addresses.wait(address, now)

    def failed(self, name: str | None, address: str = "", now: float | None = None) -> None:
        """Count a failed login of ``name`` (None: a refused name, counted for the address only)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if name is not None:
                self._names.failed(name, now)
            if address:
                self._addresses.failed(address, now)

    def succeeded(self, name: str) -> None:
        """A right password: forget the name's failures (the address keeps its count)."""
        with self._lock:
            self._names.forget(name)

    def tracked(self) -> tuple[int, int]:
        """How many names and addresses are remembered now."""
        with self._lock:
            return len(self._names.records), len(self._addresses.records)
