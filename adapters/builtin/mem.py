"""An in-process broker: bounded queues (competing consumers) and topics (broadcast).

``mem://queue/NAME``: each record goes to one consumer. The queue holds at most
``max_size`` records (config, default 10000); a writer blocks while it is full, so a slow
consumer slows its producers down and nothing is dropped (config ``put_timeout`` makes a
writer give up with :class:`MemFullError` instead). Records a consumer read but did not
commit go back to the front of the queue, in order, when it closes: at-least-once.

``mem://topic/NAME``: every subscriber gets every record published after it opened. Each
subscriber's buffer holds at most ``max_size`` records (or its own ``max_depth``, the seed's key,
when smaller); a writer blocks while any is full. On a queue ``max_depth`` is accepted and ignored.

The broker lives in this process only. Records are passed by reference: do not mutate a
record after writing it. Passing ``max_size`` when a queue already exists re-bounds it.

Usage::

    from adapters.builtin.mem import mem_drain, mem_put, reset_mem_broker

    mem_put("orders", [{"id": 1}, {"id": 2}])
    src = MemSource("mem://queue/orders", {})
    src.open(None)
    src.read_batch(10, timeout=0.1)          # [{'id': 1}, {'id': 2}]
    src.commit(src.position())
    mem_drain("orders")                      # [] - everything was taken
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from adapters.base import CLOSED, CONNECTED, Adapter, ParsedUri, Sink, Source, kind_and_name, positive_param, setting

DEFAULT_MAX_SIZE = 10000
QUEUE, TOPIC = "queue", "topic"


class MemFullError(TimeoutError):
    """A write waited ``put_timeout`` seconds for room and gave up."""


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class MemQueue:
    """A bounded FIFO shared by any number of writers and competing readers."""

    def __init__(self, name: str, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.name = name
        self.max_size = max(1, int(max_size))
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self.blocked_writers = 0  # writers waiting for room right now (backpressure)

    def __len__(self) -> int:
        return len(self._items)

    def wait_for(self, predicate: Callable[[MemQueue], bool], timeout: float | None = None) -> bool:
        """Wait until ``predicate(queue)`` holds (re-checked on every change); False on timeout.

        >>> q = MemQueue("demo", max_size=2)
        >>> q.wait_for(lambda q: len(q) == 0, timeout=0)
        True
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def _has_room(self) -> bool:
        return len(self._items) < self.max_size

    def resize(self, max_size: int) -> None:
        with self._cond:
            self.max_size = max(1, int(max_size))
            self._cond.notify_all()

    def put(self, records: Iterable[Any], timeout: float | None = None) -> None:
        """Append ``records`` in order, blocking while full (raise MemFullError after ``timeout``)."""
        deadline = _deadline(timeout)
        pending = records if isinstance(records, list) else list(records)
        done = 0
        with self._cond:
            while done < len(pending):
                if not self._has_room():
                    self.blocked_writers += 1
                    self._cond.notify_all()
                    try:
                        room = self._cond.wait_for(self._has_room, _remaining(deadline))
                    finally:
                        self.blocked_writers -= 1
                    if not room:
                        raise MemFullError(
                            f"mem queue {self.name!r} stayed full ({self.max_size}) for {timeout}s; "
                            f"{len(pending) - done} records not written"
                        )
                room = self.max_size - len(self._items)
                self._items.extend(pending[done:done + room])  # one C call: usually everything at once
                done = min(done + room, len(pending))
                self._cond.notify_all()

    def get(self, max_records: int, timeout: float | None = 0.0) -> list[Any]:
        """Up to ``max_records`` items; waits at most ``timeout`` for the first one."""
        with self._cond:
            if not self._items and timeout != 0 and not self._cond.wait_for(lambda: self._items, timeout):
                return []
            n = min(max_records, len(self._items))
            if n == len(self._items):  # the reader keeps up: take everything at once
                out = list(self._items)
                self._items.clear()
            else:
                out = [self._items.popleft() for _ in range(n)]
            if out:
                self._cond.notify_all()
            return out

    def peek(self, limit: int) -> list[Any]:
        """The first ``limit`` items, left in place."""
        with self._cond:
            return list(itertools.islice(self._items, max(0, limit)))

    def put_front(self, items: list[Any]) -> None:
        """Return ``items`` to the head of the queue, in order (may briefly exceed max_size)."""
        if not items:
            return
        with self._cond:
            self._items.extendleft(reversed(items))
            self._cond.notify_all()


class _Subscription:
    """One subscriber's buffer on a topic; guarded by the topic's condition."""

    def __init__(self, max_depth: int | None = None) -> None:
        self.items: deque[Any] = deque()
        self.max_depth = max_depth  # this subscriber's own bound (the seed's max_depth), None: the topic's


class MemTopic:
    """A broadcast channel: every open subscription receives every published record."""

    def __init__(self, name: str, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.name = name
        self.max_size = max(1, int(max_size))
        self._subs: list[_Subscription] = []
        self._cond = threading.Condition()

    def resize(self, max_size: int) -> None:
        with self._cond:
            self.max_size = max(1, int(max_size))
            self._cond.notify_all()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, max_depth: int | None = None) -> _Subscription:
        sub = _Subscription(max_depth)
        with self._cond:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        with self._cond:
            if sub in self._subs:
                self._subs.remove(sub)
            self._cond.notify_all()

    def _has_room(self) -> bool:
        size = self.max_size
        return all(len(s.items) < (min(size, s.max_depth) if s.max_depth else size) for s in self._subs)

    def publish(self, records: Iterable[Any], timeout: float | None = None) -> None:
        """Deliver each record to every subscriber, blocking while any buffer is full."""
        deadline = _deadline(timeout)
        with self._cond:
            for record in records:
                if not self._cond.wait_for(self._has_room, _remaining(deadline)):
                    raise MemFullError(f"a subscriber of mem topic {self.name!r} stayed full for {timeout}s")
                for sub in self._subs:
                    sub.items.append(record)
                self._cond.notify_all()

    def get(self, sub: _Subscription, max_records: int, timeout: float | None = 0.0) -> list[Any]:
        with self._cond:
            if not sub.items and timeout != 0 and not self._cond.wait_for(lambda: sub.items, timeout):
                return []
            out = [sub.items.popleft() for _ in range(min(max_records, len(sub.items)))]
            if out:
                self._cond.notify_all()
            return out


# --- the broker ---------------------------------------------------------------------------

_broker_lock = threading.Lock()
_queues: dict[str, MemQueue] = {}
_topics: dict[str, MemTopic] = {}


def _get_or_create(table: dict[str, Any], cls: type, name: str, max_size: int | None) -> Any:
    with _broker_lock:
        found = table.get(name)
        if found is None:
            found = table[name] = cls(name, max_size or DEFAULT_MAX_SIZE)
            return found
    if max_size is not None and max_size != found.max_size:
        found.resize(max_size)
    return found


def get_queue(name: str, max_size: int | None = None) -> MemQueue:
    """The queue called ``name``, created on first use (``max_size`` re-bounds an existing one)."""
    return _get_or_create(_queues, MemQueue, name, max_size)


def get_topic(name: str, max_size: int | None = None) -> MemTopic:
    """The topic called ``name``, created on first use (``max_size`` re-bounds an existing one)."""
    return _get_or_create(_topics, MemTopic, name, max_size)


def reset_mem_broker() -> None:
    """Forget every queue and topic (for tests). Open adapters keep their old objects."""
    with _broker_lock:
        _queues.clear()
        _topics.clear()


def mem_put(name: str, records: Iterable[Any], timeout: float | None = None) -> None:
    """Append records to queue ``name`` (blocking while full, like a sink)."""
    get_queue(name).put(records, timeout)


def mem_publish(name: str, records: Iterable[Any], timeout: float | None = None) -> None:
    """Broadcast records on topic ``name`` to its current subscribers."""
    get_topic(name).publish(records, timeout)


def mem_drain(name: str) -> list[Any]:
    """Take everything currently in queue ``name`` without waiting."""
    q = get_queue(name)
    return q.get(max(1, len(q)), timeout=0)


def mem_size(name: str) -> int:
    """How many records queue ``name`` holds right now."""
    return len(get_queue(name))


def mem_target(parsed: ParsedUri) -> tuple[str, str]:
    """``(kind, name)`` of ``mem://queue/NAME`` or ``mem://topic/NAME`` (the one parser of that shape)."""
    problem = kind_and_name(parsed, (QUEUE, TOPIC))
    if problem:
        raise ValueError(problem)
    return parsed.parts[0], parsed.parts[1]


def check_mem_uri(parsed: ParsedUri) -> str | None:
    return kind_and_name(parsed, (QUEUE, TOPIC)) or positive_param(parsed, "max_size")


def _max_size(config: Mapping[str, Any], parsed: ParsedUri, key: str = "max_size") -> int | None:
    value = setting(config, parsed, key, None, int)
    if value is not None and value < 1:
        raise ValueError(f"{key} must be at least 1, got {value}")
    return value


class MemSource(Source):
    """Reads ``mem://queue/NAME`` (competing, redelivers uncommitted on close) or ``mem://topic/NAME``.

    ``position()`` counts the items this instance has handed out (continuing from an
    integer position given to ``open``); ``commit(p)`` forgets the items up to ``p``.
    """

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.kind, self.name = mem_target(self.parsed)
        self._max_size = _max_size(self.config, self.parsed)
        # a topic subscriber's own bound; on a queue the seed's key is accepted and ignored
        self._max_depth = _max_size(self.config, self.parsed, "max_depth") if self.kind == TOPIC else None
        self._queue: MemQueue | None = None
        self._topic: MemTopic | None = None
        self._sub: _Subscription | None = None
        self._uncommitted: deque[Any] = deque()
        self._count = 0
        self._committed = 0

    def open(self, position: Any | None) -> None:
        self._count = self._committed = position if isinstance(position, int) else 0
        self._uncommitted.clear()
        if self.kind == QUEUE:
            self._queue = get_queue(self.name, self._max_size)
        else:
            self._topic = get_topic(self.name, self._max_size)
            self._sub = self._topic.subscribe(self._max_depth)
        self.status = CONNECTED

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self._queue is not None:
            items = self._queue.get(max_records, timeout)
            self._uncommitted.extend(items)
        elif self._topic is not None and self._sub is not None:
            items = self._topic.get(self._sub, max_records, timeout)
        else:
            raise RuntimeError(f"{self!r} is not open")
        self._count += len(items)
        return items

    def position(self) -> int:
        return self._count

    def backlog(self) -> int:
        """Records waiting to be read (the queue's length, or this subscription's buffer)."""
        if self._queue is not None:
            return len(self._queue)
        return len(self._sub.items) if self._sub is not None else 0

    def commit(self, position: Any) -> None:
        if not isinstance(position, int) or position <= self._committed:
            return
        done = min(position, self._count) - self._committed
        for _ in range(min(done, len(self._uncommitted))):
            self._uncommitted.popleft()
        self._committed += done

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put_front(list(self._uncommitted))
        if self._topic is not None and self._sub is not None:
            self._topic.unsubscribe(self._sub)
        self._uncommitted.clear()
        self._queue = self._topic = self._sub = None
        self.status = CLOSED


class MemSink(Sink):
    """Writes to ``mem://queue/NAME`` or ``mem://topic/NAME``; blocks while full (backpressure)."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.kind, self.name = mem_target(self.parsed)
        self._max_size = _max_size(self.config, self.parsed)
        self.put_timeout: float | None = setting(self.config, self.parsed, "put_timeout", None, float)
        self._queue: MemQueue | None = None
        self._topic: MemTopic | None = None

    def open(self) -> None:
        if self.kind == QUEUE:
            self._queue = get_queue(self.name, self._max_size)
        else:
            self._topic = get_topic(self.name, self._max_size)
        self.status = CONNECTED

    def write_batch(self, records: list[dict]) -> None:
        if self._queue is not None:
            self._queue.put(records, self.put_timeout)
        elif self._topic is not None:
            self._topic.publish(records, self.put_timeout)
        else:
            raise RuntimeError(f"{self!r} is not open")

    def close(self) -> None:
        self._queue = self._topic = None
        self.status = CLOSED


def read_back_queue(parsed: ParsedUri, limit: int) -> list[tuple[str, Any]]:
    """What ``mem://queue/NAME`` holds (ids: positions from its head); a topic keeps nothing to read back."""
    kind, name = mem_target(parsed)
    if kind != QUEUE:
        raise ValueError(f"{parsed.raw!r} is a topic, which keeps no records to read back; use mem://queue/{name}")
    return [(str(i), item) for i, item in enumerate(get_queue(name).peek(limit))]


ADAPTER = Adapter(
    "mem", check_mem_uri, source=MemSource, sink=MemSink,
    source_keys=("max_size", "max_depth"), sink_keys=("max_size", "put_timeout"),
    shareable=lambda u: u.part(0) == QUEUE,  # a queue's records go to one reader each; a topic's to all
    read_back=read_back_queue,
)
