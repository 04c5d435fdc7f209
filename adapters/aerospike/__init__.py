"""Aerospike: ``aerospike://NAMESPACE/SET`` (SPEC §6) through the aerospike client, imported when an endpoint opens.

Sink: one ``put`` per record, key ``(NAMESPACE, SET, record[key_attribute])``, bins = the rest of
the record (None values left out). The client's default write policy stores the user key with
the record (``POLICY_KEY_SEND``), replaces what the key held (``POLICY_EXISTS_CREATE_OR_REPLACE``)
and carries ``ttl``. A record that can never be written comes back as a RejectedRecord; a lost
cluster is retried with backoff until ``publish_timeout``, then the write raises.

Source: a thread queries the set every ``poll_interval`` seconds for the records whose server
last-update time (the ``LastUpdateTime`` filter expression: record tuples do not carry it) lies in
a window ``[lut, until)``, ``until`` = this host's clock - ``settle``. A window's records go out
in the order of their digests, at most :data:`WINDOW_CHUNK` held at a time: each pass of the query
keeps the smallest digests after the last one emitted. Position ``{"lut": L}``: everything
updated before L was emitted; mid-window ``{"lut": L, "until": U, "after": D}``: of ``[L, U)``,
the records whose digest is at most D were emitted, so a reopened source re-runs that window from
just after D. The position is the same few dozen bytes however many records a window holds (a
first scan of the whole set included). A position written before digest order (``"done"``, the
digests emitted) is still honoured: those digests are skipped until that window ends. Not shareable.
Shared plumbing: :mod:`adapters.aerospike.client`; keys, guarantees: docs/ADAPTERS.md.

Usage::

    sink = AerospikeSink("aerospike://test/prices", {"hosts": [["127.0.0.1", 3000]], "ttl": 3600})
    sink.open(); sink.write_batch([{"__dagserver_key": "p1", "price": 2.5}]); sink.close()
    src = AerospikeSource("aerospike://test/prices", {"poll_interval": 1})
    src.open(None); batch = src.read_batch(500, timeout=0.05); pos = src.position()
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from adapters.aerospike.client import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    BIN_NAME_MAX,
    CLOSE_TIMEOUT,
    KEYS,
    MS,
    QUEUE_SIZE,
    REFUSALS,
    Endpoint,
    check_aerospike_uri,
    client_errors,
    describe,
    load_aerospike,  # noqa: F401 - part of this module's interface, as every adapter's load_X()
)
from adapters.base import CLOSED, CONNECTED, RECONNECTING, Adapter, RejectedRecord, Sink, Source, setting

log = logging.getLogger(__name__)
WINDOW_CHUNK = 10_000  # records of one window held at a time (a pass of the query keeps the smallest digests)


def _plain(value: Any) -> Any:
    """A bin value as a record value: blobs as bytes, maps as plain dicts, all the way down."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Window:
    """The poller's side of a window: ``[lower, upper)`` (upper None: not begun), the last digest queued
    from it (its records go out in digest order) and digests to skip (an older position's ``done``)."""

    def __init__(self, lower: int, upper: int | None, after: bytes | None, skip: set[bytes]) -> None:
        self.lower, self.upper, self.after, self.skip = lower, upper, after, skip


def _parse_position(position: Any) -> tuple[int, int | None, bytes | None, list[bytes]]:
    """``(lut, until, after, done)`` of a position (None: the whole set, from the start)."""
    if not isinstance(position, Mapping):
        return 0, None, None, []
    until, after = position.get("until"), position.get("after")
    return (int(position.get("lut") or 0), None if until is None else int(until),
            None if until is None or after is None else bytes(after),
            [] if until is None else [bytes(d) for d in position.get("done") or ()])


def _first(entry: tuple) -> Any:
    return entry[0]


class AerospikeSource(Endpoint, Source):
    """Polls ``aerospike://NAMESPACE/SET`` for records updated since the position; one reader per set."""

    shareable = False

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self._configure()
        self.poll_interval = setting(self.config, self.parsed, "poll_interval", 1.0, float)
        self.settle = setting(self.config, self.parsed, "settle", 1.0, float)
        if self.poll_interval <= 0 or self.settle < 0:
            raise ValueError(f"aerospike 'poll_interval' must be > 0 and 'settle' >= 0 in {uri!r}")
        self._queue: queue.Queue[tuple] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._lut, self._until, self._after, self._done = 0, None, None, []  # what read_batch returned
        self._fetched = self._taken = 0

    def open(self, position: Any | None) -> None:
        """Start the poller at ``position`` (None: every record of the set, then the changes)."""
        self._load()
        self._lut, self._until, self._after, self._done = _parse_position(position)
        self._queue, self._stop, self._failure = queue.Queue(QUEUE_SIZE), threading.Event(), None
        self._fetched = self._taken = 0
        self.status = CONNECTED  # the poller says otherwise as soon as the cluster cannot be reached
        window = _Window(self._lut, self._until, self._after, set(self._done))
        self._thread = threading.Thread(target=self._run, args=(self._stop, self._queue, window), daemon=True,
                                        name=f"aerospike-poll-{self.namespace}.{self.set}")
        self._thread.start()

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self._failure is not None:
            raise RuntimeError(f"{self.uri}: polling failed: {describe(self._failure)}") from self._failure
        out: list[Any] = []
        deadline = time.monotonic() + max(0.0, timeout)
        while len(out) < max_records:
            try:
                item = self._queue.get_nowait() if out else self._queue.get(
                    timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item[0] == "end":  # the window [lut, until) is complete
                self._lut, self._until, self._after, self._done = item[1], None, None, []
                continue
            _, upper, digest, record = item
            if upper != self._until:  # the first record of a new window
                self._until, self._done = upper, []
            self._after = digest
            out.append(record)
        self._taken += len(out)
        return out

    def position(self) -> dict[str, Any]:
        if self._until is None:
            return {"lut": self._lut}
        position: dict[str, Any] = {"lut": self._lut, "until": self._until}
        if self._after is not None:
            position["after"] = self._after
        if self._done:  # from a position written before digest order; it never grows
            position["done"] = list(self._done)
        return position

    def backlog(self) -> int | None:
        """Records fetched by the poller and not yet returned by ``read_batch``."""
        return max(0, self._fetched - self._taken)

    def commit(self, position: Any) -> None:
        """Nothing to tell the server: the cursor lives in the checkpoint's position."""

    def _run(self, stop: threading.Event, out: queue.Queue, window: _Window) -> None:
        """The poller thread: one query per ``poll_interval``, backing off while the cluster is away."""
        client, delay = None, BACKOFF_FIRST
        try:
            while not stop.is_set():
                try:
                    if client is None:
                        client = self._connect({})
                    if client.is_connected():
                        self._scan(client, stop, out, window)
                        self.status, delay, wait = CONNECTED, BACKOFF_FIRST, self.poll_interval
                    else:
                        self.status, wait, delay = RECONNECTING, delay, min(delay * 2, BACKOFF_MAX)
                except self._transient as exc:
                    if self.status != RECONNECTING:
                        log.warning("%s: %s; retrying with backoff", self.uri, describe(exc))
                    self.status, wait, delay = RECONNECTING, delay, min(delay * 2, BACKOFF_MAX)
                stop.wait(wait)
        except Exception as exc:  # not a connection problem: read_batch raises it, the DAG restarts
            log.error("%s: polling failed: %s", self.uri, describe(exc))
            self._failure = exc
        finally:
            if client is not None:
                client.close()

    def _scan(self, client: Any, stop: threading.Event, out: queue.Queue, window: _Window) -> None:
        """Queue the records of the open window, or of a new one up to now - settle, then its end.

        One pass of the query per :data:`WINDOW_CHUNK` records: each queues, in digest order, the
        smallest digests after the last one queued, so what a window holds is never all in memory
        and the position within it is that last digest. A pass cut short (an outage) queues nothing
        and is run again."""
        if window.upper is None:
            upper = (time.time_ns() - int(self.settle * 1e9)) // MS * MS
            if upper <= window.lower:
                return
            window.upper = upper
        exp = self._exp
        expression = exp.And(exp.GE(exp.LastUpdateTime(), window.lower),
                             exp.LT(exp.LastUpdateTime(), window.upper)).compile()
        while True:
            chunk, more = self._pass(client, stop, window, expression)
            for digest, key, bins in chunk:
                if not self._offer(stop, out, ("record", window.upper, digest, self._record(key, bins))):
                    return  # closing: the position says how far the reader got
                window.after = digest
                self._fetched += 1
            if stop.is_set():
                return
            if not more:
                break
        if self._offer(stop, out, ("end", window.upper)):
            window.lower, window.upper, window.after, window.skip = window.upper, None, None, set()

    def _pass(self, client: Any, stop: threading.Event, window: _Window,
              expression: Any) -> tuple[list[tuple[bytes, tuple, Any]], bool]:
        """One query of the window: its :data:`WINDOW_CHUNK` smallest digests after ``window.after``, in
        order, and whether there were more."""
        after, skip = window.after, window.skip
        largest_first: list[tuple[int, bytes, tuple, Any]] = []  # a heap of the smallest digests seen
        seen = 0
        lock = threading.Lock()  # the client may call back from several threads at once

        def each(record: tuple) -> bool:
            nonlocal seen
            if stop.is_set():
                return False  # the documented way to end a query's stream
            key, _meta, bins = record
            digest = bytes(key[3])
            if (after is not None and digest <= after) or digest in skip:
                return True
            entry = (-int.from_bytes(digest, "big"), digest, key, bins)
            with lock:
                seen += 1
                if len(largest_first) < WINDOW_CHUNK:
                    heapq.heappush(largest_first, entry)
                elif entry > largest_first[0]:
                    heapq.heapreplace(largest_first, entry)
            return True

        client.query(self.namespace, self.set).foreach(each, {"expressions": expression})
        chunk = sorted((entry[1:] for entry in largest_first), key=_first)
        return chunk, seen > len(chunk)

    @staticmethod
    def _offer(stop: threading.Event, out: queue.Queue, item: tuple) -> bool:
        """Queue ``item``, waiting while the queue is full; False when the source closes meanwhile."""
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _record(self, key: tuple, bins: Mapping[str, Any] | None) -> dict[str, Any]:
        record = {name: _plain(value) for name, value in (bins or {}).items()}
        if key[2] is not None:  # stored with the record only when written with POLICY_KEY_SEND
            record[self.key_attribute] = _plain(key[2])
        return record

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_TIMEOUT)
            if self._thread.is_alive():
                log.warning("%s: the poller did not stop within %gs", self.uri, CLOSE_TIMEOUT)
        self._thread = None
        self.status = CLOSED


class AerospikeSink(Endpoint, Sink):
    """Puts each record under its key attribute's value in ``aerospike://NAMESPACE/SET``."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self._configure()
        self.ttl = setting(self.config, self.parsed, "ttl", 0, int)
        if self.ttl < -1:
            raise ValueError(f"aerospike 'ttl' must be seconds (> 0), -1 (never expire) or 0 (the namespace's "
                             f"default), not {self.ttl}")
        self.publish_timeout = float(self.config.get("publish_timeout") or 30.0)

    def open(self) -> None:
        """Load the client and connect; an unreachable cluster leaves the sink reconnecting, not failed."""
        self._load()
        self._refusals = client_errors(self._aerospike, REFUSALS)
        aerospike = self._aerospike
        write: dict[str, Any] = {"key": aerospike.POLICY_KEY_SEND, "exists": aerospike.POLICY_EXISTS_CREATE_OR_REPLACE}
        if self.ttl:
            write["ttl"] = aerospike.TTL_NEVER_EXPIRE if self.ttl == -1 else self.ttl
        self._policies = {"write": write}
        self.status = CONNECTED
        try:
            self._client = self._connect(self._policies)
        except self._transient as exc:
            log.warning("%s: %s; writes will retry", self.uri, describe(exc))
            self.status = RECONNECTING

    def write_batch(self, records: list[dict]) -> list[RejectedRecord]:
        if not hasattr(self, "_policies"):
            raise RuntimeError(f"{self!r} is not open")
        refused: list[RejectedRecord] = []
        deadline = time.monotonic() + self.publish_timeout
        for record in records:
            prepared = self._prepare(record)
            if isinstance(prepared, RejectedRecord):
                refused.append(prepared)
            elif reason := self._put(*prepared, deadline):
                refused.append(RejectedRecord(record, reason))
        return refused

    def _prepare(self, record: Any) -> tuple[tuple, dict[str, Any]] | RejectedRecord:
        """The key tuple and bins of ``record``, or why it can never be written."""
        if not isinstance(record, Mapping):
            return RejectedRecord(record, "not a map")
        if self.key_attribute not in record:
            return RejectedRecord(record, f"record has no {self.key_attribute!r} attribute to key it by")
        key = record[self.key_attribute]
        if isinstance(key, bool) or not isinstance(key, str | int | bytes | bytearray) or (
                isinstance(key, int) and not -2**63 <= key < 2**63):
            return RejectedRecord(record, f"key {key!r} in {self.key_attribute!r} is not a string, a 64-bit "
                                          "integer or bytes")
        bins = {name: value for name, value in record.items() if name != self.key_attribute and value is not None}
        if long := [name for name in bins if len(name.encode("utf-8")) > BIN_NAME_MAX]:
            return RejectedRecord(record, f"bin names longer than {BIN_NAME_MAX} bytes: {', '.join(long)}")
        if not bins:
            return RejectedRecord(record, "nothing to store besides the key")
        user_key = bytearray(key) if isinstance(key, bytes | bytearray) else key  # the client takes blobs so
        return (self.namespace, self.set, user_key), bins

    def _put(self, key: tuple, bins: dict[str, Any], deadline: float) -> str | None:
        """Put one record, retrying while the cluster is away; the server's refusal as a reason, else None."""
        delay = BACKOFF_FIRST
        while True:
            try:
                if self._client is None:
                    self._client = self._connect(self._policies)
                self._client.put(key, bins)
                self.status = CONNECTED
                return None
            except self._transient as exc:
                left = deadline - time.monotonic()
                if self.status != RECONNECTING:
                    log.warning("%s: %s; retrying with backoff", self.uri, describe(exc))
                self.status = RECONNECTING
                if left <= 0:
                    raise TimeoutError(f"{self.uri}: not written within publish_timeout "
                                       f"({self.publish_timeout:g}s): {describe(exc)}") from exc
                time.sleep(min(delay, left))
                delay = min(delay * 2, BACKOFF_MAX)
            except self._refusals as exc:
                return f"aerospike refused the record: {describe(exc)}"

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self.status = CLOSED


ADAPTER = Adapter("aerospike", check_aerospike_uri, source=AerospikeSource, sink=AerospikeSink,
                  source_keys=(*KEYS, "poll_interval", "settle"), sink_keys=(*KEYS, "ttl"),
                  extra="aerospike")  # not shareable: each reader scans the whole set
