"""Redis lists as a reliable queue (``redis://list/NAME``), and the key sink (``redis://key``).

Source: items are moved atomically (a Lua script around ``LMOVE``) from the head of NAME to
the tail of this consumer's processing list ``NAME:processing:CONSUMER``, so the processing
list holds, oldest first, exactly what this consumer took and has not committed. The
position is ``{"token": T, "read": N}``: the N items this incarnation (token T) returned.
``commit`` removes the oldest items of the processing list up to N (``LTRIM``). The hash
``NAME:processing:CONSUMER:mark`` (token, items removed, generation) makes that idempotent:
a retried or late commit never removes an item twice. To wait for items, ``BLMOVE`` puts one
in ``NAME:processing:CONSUMER:landing``, which the next move empties first.

A command whose reply is lost (the connection dropped, or hung and gave up) may still run
on the server, even later. So after any error the source asks how long its processing
list is (what it did not see is read from there) and starts a new generation: a move sent
before, arriving late, finds a generation that is not its own and does nothing.

After a crash the processing list keeps what was taken: ``open`` first removes what the
checkpoint's position covers (when that position belongs to the incarnation that left the
list), then reads the rest again before taking new items. ``close`` puts uncommitted items
back at the head of NAME, in order, so a consumer that does not come back leaves nothing
behind.

No item is stranded when a consumer name is gone for good (a failover to a host of another
name, fewer replicas): the position also names its consumer, and a checkpoint naming another
consumer's processing list *adopts* it at first contact (what the checkpoint covers is
removed, the rest put back at the head of NAME, read first). Every consumer registers in the
set ``NAME:consumers`` and keeps a liveness key ``NAME:processing:CONSUMER:alive`` fresh
(adapters/redis/liveness.py); every few seconds each consumer gives back, the same way, the
processing list of any registered consumer whose key expired, i.e. silent for
``claim_idle_ms`` (default 30000). A live consumer's list is never touched.

Sink: one ``RPUSH`` per batch. Key sink: ``SET`` of each record under the value of its
``key_attribute``, without that attribute.

Usage::

    src = ListSource("redis://list/jobs", {"consumer": "worker-1"})
    src.open(None); batch = src.read_batch(500, timeout=0.05); src.commit(src.position())
    sink = KeySink("redis://key", {}); sink.open(); sink.write_batch([{"__dagserver_key": "k1", "v": 1}])
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from adapters.base import CONNECTED, RejectedRecord, positive_setting, setting
from adapters.formats import decode_record, encode_record
from adapters.redis.link import LinkedSink, LinkedSource, chunks, consumer_name
from adapters.redis.liveness import Liveness, alive_key, are_alive

log = logging.getLogger("adapters.redis")

BACKLOG_REFRESH = 1.0  # seconds between two measurements of the list's length
DEFAULT_CLAIM_IDLE_MS = 30_000  # a consumer silent this long is dead: its processing list is given back
DEFAULT_KEY_ATTRIBUTE = "__dagserver_key"

# KEYS: the processing list, its mark (a hash: token, gen, removed). ARGV: a token, how many items of that
# token's incarnation are done, the token from now on. Removes what is done and not removed yet, and
# starts a new generation: moves sent before it (a hung connection's, arriving late) are refused.
# Returns {length of the processing list, items removed by the token from now on, generation}, or
# {-1, -1, -1} when the mark belongs to another incarnation (the consumer name is in use elsewhere), or
# {-2, -2, -2} when there is no mark any more (the items were given back: the consumer was silent).
SETTLE = """
local token, done, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local mark = redis.call('HMGET', KEYS[2], 'token', 'removed')
local owned = mark[1] == token
local removed = 0
if owned then removed = tonumber(mark[2]) end
if owned and done > removed then
  redis.call('LTRIM', KEYS[1], done - removed, -1)
  removed = done
end
if now ~= token then
  removed = 0
elseif not owned then
  if not mark[1] then return {-2, -2, -2} end
  return {-1, -1, -1}
end
local gen = redis.call('HINCRBY', KEYS[2], 'gen', 1)
redis.call('HSET', KEYS[2], 'token', now, 'removed', removed)
return {redis.call('LLEN', KEYS[1]), removed, gen}
"""

# KEYS: the list, the processing list, the mark, the landing list (where BLMOVE puts what it waited for).
# ARGV: token, generation, how many. Moves up to that many items, the landing list's first, to the
# processing list and returns them; -1 (nothing moved) when token or generation are not the mark's.
MOVE = """
local mark = redis.call('HMGET', KEYS[3], 'token', 'gen')
if mark[1] ~= ARGV[1] or mark[2] ~= ARGV[2] then return -1 end
local out, n = {}, tonumber(ARGV[3])
for _, from in ipairs({KEYS[4], KEYS[1]}) do
  while #out < n do
    local item = redis.call('LMOVE', from, KEYS[2], 'LEFT', 'RIGHT')
    if not item then break end
    out[#out + 1] = item
  end
end
return out
"""

# KEYS: the processing list, the landing list, the list, the mark, the liveness key, the consumer set.
# ARGV: token, consumer, how many items of that token's incarnation are done. Removes those still there,
# puts every other item back at the head of the list, in order, and forgets the consumer. Nothing (-1)
# when the mark is another incarnation's; with token '' when the consumer is alive instead (a reclaim).
GIVE_BACK = """
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
else
  local mark = redis.call('HMGET', KEYS[4], 'token', 'removed')
  if mark[1] ~= ARGV[1] then return -1 end
  local done = tonumber(ARGV[3]) - (tonumber(mark[2]) or 0)
  if done > 0 then redis.call('LTRIM', KEYS[1], done, -1) end
end
local n = 0
for _, from in ipairs({KEYS[2], KEYS[1]}) do
  while redis.call('LMOVE', from, KEYS[3], 'RIGHT', 'LEFT') do n = n + 1 end
end
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('SREM', KEYS[6], ARGV[2])
return n
"""


class ConsumerInUse(RuntimeError):
    """Another reader opened the same processing list (two sources with one ``consumer`` name)."""


class ListSource(LinkedSource):
    """Reads ``redis://list/NAME`` as a reliable queue; position = ``{"token": T, "read": N}``."""

    kinds = ("list",)
    shareable = True

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.consumer = consumer_name(self.config, self.parsed)
        self.processing, self.mark, self.landing, alive = self._keys(self.consumer)
        self.consumers = f"{self.name}:consumers"
        self.claim_idle_ms = positive_setting(self.config, self.parsed, "claim_idle_ms", DEFAULT_CLAIM_IDLE_MS) or 1
        self.claim_every = min(max(self.claim_idle_ms / 2000, 0.1), 5.0)  # seconds between two reclaim rounds
        self._claim_at = 0.0
        self.liveness = Liveness(alive, self.claim_idle_ms)
        self.token = ""
        self._gen = 0  # the mark's generation this incarnation's moves carry
        self._read = 0  # items returned by this incarnation
        self._removed = 0  # of those, removed from the processing list
        self._done = 0  # of those, the most the runtime said were committed
        self._unread: int | None = None  # items in the processing list not yet returned (None: ask)
        self._opening: tuple[str, int, str] | None = None  # the checkpoint's (token, read, consumer) till contact
        self._backlog: int | None = None
        self._backlog_at = 0.0
        self._scripts: dict[str, Any] = {}

    def _keys(self, consumer: str) -> tuple[str, str, str, str]:
        """A consumer's processing list, its mark, its landing list and its liveness key."""
        processing = f"{self.name}:processing:{consumer}"
        return processing, f"{processing}:mark", f"{processing}:landing", alive_key(f"{self.name}:processing", consumer)

    def open(self, position: Any | None) -> None:
        """Connect; on first contact remove what ``position`` covers, then read the processing list first."""
        client = self.link.connect()
        self._scripts = {name: client.register_script(text)
                         for name, text in (("move", MOVE), ("settle", SETTLE), ("give_back", GIVE_BACK))}
        self.token = uuid.uuid4().hex[:16]
        self._read = self._removed = self._done = 0
        self._unread = None
        prior = position if isinstance(position, Mapping) else {}
        self._opening = (str(prior.get("token") or ""), int(prior.get("read") or 0),
                         str(prior.get("consumer") or self.consumer))
        self._claim_at = 0.0
        self.liveness.again()  # type: ignore[union-attr]

    def _take(self, n: int, timeout: float) -> list[Any]:
        return [decode_record(item, self.settings.format) for item in self._fetch(n, timeout)]

    def _lost(self, exc: BaseException) -> None:
        self._unread = None  # a lost reply may have moved items: count them again
        super()._lost(exc)

    def _settle(self, token: str, done: int, now: str) -> int:
        """Run SETTLE; the processing list's length (this incarnation's removed count and generation kept)."""
        length, removed, gen = self._scripts["settle"](keys=[self.processing, self.mark], args=[token, done, now])
        if length == -2:  # given back while silent: what this run read is in the list again, for anyone
            log.warning("%s: consumer %r was silent for claim_idle_ms (%d ms) and its items were given back; "
                        "they are read again, and this source reads on as a new run", self.uri, self.consumer,
                        self.claim_idle_ms)
            self.token = uuid.uuid4().hex[:16]  # commits of the old run's positions do nothing from now on
            self._read = self._removed = self._done = 0
            self.link.client.sadd(self.consumers, self.consumer)
            self.liveness.again()  # type: ignore[union-attr]
            length, removed, gen = self._scripts["settle"](keys=[self.processing, self.mark],
                                                           args=["", 0, self.token])
        if length < 0:
            raise ConsumerInUse(f"{self.uri}: another reader opened {self.processing!r}; give each source "
                                f"its own 'consumer' (now {self.consumer!r})")
        self._removed, self._gen = int(removed), int(gen)
        return int(length)

    def _sync(self) -> None:
        """Where this incarnation stands in its processing list: at first contact (the items a crash left
        are read first), and after an error (items moved by a command whose reply was lost are unread)."""
        if self._opening is not None:
            token, done, consumer = self._opening
            if consumer != self.consumer:  # the checkpoint names another consumer's list: adopt it
                self._give_back(consumer, token, done)
                token, done = "", 0
            self._unread = self._settle(token, done, self.token)
            self.link.client.sadd(self.consumers, self.consumer)
            self._opening = None
            return
        length = self._settle(self.token, self._done, self.token)
        self._unread = max(0, length - (self._read - self._removed))

    def _give_back(self, consumer: str, token: str, done: int) -> int:
        """Put ``consumer``'s uncommitted items back at the head of the list (GIVE_BACK): with ``token``
        those past the ``done`` first of that incarnation, else (a reclaim) all, if it is dead."""
        processing, mark, landing, alive = self._keys(consumer)
        given = self._scripts["give_back"](keys=[processing, landing, self.name, mark, alive, self.consumers],
                                           args=[token, consumer, done])
        if given and given > 0 and consumer != self.consumer:
            log.warning("%s: %d items left by consumer %r put back on %r (%s)", self.uri, given, consumer, self.name,
                        f"adopted by the checkpoint of {self.consumer!r}" if token else
                        f"silent for {self.claim_idle_ms} ms")
        return int(given or 0)

    def _reclaim(self) -> None:
        """Give back the processing lists of registered consumers whose liveness key expired."""
        client = self.link.client
        others = sorted({m.decode() if isinstance(m, bytes) else str(m) for m in client.smembers(self.consumers)}
                        - {self.consumer})
        for other, alive in zip(others, are_alive(client, [self._keys(o)[3] for o in others]), strict=True):
            if not alive:
                self._give_back(other, "", 0)
        self._claim_at = time.monotonic() + self.claim_every

    def _fetch(self, n: int, timeout: float) -> list[bytes]:
        if self._unread is None:
            self._sync()
        if time.monotonic() >= self._claim_at:
            self._reclaim()
        if self._unread:
            start = self._read - self._removed
            items = self.link.client.lrange(self.processing, start, start + min(n, self._unread) - 1)
            self._unread = self._unread - len(items) if items else 0
        else:
            items = self._move(n)
            if not items and timeout > 0 and self._unread == 0:
                block = min(timeout, self.settings.block)
                if self.link.client.blmove(self.name, self.landing, block, "LEFT", "RIGHT") is not None:
                    items = self._move(n)
        self._read += len(items)
        return items

    def _move(self, n: int) -> list[bytes]:
        moved = self._scripts["move"](keys=[self.name, self.processing, self.mark, self.landing],
                                      args=[self.token, self._gen, n])
        if moved == -1:  # the mark moved on without us knowing: find out where it stands
            self._unread = None
            return []
        return list(moved)

    def position(self) -> dict[str, Any]:
        return {"token": self.token, "read": self._read, "consumer": self.consumer}

    def commit(self, position: Any) -> None:
        """Remove from the processing list the items ``position`` covers (of this incarnation only)."""
        if not isinstance(position, Mapping) or position.get("token") != self.token or self.link.client is None:
            return
        self._done = max(self._done, min(int(position.get("read") or 0), self._read))
        if self._done <= self._removed or self._opening is not None or self.link.waiting() > 0:
            return  # nothing new, or not now: the next commit or the next contact removes them
        try:
            self._settle(self.token, self._done, self.token)
        except self.link.errors as exc:
            self._unread = None
            self.link.lost(exc)

    def backlog(self) -> int | None:
        """Items waiting in the list plus those of the processing list not read yet, measured once a second."""
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_REFRESH and self.link.client is not None and self.status == CONNECTED:
            self._backlog_at = now
            try:
                self._backlog = int(self.link.client.llen(self.name)) + (self._unread or 0)
            except self.link.errors as exc:
                self._unread = None
                self.link.lost(exc)
        return self._backlog

    def close(self) -> None:
        """Remove what was committed, put the rest back at the head of the list; a failure leaves it in the
        processing list, read first by this consumer next time."""
        if self.link.client is not None and self._opening is None:
            try:
                self._settle(self.token, self._done, self.token)
                given = self._give_back(self.consumer, self.token, self._done)
                if given > 0:
                    log.info("%s: %d uncommitted items put back on %r", self.uri, given, self.name)
            except Exception as exc:
                log.warning("%s: uncommitted items stay in %r (%s); consumer %r reads them first when it opens "
                            "again", self.uri, self.processing, exc, self.consumer)
        super().close()


class ListSink(LinkedSink):
    """Appends to ``redis://list/NAME``: one ``RPUSH`` (per 1000 items) per batch, in one transaction."""

    kinds = ("list",)

    def write_batch(self, records: list[dict]) -> None:
        values = [encode_record(record, self.settings.format) for record in records]  # all, before sending any

        def push(pipe: Any) -> None:
            for run in chunks(values):
                pipe.rpush(self.name, *run)

        if values:
            self.deliver(push)


def key_text(value: Any) -> str | bytes | None:
    """A key attribute's value as a Redis key; None when it cannot be one (absent, null, a list, a map)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | bytes | int | float):
        return value if isinstance(value, str | bytes) else str(value)
    return None


class KeySink(LinkedSink):
    """``redis://key``: ``SET`` each record (without its key attribute) under that attribute's value."""

    kinds = ("key",)

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.key_attribute = str(setting(self.config, self.parsed, "key_attribute", DEFAULT_KEY_ATTRIBUTE))

    def write_batch(self, records: list[dict]) -> list[RejectedRecord]:
        pairs: list[tuple[str | bytes, bytes]] = []
        refused: list[RejectedRecord] = []
        attribute = self.key_attribute
        for record in records:
            key = key_text(record.get(attribute)) if isinstance(record, Mapping) else None
            if not key:
                refused.append(RejectedRecord(record, f"no usable key: the record needs a string or number "
                                                      f"attribute {attribute!r} to be SET under"))
                continue
            value = {k: v for k, v in record.items() if k != attribute}
            pairs.append((key, encode_record(value, self.settings.format)))

        def store(pipe: Any) -> None:
            for key, value in pairs:
                pipe.set(key, value)

        if pairs:
            self.deliver(store)
        return refused
