"""Small user adapters for the ``custom://`` tests.

Usage (the project root is importable in tests, see conftest.py)::

    open_source("custom://tests.support.useradapters.ListSource", {"records": [{"a": 1}]})
    open_sink("custom://tests.support.useradapters.CollectingSink", {"key": "out"})
    CollectingSink.collected["out"]    # what was written
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar


class ListSource:
    """Hands out ``config["records"]`` in order; position = index of the next record."""

    shareable = False

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.uri = uri
        self.records = list(config.get("records", []))
        self.index = 0
        self.committed: Any = None
        self.status = "closed"

    def open(self, position: Any | None) -> None:
        self.index = position or 0
        self.status = "connected"

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        batch = self.records[self.index : self.index + max_records]
        self.index += len(batch)
        return batch

    def position(self) -> int:
        return self.index

    def commit(self, position: Any) -> None:
        self.committed = position

    def close(self) -> None:
        self.status = "closed"


class GreedySource:
    """Ignores ``max_records`` and has no optional methods at all."""

    shareable = True

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.left = list(config.get("records", []))

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        out, self.left = self.left, []
        return out


class CollectingSink:
    """Appends written records to ``CollectingSink.collected[config["key"]]``; flushes are counted."""

    collected: ClassVar[dict[str, list[dict]]] = {}
    flushes: ClassVar[dict[str, int]] = {}

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.key = str(config.get("key", "default"))

    def write_batch(self, records: list[dict]) -> None:
        self.collected.setdefault(self.key, []).extend(records)

    def flush(self) -> None:
        self.flushes[self.key] = self.flushes.get(self.key, 0) + 1


class ExplodingSource:
    """Its constructor raises RuntimeError(config["message"]): a source that cannot be built."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        raise RuntimeError(str(config.get("message", "cannot connect")))

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:  # pragma: no cover - never built
        return []


class FailingOpenSink:
    """Built fine, but ``open()`` raises ConnectionRefusedError: a sink whose actor cannot start."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.uri = uri

    def open(self) -> None:
        raise ConnectionRefusedError("connection refused")

    def write_batch(self, records: list[dict]) -> None:  # pragma: no cover - never opened
        pass


class SlowSink:
    """Sleeps ``config["delay"]`` seconds in every write, then appends to ``SlowSink.written[key]``."""

    written: ClassVar[dict[str, list[dict]]] = {}

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.delay = float(config.get("delay", 1.0))
        self.key = str(config.get("key", "default"))

    def write_batch(self, records: list[dict]) -> None:
        time.sleep(self.delay)
        self.written.setdefault(self.key, []).extend(records)


class HangOnceSink:
    """The first write of the first instance blocks until ``HangOnceSink.release`` is set; the rest write.

    ``HangOnceSink.hanging`` is set while that write hangs. Call :meth:`reset` between tests.
    """

    instances = 0
    hanging = threading.Event()
    release = threading.Event()
    written: ClassVar[list[dict]] = []

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        type(self).instances += 1
        self.first = type(self).instances == 1

    @classmethod
    def reset(cls) -> None:
        cls.instances = 0
        cls.hanging, cls.release = threading.Event(), threading.Event()
        cls.written = []

    def write_batch(self, records: list[dict]) -> None:
        if self.first:
            self.first = False
            self.hanging.set()
            self.release.wait()
            return
        self.written.extend(records)


class CommitWatchingSource:
    """Hands out ``config["count"]`` records; at each commit, notes how many dead letters are on disk."""

    seen: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.count, self.dead = int(config["count"]), Path(config["dead"])
        self.next = 0

    def open(self, position: Any) -> None:
        self.next = position or 0

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        out = [{"n": i, "boom": True} for i in range(self.next, min(self.count, self.next + min(max_records, 7)))]
        self.next += len(out)
        return out

    def position(self) -> int:
        return self.next

    def commit(self, position: int) -> None:
        lines = self.dead.read_bytes().count(b"\n") if self.dead.exists() else 0
        self.seen.append((position, lines))


class BrokenConnectionSource:
    """Reads fail once the first batch is out, and so does close: one broken connection."""

    opened: ClassVar[int] = 0

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.reads = 0

    def open(self, position: Any) -> None:
        type(self).opened += 1

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        self.reads += 1
        if self.reads > 1:
            raise ConnectionResetError("connection reset by peer")
        return [{"n": 1}]

    def close(self) -> None:
        raise ConnectionResetError("connection reset by peer")


class HangingSink:
    """Every write blocks until ``HangingSink.release`` is set."""

    release = threading.Event()

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        pass

    def write_batch(self, records: list[dict]) -> None:
        self.release.wait()


class GatedOpenSink:
    """``open()`` waits until the file ``config["gate"]`` exists (another process may make it), at most
    ``config["timeout"]`` seconds (default 10), then writes nothing: a sink that is slow to connect."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.gate = Path(str(config["gate"]))
        self.timeout = float(config.get("timeout", 10.0))

    def open(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def write_batch(self, records: list[dict]) -> None:
        pass
