"""Redis pub/sub (``redis://channel/NAME``, the seed's ``redischannel://NAME``): at-most-once by nature.

Source: a thread of its own subscribes to the channel and puts each message into a buffer
of ``max_buffer`` messages (default 10000); ``read_batch`` takes from it. Pub/sub keeps
nothing: what is published while the subscriber is disconnected is never seen, and a
message arriving while the buffer is full is dropped and counted in the source's
``dropped`` attribute (the runtime reports it as ``dagserver_records_dropped_total``), never
silently. Commits do nothing, the position is the count of messages returned. The thread
pings the server every second: a connection that neither answers nor fails (a hung
network) counts as lost after the socket timeout. Not shareable: every replica would get
every message.

Sink: ``PUBLISH`` per record, one transaction per batch.

Usage::

    src = ChannelSource("redis://channel/ticks", {"max_buffer": 1000})
    src.open(None); batch = src.read_batch(500, timeout=0.05); src.dropped   # 0
    sink = ChannelSink("redischannel://ticks", {}); sink.open(); sink.write_batch([{"t": 1}])
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from adapters.base import positive_setting
from adapters.formats import decode_record, encode_record
from adapters.redis.link import LinkedSink, LinkedSource

log = logging.getLogger("adapters.redis")

DEFAULT_MAX_BUFFER = 10_000
PING_EVERY = 1.0  # seconds between two pings of the subscribed connection
PING = b"dagserver-alive"
LISTEN_WAIT = 0.2  # seconds one wait for a message may take (how soon ``close`` is noticed)


class ChannelSource(LinkedSource):
    """Subscribes to ``redis://channel/NAME``; ``dropped`` counts the messages the full buffer refused."""

    kinds = ("channel",)
    shareable = False

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.max_buffer = positive_setting(self.config, self.parsed, "max_buffer", DEFAULT_MAX_BUFFER) or 1
        self.dropped = 0  # messages lost to a full buffer (wired to dagserver_records_dropped_total)
        self.subscribed = threading.Event()  # set while the channel is subscribed to
        self._buffer: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._count = 0
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._failure: BaseException | None = None  # what stopped the subscriber thread for good

    def open(self, position: Any | None) -> None:
        """Connect and subscribe (in the background, waiting up to ``socket_timeout`` for the server to
        confirm): messages published once open returned are received. Redis keeps nothing for a channel
        nobody subscribes to, so returning before the confirmation lost what was published meanwhile.
        A server that does not confirm in time is retried in the background (``reconnecting``)."""
        self.link.connect()
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, args=(self._stop,), daemon=True,
                                          name=f"redis-channel-{self.name}")
        self._listener.start()
        self.subscribed.wait(self.settings.socket_timeout)

    def _listen(self, stop: threading.Event) -> None:
        """Subscribe, then move messages into the buffer; after a failure, back off and subscribe again."""
        while not stop.is_set():
            wait = self.link.waiting()
            if wait > 0:
                stop.wait(wait)
                continue
            pubsub = None
            try:
                pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.name)
                self._relay(pubsub, stop)
            except Exception as exc:  # this thread must not die of it: report, back off, subscribe again
                self.subscribed.clear()
                if stop.is_set():
                    return
                if self.link.refused(exc):  # wrong credentials: read_batch raises it
                    self._failure = exc
                    return
                if not isinstance(exc, self.link.errors):
                    log.exception("%s: subscriber failed", self.uri)
                self.link.lost(exc)
            finally:
                self.subscribed.clear()
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception as exc:  # a dead connection may complain while closing
                        log.debug("%s: %s", self.uri, exc)

    def _relay(self, pubsub: Any, stop: threading.Event) -> None:
        pubsub.ping(PING)  # its pong comes after the subscription's confirmation: then messages flow
        heard = pinged = time.monotonic()
        limit = PING_EVERY + self.settings.socket_timeout
        while not stop.is_set():
            message = pubsub.get_message(timeout=LISTEN_WAIT)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message.get("type") == "message":
                    self._offer(message["data"])
                elif not self.subscribed.is_set():
                    self.subscribed.set()
                    self.link.ok()
            if now - pinged >= PING_EVERY:
                pubsub.ping(PING)
                pinged = now
            if now - heard > limit:  # neither an answer nor an error: a hung connection
                raise TimeoutError(f"no answer from the server for {now - heard:.1f}s")

    def _offer(self, data: bytes) -> None:
        with self._ready:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    log.warning("%s: buffer full (max_buffer %d): %d messages dropped so far", self.uri,
                                self.max_buffer, self.dropped)
                return
            self._buffer.append(data)
            self._ready.notify()

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self._listener is None:
            raise RuntimeError(f"{self!r} is not open")
        if self._failure is not None:
            raise self._failure
        with self._ready:
            if not self._buffer and timeout > 0:
                self._ready.wait(timeout)
            taken = [self._buffer.popleft() for _ in range(min(max(1, max_records), len(self._buffer)))]
        self._count += len(taken)
        return [decode_record(data, self.settings.format) for data in taken]

    def position(self) -> int:
        return self._count

    def backlog(self) -> int:
        """Messages received and not read yet."""
        return len(self._buffer)

    def close(self) -> None:
        self._stop.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.join(LISTEN_WAIT + self.settings.socket_timeout)
        super().close()


class ChannelSink(LinkedSink):
    """Publishes to ``redis://channel/NAME``: ``PUBLISH`` per record, one transaction per batch."""

    kinds = ("channel",)

    def write_batch(self, records: list[dict]) -> None:
        values = [encode_record(record, self.settings.format) for record in records]  # all, before sending any

        def publish(pipe: Any) -> None:
            for value in values:
                pipe.publish(self.name, value)

        if values:
            self.deliver(publish)
