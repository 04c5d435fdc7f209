"""ActiveMQ over STOMP: ``activemq://queue/NAME`` and ``activemq://topic/NAME`` (SPEC §6), through stomp.py.

Source (:mod:`adapters.activemq.source`): ack mode ``client-individual``; a message is
consumed on the broker only once the checkpoint covering its epoch was written. Queue
subscribers compete (shareable: replicas split the messages); topic subscribers each get
everything (not shareable), durably with ``durable_name``. Sink: one STOMP transaction per
batch (persistent messages by default), whose ``COMMIT`` carries the one receipt awaited per
batch: the epoch is acknowledged only after the broker confirmed it. The connection code is
in :mod:`adapters.activemq.link`. Keys, formats, status: docs/ADAPTERS.md.

Usage::

    sink = ActiveMQSink("activemq://queue/orders", {"host": "mq1", "username": "app", "password": "${MQ_PW}"})
    sink.open(); sink.write_batch([{"id": 1}]); sink.close()
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from adapters.activemq.link import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    CONNECT_TIMEOUT,
    BrokerRefused,
    StompLink,
    check_activemq_uri,
    connect_first,
    endpoint,
    frame,
    frame_head,
    keep_connected,
    load_stomp,
)
from adapters.activemq.source import DEFAULT_PREFETCH, ActiveMQSource, minimum_prefetch
from adapters.base import (
    CLOSED,
    CONNECTED,
    RECONNECTING,
    SOURCE,
    Adapter,
    ConfigProblem,
    ParsedUri,
    RejectedRecord,
    Sink,
    positive_setting,
    publish_limit,
    setting,
)
from adapters.formats import encode_record

log = logging.getLogger(__name__)

KEYS = ("host", "port", "username", "password", "max_depth", "format", "avro_schema", "heartbeats")
SOURCE_KEYS = (*KEYS, "durable_name", "client_id", "prefetch")
SINK_KEYS = (*KEYS, "persistent")
CONTENT_TYPES = {"json": "application/json", "msgpack": "application/msgpack", "avro": "avro/binary"}


def check_prefetch(parsed: ParsedUri, config: Mapping[str, Any], role: str,
                   dag: Mapping[str, int]) -> list[ConfigProblem]:
    """``dagserver check``: a subscriber's ``prefetch`` must hold what its DAG reads before it may acknowledge
    (see :func:`adapters.activemq.source.minimum_prefetch`), or reading stalls for good."""
    if role != SOURCE:
        return []
    try:
        prefetch = positive_setting(config, parsed, "prefetch", DEFAULT_PREFETCH) or DEFAULT_PREFETCH
    except ValueError:
        return [ConfigProblem("prefetch", "prefetch must be a positive integer (a number of messages)")]
    every, records = dag["checkpoint.every_epochs"], dag["epochs.max_records"]
    minimum = minimum_prefetch(every, records)
    if prefetch >= minimum:
        return []
    given = f"prefetch {prefetch}" if "prefetch" in config or "prefetch" in parsed.params else \
        f"the default prefetch ({DEFAULT_PREFETCH})"
    return [ConfigProblem(
        "prefetch",
        f"{given} is below {minimum}, the least this DAG needs: messages are acknowledged only once the "
        f"checkpoint covering their epoch is written, every checkpoint.every_epochs ({every}) epochs of up to "
        f"epochs.max_records ({records}) records, so the broker must let ({every} - 1) * {records} + 1 = "
        f"{minimum} messages wait unacknowledged for the next checkpoint to come; with fewer, reading stalls "
        "for good",
        f"set prefetch to {minimum} or more ({2 * every * records} keeps reading while checkpoints are "
        "written), or lower checkpoint.every_epochs or epochs.max_records")]


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


class ActiveMQSink(Sink):
    """Writes ``activemq://queue/NAME`` or ``activemq://topic/NAME``: a transaction and a receipt per batch."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.where = endpoint(self.config, self.parsed)
        self.persistent = setting(self.config, self.parsed, "persistent", True, _flag)
        self.wait_limit = publish_limit(self.config)
        self._link: StompLink | None = None
        self._connecting = threading.Lock()
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    def open(self) -> None:
        """Connect. A broker refusing the login raises; one out of reach is retried in the background."""
        link = self._link = StompLink(load_stomp(), self.where, label=self.uri)
        self._closing.clear()
        try:
            connect_first(link)
            self.status = CONNECTED
        except BrokerRefused:
            raise
        except ConnectionError as exc:
            log.warning("%s: %s; retrying", self.uri, exc)
            self.status = RECONNECTING
        self._keeper = threading.Thread(target=keep_connected, args=(link, self._reconnect, self._set_status,
                                                                     self._closing), daemon=True,
                                        name=f"activemq-sink-{self.where.name}")
        self._keeper.start()

    def _reconnect(self, timeout: float = CONNECT_TIMEOUT) -> int:
        """A live connection's generation, connecting when there is none (the writer and the keeper share it)."""
        link = self._link
        if link is None:
            raise ConnectionError(f"{self.uri} is closed")
        with self._connecting:
            return link.generation if link.alive else link.connect(timeout)

    def _set_status(self, status: str) -> None:
        self.status = status

    def _bodies(self, records: list[dict]) -> tuple[list[bytes], list[RejectedRecord]]:
        """Each record encoded; the records that cannot be encoded, as rejects."""
        fmt = self.where.format
        bodies, rejected = [], []
        for record in records:
            try:
                bodies.append(encode_record(record, fmt))
            except (TypeError, ValueError, OverflowError) as exc:
                rejected.append(RejectedRecord(raw=record, reason=f"cannot be written as {fmt}: {exc}"))
        return bodies, rejected

    def write_batch(self, records: list[dict]) -> list[RejectedRecord] | None:
        """Send the batch in one transaction and wait for the broker's receipt of its COMMIT.

        While the broker is away: ``reconnecting``, reconnect (backoff capped at 10 s) and send
        the whole batch again; raise once ``publish_timeout`` seconds went by.
        """
        if self._link is None:
            raise RuntimeError(f"{self!r} is not open")
        bodies, rejected = self._bodies(records)
        if bodies:
            self._deliver(bodies)
        return rejected or None

    def _deliver(self, bodies: list[bytes]) -> None:
        link = self._link
        assert link is not None
        deadline = time.monotonic() + self.wait_limit
        backoff, problem = BACKOFF_INITIAL, ""
        while True:
            generation = None
            try:
                generation = self._reconnect(max(0.5, min(CONNECT_TIMEOUT, deadline - time.monotonic())))
                self._send(link, generation, bodies, deadline)
                self.status = CONNECTED
                return
            except ConnectionError as exc:
                problem = str(exc)
                self.status = RECONNECTING
                if generation is not None:
                    link.lost(generation)  # its open transaction is rolled back with it
            left = deadline - time.monotonic()
            if left <= 0:
                broker_said = f"; the broker said: {link.last_error}" if link.last_error else ""
                raise ConnectionError(f"{self.uri}: a batch of {len(bodies)} messages not accepted within "
                                      f"{self.wait_limit:g}s ({problem}{broker_said})")
            log.warning("%s: %s; sending the batch again", self.uri, problem)
            time.sleep(min(left, backoff * (1.0 + 0.2 * random.random())))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _send(self, link: StompLink, generation: int, bodies: list[bytes], deadline: float) -> None:
        transaction, receipt = uuid.uuid4().hex, link.new_receipt()
        fmt = self.where.format
        head = frame_head("SEND", {"destination": self.where.destination, "transaction": transaction,
                                   "persistent": "true" if self.persistent else "false",
                                   "content-type": CONTENT_TYPES[fmt]})  # escaped once per batch
        data = [frame("BEGIN", {"transaction": transaction})]
        if fmt != "json":  # msgpack and avro bytes need a content-length (ActiveMQ makes a BytesMessage of them)
            data += [b"%scontent-length:%d\n\n%s\x00" % (head, len(body), body) for body in bodies]
        else:  # JSON goes without one, which ActiveMQ keeps as a TextMessage for JMS consumers
            data += [head + b"\n" + body + b"\x00" for body in bodies]
        data.append(frame("COMMIT", {"transaction": transaction, "receipt": receipt}))
        link.send_frames(generation, b"".join(data))
        if not link.wait_receipt(generation, receipt, deadline - time.monotonic()):
            raise ConnectionError(f"no receipt from the broker for the batch's commit ({link.last_error or 'silent'})")

    def close(self) -> None:
        self._closing.set()
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(5.0)
        self.status = CLOSED


ADAPTER = Adapter("activemq", check_activemq_uri, source=ActiveMQSource, sink=ActiveMQSink,
                  source_keys=SOURCE_KEYS, sink_keys=SINK_KEYS, check_config=check_prefetch,
                  shareable=lambda u: u.part(0) == "queue",  # queue consumers compete; topic ones all get all
                  extra="activemq")
