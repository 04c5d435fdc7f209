"""Redis streams (``redis://stream/NAME``): a consumer group reading, ``XADD`` writing.

Each entry carries one record in its field ``data`` (config ``field`` to change it).
Source: one consumer per replica in the group ``group`` (default ``dagserver.DAG.SUBSCRIBER``,
made from the stream's first entry, with the stream, when missing). Reading goes: first
this consumer's own pending entries (``XREADGROUP`` from id 0: what a crash left, or what a
lost reply delivered), then entries pending on dead consumers for ``claim_idle_ms``
(``XCLAIM``: a dead replica's), then new entries (``XREADGROUP >``, blocking less than the
socket timeout). A consumer is dead when its liveness key (``NAME:group:GROUP:CONSUMER:alive``,
refreshed by every open consumer on its reads and keep-alives: adapters/redis/liveness.py)
has expired, i.e. it has not been heard of for ``claim_idle_ms``; a live consumer's entries
are never claimed, however long they wait for its checkpoint.

The position is ``{"token": T, "n": N}``: the first N entries this incarnation returned;
``commit`` acknowledges (``XACK``) their ids. The group's pending list therefore decides
what is read again after a restart, and ``open`` does not use its position. An entry
without the field, or whose field does not parse, is a
:class:`~adapters.base.RejectedRecord`, acknowledged with the rest once its epoch commits.

Sink: ``XADD`` per record, one pipeline per batch (not a transaction: a batch cut by an outage is
sent again whole, which at-least-once allows, and MULTI/EXEC would cost a reply per entry), with
``MAXLEN ~ maxlen`` when given.

Usage::

    src = StreamSource("redis://stream/events", {"group": "g", "consumer": "c1"})
    src.open(None); batch = src.read_batch(500, timeout=0.05); src.commit(src.position())
    sink = StreamSink("redis://stream/events", {"maxlen": 100000}); sink.open(); sink.write_batch([{"a": 1}])
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from adapters.base import CONNECTED, RejectedRecord, default_group, positive_setting, setting
from adapters.formats import decode_record, encode_record
from adapters.redis.link import LinkedSink, LinkedSource, chunks, consumer_name
from adapters.redis.liveness import Liveness, alive_key, are_alive

log = logging.getLogger("adapters.redis")

DEFAULT_FIELD = "data"
DEFAULT_CLAIM_IDLE_MS = 30_000
BACKLOG_REFRESH = 1.0  # seconds between two measurements of the group's lag
START = b"0-0"


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class StreamSource(LinkedSource):
    """Reads ``redis://stream/NAME`` in a consumer group; position = ``{"token": T, "n": N}``."""

    kinds = ("stream",)
    shareable = True

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.field = str(setting(self.config, self.parsed, "field", DEFAULT_FIELD))
        self._field = self.field.encode("utf-8")
        self.group = str(setting(self.config, self.parsed, "group", "") or default_group(self.config, self.name))
        self.consumer = consumer_name(self.config, self.parsed)
        self.claim_idle_ms = positive_setting(self.config, self.parsed, "claim_idle_ms", DEFAULT_CLAIM_IDLE_MS) or 1
        self.claim_every = min(max(self.claim_idle_ms / 2000, 0.1), 5.0)  # seconds between two claim rounds
        self.liveness = Liveness(self._alive_key(self.consumer), self.claim_idle_ms)
        self.token = ""
        self._reset()
        self._backlog: int | None = None
        self._backlog_at = 0.0

    def _reset(self) -> None:
        self._count = 0  # entries returned by this incarnation (their ids are in _ids until committed)
        self._committed = 0
        self._ids: deque[bytes] = deque()
        self._taken: set[bytes] = set()  # ids this incarnation returned and has not acknowledged
        self._to_ack: list[bytes] = []
        self._grouped = False  # the group is known to exist
        self._pending_from: bytes | None = START  # reading this consumer's pending entries, after this id
        self._claim_at = 0.0

    def _alive_key(self, consumer: str) -> str:
        return alive_key(f"{self.name}:group:{self.group}", consumer)

    def open(self, position: Any | None) -> None:
        """Connect; the group's pending entries, not ``position``, decide what is read again."""
        self.link.connect()
        self.token = uuid.uuid4().hex[:16]
        self._reset()
        self.liveness.again()  # type: ignore[union-attr]

    def _take(self, n: int, timeout: float) -> list[Any]:
        try:
            return self._read(n, timeout)
        except self.link.server_errors as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("%s: group %r is gone (%s); making it again", self.uri, self.group, exc)
            self._grouped, self._pending_from = False, START
            return []

    def _lost(self, exc: BaseException) -> None:
        self._pending_from = START  # a lost reply may have delivered entries: read our pending list again
        super()._lost(exc)

    def _make_group(self) -> None:
        try:
            self.link.client.xgroup_create(self.name, self.group, id="0", mkstream=True)
            log.info("%s: made consumer group %r", self.uri, self.group)
        except self.link.server_errors as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped = True

    def _read(self, n: int, timeout: float) -> list[Any]:
        client = self.link.client
        if not self._grouped:
            self._make_group()
        if self._to_ack:
            self._ack()
        now = time.monotonic()
        claiming = now >= self._claim_at
        if claiming and self._pending_from is None and self._unseen():
            self._pending_from = START
        while self._pending_from is not None:  # ours first: what a crash or a lost reply left pending
            reply = client.xreadgroup(self.group, self.consumer, {self.name: self._pending_from}, count=n)
            entries = reply[0][1] if reply else []
            if not entries:
                self._pending_from = None
                break
            self._pending_from = entries[-1][0]
            fresh = [entry for entry in entries if entry[0] not in self._taken]
            if fresh:
                return self._entries(fresh)
        if claiming:  # then a dead consumer's
            entries = self._claim_dead(n)
            if not entries:
                self._claim_at = now + self.claim_every  # else claim again at the next read: there may be more
            fresh = [entry for entry in entries if entry[0] not in self._taken]
            if fresh:
                return self._entries(fresh)
        block = int(min(timeout, self.settings.block) * 1000)  # BLOCK 0 would mean forever
        reply = client.xreadgroup(self.group, self.consumer, {self.name: ">"}, count=n, block=block or None)
        return self._entries(reply[0][1] if reply else [])

    def _claim_dead(self, n: int) -> list[Any]:
        """Up to ``n`` entries pending for ``claim_idle_ms`` on consumers whose liveness key expired, claimed."""
        client = self.link.client
        summary = client.xpending(self.name, self.group)
        others = [_text(c.get("name")) for c in summary.get("consumers") or ()
                  if int(c.get("pending") or 0) and _text(c.get("name")) != self.consumer]
        alive = are_alive(client, [self._alive_key(other) for other in others])
        for other, living in zip(others, alive, strict=True):
            if living:
                continue
            rows = client.xpending_range(self.name, self.group, min="-", max="+", count=n, consumername=other,
                                         idle=self.claim_idle_ms)
            stale = [row["message_id"] for row in rows]
            if not stale:
                continue
            claimed = client.xclaim(self.name, self.group, self.consumer, self.claim_idle_ms, stale)
            log.warning("%s: consumer %r silent for %d ms; claimed %d of its pending entries",
                        self.uri, other, self.claim_idle_ms, len(claimed))
            if claimed:
                return list(claimed)
        return []

    def _unseen(self) -> bool:
        """Whether the group holds more entries pending on this consumer than it returned: a read whose
        reply was lost, or that a hung connection delivered late, gave it some."""
        summary = self.link.client.xpending(self.name, self.group)
        mine = [c["pending"] for c in summary.get("consumers") or () if _text(c.get("name")) == self.consumer]
        return bool(mine) and int(mine[0]) > len(self._taken)

    def _entries(self, entries: list[Any]) -> list[Any]:
        """The records of ``entries``; an entry deleted from the stream while pending is acknowledged now."""
        out: list[Any] = []
        gone: list[bytes] = []
        for entry_id, fields in entries:
            if not fields:
                gone.append(entry_id)
                continue
            self._ids.append(entry_id)
            self._taken.add(entry_id)
            value = fields.get(self._field)
            if value is None:
                out.append(RejectedRecord({_text(k): _text(v) for k, v in fields.items()},
                                          f"stream entry {_text(entry_id)} has no field {self.field!r}"))
            else:
                out.append(decode_record(value, self.settings.format))
        self._count += len(out)
        if gone:
            self.link.client.xack(self.name, self.group, *gone)
        return out

    def position(self) -> dict[str, Any]:
        return {"token": self.token, "n": self._count}

    def commit(self, position: Any) -> None:
        """Acknowledge the entries ``position`` covers (of this incarnation only)."""
        if not isinstance(position, Mapping) or position.get("token") != self.token or self.link.client is None:
            return
        done = min(int(position.get("n") or 0), self._count)
        while self._committed < done:
            self._to_ack.append(self._ids.popleft())
            self._committed += 1
        if self._to_ack and self.link.waiting() == 0:
            try:
                self._ack()
            except self.link.errors as exc:  # acknowledged at the next commit or read
                self._lost(exc)

    def _ack(self) -> None:
        pipe = self.link.client.pipeline(transaction=False)
        for run in chunks(self._to_ack):
            pipe.xack(self.name, self.group, *run)
        pipe.execute()
        self._taken.difference_update(self._to_ack)
        self._to_ack = []

    def backlog(self) -> int | None:
        """The group's lag (entries not yet delivered to it), measured at most once a second."""
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_REFRESH and self.link.client is not None and self.status == CONNECTED:
            self._backlog_at = now
            try:
                self._backlog = self._measure()
            except self.link.errors as exc:
                self._lost(exc)
            except Exception as exc:  # no stream yet, a server without XINFO: unknown
                log.debug("%s: lag not measured: %s", self.uri, exc)
                self._backlog = None
        return self._backlog

    def _measure(self) -> int | None:
        client = self.link.client
        for group in client.xinfo_groups(self.name):
            if _text(group.get("name")) == self.group:
                if group.get("lag") is not None:
                    return int(group["lag"])
                # the server cannot tell (entries deleted in between) or is older than 7: estimate
                return max(0, int(client.xlen(self.name)) - int(group.get("entries-read") or 0))
        return None

    def close(self) -> None:
        if self._to_ack and self.link.client is not None:
            try:
                self._ack()
            except Exception as exc:
                log.warning("%s: %d entries not acknowledged at close (%s); they are read again",
                            self.uri, len(self._to_ack), exc)
        super().close()


class StreamSink(LinkedSink):
    """Appends to ``redis://stream/NAME``: ``XADD`` per record (``MAXLEN ~ maxlen``), one pipeline per batch."""

    kinds = ("stream",)

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.field = str(setting(self.config, self.parsed, "field", DEFAULT_FIELD))
        self.maxlen = positive_setting(self.config, self.parsed, "maxlen", None)

    def write_batch(self, records: list[dict]) -> None:
        values = [encode_record(record, self.settings.format) for record in records]  # all, before sending any

        def add(pipe: Any) -> None:
            for value in values:
                pipe.xadd(self.name, {self.field: value}, maxlen=self.maxlen, approximate=True)

        if values:
            self.deliver(add, atomic=False)
