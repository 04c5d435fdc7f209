"""Kafka: ``kafka://topic/NAME`` (SPEC §6) through kafka-python, imported only when an endpoint opens.

Source: a consumer group with auto-commit off. Its position is ``{"PARTITION": next offset}``
for the partitions read so far, and ``commit`` commits those offsets (asynchronously) for the
partitions it still owns. The runtime commits only what a checkpoint covers, so the group's
offsets never run ahead of a checkpoint: ``open`` therefore lets the group's committed offsets
decide where to start and ignores the checkpoint's position. Sink: ``acks=all``, one flush per
batch, a failed or overdue send raises. Keys, formats, rebalances, status: docs/ADAPTERS.md.

Usage::

    src = KafkaSource("kafka://topic/prices", {"bootstrap_servers": "127.0.0.1:9092", "group_id": "g"})
    src.open(None); batch = src.read_batch(500, timeout=0.05); src.commit(src.position())
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from adapters.base import (
    CLOSED,
    CONNECTED,
    RECONNECTING,
    Adapter,
    ParsedUri,
    Sink,
    Source,
    always_shared,
    default_group,
    kind_and_name,
    publish_limit,
    setting,
)
from adapters.formats import FORMATS, decode_record, encode_record
from adapters.kafka_readback import read_back_kafka
from adapters.registry import AdapterNotAvailable

log = logging.getLogger(__name__)

KEYS = ("bootstrap_servers", "group_id", "start", "max_depth", "format")
STARTS = ("earliest", "latest")
BACKOFF_MAX_MS = 10_000  # SPEC §6: reconnect with a backoff capped at 10 s
LAG_REFRESH = 1.0  # seconds between two measurements of the consumer lag
LAG_TIMEOUT_MS = 2000
CLOSE_TIMEOUT = 2.0  # seconds close() may wait for the last commits and the group leave
# what a consumer / producer gets unless consumer_config / producer_config say otherwise
CONSUMER_DEFAULTS: dict[str, Any] = {"reconnect_backoff_max_ms": BACKOFF_MAX_MS, "bootstrap_timeout_ms": 10_000,
                                     "metrics_enabled": False}
PRODUCER_DEFAULTS: dict[str, Any] = {**CONSUMER_DEFAULTS, "linger_ms": 5}


def check_kafka_uri(parsed: ParsedUri) -> str | None:
    return kind_and_name(parsed, ("topic",))


def load_kafka() -> Any:
    """The kafka-python package (3 or newer), or a clear error naming the extra that installs it."""
    try:
        import kafka
    except ImportError as exc:
        raise AdapterNotAvailable("kafka:// needs the Python package kafka-python: "
                                  "pip install 'dagserver[kafka]'") from exc
    if not hasattr(kafka, "AsyncConsumerRebalanceListener"):  # what 3.x added and this adapter relies on
        raise AdapterNotAvailable(f"kafka:// needs kafka-python 3 or newer, not {kafka.__version__}: "
                                  "pip install -U 'dagserver[kafka]' 'kafka-python>=3'")
    return kafka


def _settings(config: Mapping[str, Any], parsed: ParsedUri) -> tuple[str, list[str], str]:
    """The topic, the bootstrap servers and the format of an endpoint (config first, else the URI query)."""
    if problem := check_kafka_uri(parsed):
        raise ValueError(problem)
    servers = setting(config, parsed, "bootstrap_servers", "localhost:9092")
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    fmt = str(setting(config, parsed, "format", "json"))
    if fmt not in FORMATS:
        raise ValueError(f"kafka 'format' must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return parsed.parts[1], list(servers), fmt


def _client_config(cls: Any, defaults: Mapping[str, Any], given: Any) -> dict[str, Any]:
    """``defaults`` the installed client knows, overlaid with the user's ``consumer_config``/``producer_config``."""
    known = getattr(cls, "DEFAULT_CONFIG", None)
    out = {k: v for k, v in defaults.items() if known is None or k in known}
    out.update(given or {})
    return out


def _connected(client: Any, grouped: bool = False) -> bool:
    """Whether a consumer/producer has a live broker connection (and, ``grouped``, knows its group coordinator).
    kafka-python's public API does not say: this reads its connection manager (3.x layout); True when
    that layout is not found, leaving poll errors as the only signal."""
    coordinator = getattr(client, "_coordinator", None)
    if grouped and coordinator is not None and coordinator.coordinator_unknown():
        return False
    manager = getattr(client, "_manager", None) or getattr(getattr(getattr(client, "_sender", None), "_client", None),
                                                           "_manager", None)
    conns = getattr(manager, "_conns", None)
    if not isinstance(conns, dict):
        return True
    return any(getattr(conn, "connected", False) for conn in list(conns.values()))


class KafkaSource(Source):
    """Reads ``kafka://topic/NAME`` in a consumer group; position = ``{"PARTITION": next offset}``."""

    shareable = True

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.topic, self.servers, self.format = _settings(self.config, self.parsed)
        self.start = str(setting(self.config, self.parsed, "start", "earliest"))
        if self.start not in STARTS:
            raise ValueError(f"kafka 'start' must be 'earliest' or 'latest', not {self.start!r}")
        self.group_id = str(setting(self.config, self.parsed, "group_id", "") or default_group(self.config, self.topic))
        self._consumer: Any = None
        self._kafka: Any = None
        self._lock = threading.Lock()  # the rebalance listener runs on the client's IO thread
        self._read: dict[int, int] = {}  # partition -> next offset after the last record returned
        self._floor: dict[int, int] = {}  # partition -> first offset read since it was (re)assigned
        self._told: dict[int, int] = {}  # partition -> last offset the runtime said to commit
        self._confirmed: dict[int, int] = {}  # partition -> last offset the broker confirmed committed
        self._lag: int | None = None
        self._stop_lag = threading.Event()
        self._starts: dict[int, int | None] = {}  # unread partition -> the group's committed offset (for the lag)

    def open(self, position: Any | None) -> None:
        """Join the group; where reading starts is the group's committed offsets (``position`` is not used)."""
        kafka = self._kafka = load_kafka()
        settings = _client_config(kafka.KafkaConsumer, CONSUMER_DEFAULTS, self.config.get("consumer_config"))
        settings.update(bootstrap_servers=self.servers, group_id=self.group_id, enable_auto_commit=False,
                        auto_offset_reset=self.start)
        self._consumer = kafka.KafkaConsumer(**settings)
        self._consumer.subscribe([self.topic], listener=_listener(kafka, self))
        self._read, self._floor, self._told, self._confirmed = {}, {}, {}, {}
        self._joined = False  # until the first assignment the group coordinator is still being looked up
        self._kept_alive = time.monotonic()
        self._stop_lag = threading.Event()
        threading.Thread(target=self._watch_lag, args=(self._consumer, self._stop_lag), daemon=True,
                         name=f"kafka-lag-{self.topic}").start()
        self.status = CONNECTED

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError(f"{self!r} is not open")
        try:
            polled = consumer.poll(timeout_ms=int(max(0.0, timeout) * 1000), max_records=max(1, max_records))
        except self._kafka.errors.KafkaError as exc:
            if not getattr(exc, "retriable", False) and not isinstance(exc, self._kafka.errors.KafkaConnectionError):
                raise
            log.warning("%s: %s; retrying", self.uri, exc)
            self.status = RECONNECTING
            return []
        out: list[Any] = []
        fmt = self.format
        with self._lock:
            for tp, messages in ((tp, m) for tp, m in polled.items() if m):
                self._floor.setdefault(tp.partition, messages[0].offset)
                self._read[tp.partition] = messages[-1].offset + 1
                out.extend(decode_record(m.value, fmt) for m in messages)
        self.status = CONNECTED if _connected(consumer, grouped=self._joined) else RECONNECTING
        return out

    def keep_alive(self) -> None:
        """The DAG is not reading (backpressure): poll with every partition paused, at most once a second,
        so the group does not take this consumer for dead after ``max_poll_interval_ms``."""
        consumer = self._consumer
        if consumer is None or time.monotonic() - self._kept_alive < 1.0:
            return
        self._kept_alive = time.monotonic()
        owned = list(consumer.assignment())
        consumer.pause(*owned)
        try:
            consumer.poll(timeout_ms=0)
        finally:
            consumer.resume(*owned)

    def position(self) -> dict[str, int]:
        with self._lock:
            return {str(p): offset for p, offset in sorted(self._read.items())}

    def backlog(self) -> int | None:
        """Consumer lag summed over the assigned partitions, as measured last (see :meth:`_measure_lag`)."""
        return self._lag

    def _watch_lag(self, consumer: Any, stop: threading.Event) -> None:
        """Measure the lag every LAG_REFRESH seconds on a thread of its own: it takes broker requests."""
        while not stop.wait(LAG_REFRESH):
            try:
                self._lag = self._measure_lag(consumer)
            except Exception as exc:  # the broker is away, or the consumer is closing: keep the last figure
                log.debug("%s: lag not measured: %s", self.uri, exc)

    def _measure_lag(self, consumer: Any) -> int | None:
        """End offset minus the next offset to read, per partition: the position where this consumer read,
        else the group's committed offset. The end is the larger of the broker's end offset and the
        high-water mark of the last fetch."""
        owned = list(consumer.assignment())
        if not owned:
            return None
        ends = consumer.end_offsets(owned, timeout_ms=LAG_TIMEOUT_MS)
        with self._lock:
            read = dict(self._read)
        lag = 0
        for tp in owned:
            end = max(ends.get(tp) or 0, consumer.highwater(tp) or 0)
            if tp.partition not in read and tp.partition not in self._starts:  # asked once per assignment
                self._starts[tp.partition] = consumer.committed(tp, timeout_ms=LAG_TIMEOUT_MS)
            done = read.get(tp.partition, self._starts.get(tp.partition))
            if done is None:  # nothing committed: ``start`` decides
                done = 0 if self.start == "earliest" else end
            lag += max(0, end - done)
        return lag

    def commit(self, position: Any) -> None:
        """Commit ``position``'s offsets for the partitions still owned, read since they were assigned."""
        consumer = self._consumer
        if consumer is None or not isinstance(position, Mapping):
            return
        owned = {tp.partition for tp in consumer.assignment()}
        offsets = {}
        with self._lock:
            for key, offset in position.items():
                partition = int(key)
                floor = self._floor.get(partition)
                if partition not in owned or floor is None or offset <= floor or offset < self._told.get(partition, 0):
                    continue  # not ours (any more), nothing read since (re)assigned, or older than what we sent
                self._told[partition] = offset
                if offset > self._confirmed.get(partition, -1):  # a failed commit is sent again
                    offsets[partition] = offset
        self._send_commit(offsets)

    def _request(self, offsets: dict[int, int]) -> dict[Any, Any]:
        kafka = self._kafka
        return {kafka.TopicPartition(self.topic, p): kafka.OffsetAndMetadata(o) for p, o in offsets.items()}

    def _send_commit(self, offsets: dict[int, int]) -> Any:
        consumer = self._consumer
        if not offsets or consumer is None:
            return None
        return consumer.commit_async(self._request(offsets), callback=self._committed)

    def _committed(self, offsets: Mapping[Any, Any], result: Any) -> None:
        if isinstance(result, BaseException):
            log.warning("%s: offset commit failed (%s); the next checkpoint commits again", self.uri, result)
            return
        with self._lock:
            for tp, meta in offsets.items():
                self._confirmed[tp.partition] = max(meta.offset, self._confirmed.get(tp.partition, -1))

    def _unconfirmed(self, partitions: Any = None) -> dict[int, int]:
        with self._lock:
            return {p: o for p, o in self._told.items()
                    if (partitions is None or p in partitions) and o > self._confirmed.get(p, -1)}

    def revoked(self, partitions: set[int], lost: bool = False) -> Any:
        """The group took ``partitions`` away: commit what we were told for them (unless lost), then forget.
        Returns the commit's future (None when there was nothing to commit)."""
        offsets = {} if lost else self._unconfirmed(partitions)
        self._starts = {}
        with self._lock:
            for table in (self._read, self._floor, self._told, self._confirmed):
                for p in partitions:
                    table.pop(p, None)
        return self._send_commit(offsets)

    def assigned(self, partitions: set[int]) -> None:
        self._joined = True
        self._starts = {}
        with self._lock:
            for p in partitions:
                self._read.pop(p, None)
                self._floor.pop(p, None)

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._stop_lag.set()
        if consumer is not None:
            offsets = self._unconfirmed()
            try:
                if offsets:
                    consumer.commit(self._request(offsets), timeout_ms=int(CLOSE_TIMEOUT * 1000))
            except Exception as exc:
                log.warning("%s: last offsets not committed on close (%s); they will be read again", self.uri, exc)
            finally:
                consumer.close(autocommit=False, timeout_ms=int(CLOSE_TIMEOUT * 1000))
        self.status = CLOSED


def _listener(kafka: Any, source: KafkaSource) -> Any:
    """A rebalance listener telling ``source`` about revoked, lost and assigned partitions. kafka-python runs
    it on its IO loop; being async, it awaits the revoked partitions' commit without holding up heartbeats."""

    class Listener(kafka.AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: Any) -> None:
            future = source.revoked({tp.partition for tp in revoked})
            if future is not None:
                try:
                    await future
                except Exception as exc:
                    log.warning("%s: commit on revoke failed (%s); the new owner reads those records again",
                                source.uri, exc)

        async def on_partitions_lost(self, lost: Any) -> None:  # evicted: a commit would be refused
            source.revoked({tp.partition for tp in lost}, lost=True)

        async def on_partitions_assigned(self, assigned: Any) -> None:
            source.assigned({tp.partition for tp in assigned})

    return Listener()


class KafkaSink(Sink):
    """Writes ``kafka://topic/NAME`` with ``acks=all``; one flush per batch."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.topic, self.servers, self.format = _settings(self.config, self.parsed)
        self.key_attribute = setting(self.config, self.parsed, "key_attribute", None)
        self.wait_limit = publish_limit(self.config)
        self._producer: Any = None
        self._kafka: Any = None

    def open(self) -> None:
        kafka = self._kafka = load_kafka()
        defaults = {**PRODUCER_DEFAULTS, "max_block_ms": int(self.wait_limit * 1000)}
        settings = _client_config(kafka.KafkaProducer, defaults, self.config.get("producer_config"))
        settings.update(bootstrap_servers=self.servers, acks="all")
        self._producer = kafka.KafkaProducer(**settings)
        self.status = CONNECTED

    def _key(self, record: Any) -> bytes | None:
        value = record.get(self.key_attribute) if self.key_attribute and isinstance(record, Mapping) else None
        if value is None:
            return None
        return bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode("utf-8")

    def write_batch(self, records: list[dict]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError(f"{self!r} is not open")
        # encode all first: a record that cannot be encoded sends nothing of the batch
        encoded = [(self._key(r), encode_record(r, self.format)) for r in records]
        futures = [producer.send(self.topic, value=value, key=key) for key, value in encoded]
        self._wait(futures)

    def _wait(self, futures: list[Any]) -> None:
        """Flush until every send of the batch is acknowledged; raise on the first failure or at the limit."""
        deadline = time.monotonic() + self.wait_limit
        while True:
            try:
                self._producer.flush(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                break
            except self._kafka.errors.KafkaTimeoutError:
                self.status = RECONNECTING if not _connected(self._producer) else self.status
                if time.monotonic() >= deadline:
                    pending = sum(1 for f in futures if not f.is_done)
                    raise self._kafka.errors.KafkaTimeoutError(
                        f"{self.uri}: {pending} of {len(futures)} messages not acknowledged after "
                        f"{self.wait_limit:g}s") from None
        for future in futures:
            if future.failed():
                self.status = CONNECTED if _connected(self._producer) else RECONNECTING
                raise future.exception
        self.status = CONNECTED

    def flush(self) -> None:
        if self._producer is not None:
            self._wait([])

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.flush(timeout=CLOSE_TIMEOUT)
            except Exception as exc:
                log.warning("%s: messages still unacknowledged at close (%s)", self.uri, exc)
            finally:
                producer.close(timeout=CLOSE_TIMEOUT)
        self.status = CLOSED


ADAPTER = Adapter("kafka", check_kafka_uri, source=KafkaSource, sink=KafkaSink,
                  source_keys=(*KEYS, "consumer_config"), sink_keys=(*KEYS, "key_attribute", "producer_config"),
                  shareable=always_shared,  # consumer groups spread partitions over the replicas
                  extra="kafka", read_back=read_back_kafka)
