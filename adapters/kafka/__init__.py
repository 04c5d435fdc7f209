"""Kafka: ``kafka://topic/NAME`` (SPEC §6) through kafka-python, imported only when an endpoint opens.

Source: a consumer group with auto-commit off. Its position is ``{"PARTITION": next offset}``,
and ``commit`` commits those offsets (asynchronously) for the partitions it owns. The runtime
commits only what a checkpoint covers. A position in the checkpoint wins over ``start`` and
over a missing, expired or older group offset: on every assignment the consumer seeks to the
later of the two, and tells the group when the checkpoint was ahead. A broker down at ``open()``
leaves the source ``reconnecting`` (kafka_link.Opener). The sink is in adapters/kafka/sink.py.
Keys, formats, rebalances, status: docs/ADAPTERS.md.

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

from adapters.base import CLOSED, CONNECTED, RECONNECTING, Adapter, Source, always_shared, default_group, setting
from adapters.formats import decode_record
from adapters.kafka.link import (
    CLOSE_TIMEOUT,
    CONSUMER_DEFAULTS,
    Opener,
    check_kafka_uri,
    client_config,
    connected,
    endpoint_settings,
    given_client_config,
    load_kafka,
    make_client,
)
from adapters.kafka.readback import read_back_kafka
from adapters.kafka.sink import KafkaSink

log = logging.getLogger(__name__)

KEYS = ("bootstrap_servers", "group_id", "start", "max_depth", "format", "avro_schema")
STARTS = ("earliest", "latest")
LAG_REFRESH = 1.0  # seconds between two measurements of the consumer lag
LAG_TIMEOUT_MS = 2000  # also how long an assignment waits for the group's offsets of checkpointed partitions


def _offsets(position: Any) -> dict[int, int]:
    """A checkpoint's ``{"PARTITION": offset}`` as ints (anything else: nothing known)."""
    if not isinstance(position, Mapping):
        return {}
    try:
        return {int(p): int(o) for p, o in position.items() if int(o) >= 0}
    except (TypeError, ValueError):
        log.warning("ignoring a kafka position that is not {partition: offset}: %r", position)
        return {}


class KafkaSource(Source):
    """Reads ``kafka://topic/NAME`` in a consumer group; position = ``{"PARTITION": next offset}``."""

    shareable = True

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.topic, self.servers, self.format = endpoint_settings(self.config, self.parsed)
        self.start = str(setting(self.config, self.parsed, "start", "earliest"))
        if self.start not in STARTS:
            raise ValueError(f"kafka 'start' must be 'earliest' or 'latest', not {self.start!r}")
        self.group_id = str(setting(self.config, self.parsed, "group_id", "") or default_group(self.config, self.topic))
        self.client_settings = given_client_config(self.config, "consumer_config")
        self._consumer: Any = None
        self._kafka: Any = None
        self._opener: Opener | None = None
        self._lock = threading.Lock()  # the rebalance listener runs on the client's IO thread
        self._known: dict[int, int] = {}  # partition -> offset everything before which is done (see position)
        self._read: dict[int, int] = {}  # partition -> next offset after the last record returned
        self._floor: dict[int, int] = {}  # partition -> first offset read since it was (re)assigned
        self._told: dict[int, int] = {}  # partition -> last offset the runtime said to commit
        self._confirmed: dict[int, int] = {}  # partition -> last offset the broker confirmed committed
        self._unplaced: set[int] = set()  # assigned partitions whose first offset is not known yet
        self._held: dict[Any, list[Any]] = {}  # what a keep_alive poll returned, handed out by the next read
        self._lag: int | None = None
        self._stop_lag = threading.Event()
        self._starts: dict[int, int | None] = {}  # unread partition -> the group's committed offset (for the lag)

    def open(self, position: Any | None) -> None:
        """Join the group. Each partition is read from the checkpoint's ``position`` when it has one (or
        from the group's offset when that is later), else from the group's offset, else per ``start``.
        A broker out of reach leaves the source ``reconnecting`` while the client is made again."""
        kafka = self._kafka = load_kafka()
        self._known, self._read, self._floor, self._told, self._confirmed = _offsets(position), {}, {}, {}, {}
        self._unplaced, self._held, self._joined = set(), {}, False  # _joined: the group has assigned once
        self._kept_alive = time.monotonic()
        settings = client_config(kafka.KafkaConsumer, CONSUMER_DEFAULTS, self.client_settings)
        settings.update(bootstrap_servers=self.servers, group_id=self.group_id, enable_auto_commit=False,
                        auto_offset_reset=self.start)
        self.status = CONNECTED
        self._opener = Opener(self, kafka, lambda: self._make(settings), self._use)
        self._opener.start()

    def _make(self, settings: dict[str, Any]) -> Any:
        consumer = make_client(self._kafka.KafkaConsumer, settings)
        try:
            consumer.subscribe([self.topic], listener=_listener(self._kafka, self))
        except BaseException:
            consumer.close(autocommit=False)
            raise
        return consumer

    def _use(self, consumer: Any) -> None:
        self._consumer = consumer
        self._stop_lag = threading.Event()
        threading.Thread(target=self._watch_lag, args=(consumer, self._stop_lag), daemon=True,
                         name=f"kafka-lag-{self.topic}").start()

    def _poll(self, consumer: Any, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        """``consumer.poll``; an error kafka-python calls retriable is an outage (logged, ``{}``)."""
        try:
            return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except self._kafka.errors.KafkaError as exc:
            if not getattr(exc, "retriable", False) and not isinstance(exc, self._kafka.errors.KafkaConnectionError):
                raise
            log.warning("%s: %s; retrying", self.uri, exc)
            self.status = RECONNECTING
            return {}

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        consumer = self._consumer
        if consumer is None:  # not open, or no broker answered yet
            if self._opener is None:
                raise RuntimeError(f"{self!r} is not open")
            self._opener.raise_failure()
            self._opener.made.wait(max(0.0, timeout))
            return []
        if self._held:
            polled = self._take_held(max(1, max_records))
        else:
            polled = self._poll(consumer, int(max(0.0, timeout) * 1000), max(1, max_records))
        out: list[Any] = []
        fmt = self.format
        with self._lock:
            for tp, messages in ((tp, m) for tp, m in polled.items() if m):
                self._floor.setdefault(tp.partition, messages[0].offset)
                self._read[tp.partition] = messages[-1].offset + 1
                out.extend(decode_record(m.value, fmt) for m in messages)
            if self._unplaced:
                self._place(consumer)
        self.status = CONNECTED if connected(consumer, grouped=self._joined) else RECONNECTING
        return out

    def _take_held(self, n: int) -> dict[Any, list[Any]]:
        """At most ``n`` of the records a keep_alive poll returned, the first ones of each partition."""
        out: dict[Any, list[Any]] = {}
        with self._lock:
            for tp, messages in list(self._held.items()):
                if n <= 0:
                    break
                out[tp], rest = messages[:n], messages[n:]
                n -= len(out[tp])
                if rest:
                    self._held[tp] = rest
                else:
                    del self._held[tp]
        return out

    def _place(self, consumer: Any) -> None:
        """Note the offset each newly assigned partition that gave nothing yet is read from (the group's,
        or ``start``'s), so a checkpoint holds it: a restart resumes there even if the group has no offset.
        kafka-python keeps it in its subscription state (3.x layout); without that layout nothing is noted."""
        states = getattr(getattr(consumer, "_subscription", None), "assignment", None)
        waiting = {tp.partition for tp in self._held}  # their position is past records not handed out yet
        for p in list(self._unplaced - waiting):
            state = states.get(self._kafka.TopicPartition(self.topic, p)) if isinstance(states, dict) else None
            at = getattr(getattr(state, "position", None), "offset", None)
            if p in self._read or state is None or at is not None:
                self._unplaced.discard(p)
            if isinstance(at, int) and at >= 0 and p not in self._read:
                self._known[p] = max(at, self._known.get(p, -1))

    def keep_alive(self) -> None:
        """The DAG is not reading (backpressure): poll with every partition paused, at most once a second,
        so the group does not take this consumer for dead after ``max_poll_interval_ms``. A rebalance in
        that poll may take partitions away (only those still owned are resumed) or give new ones (what
        they return is kept for the next read)."""
        consumer = self._consumer
        if consumer is None or time.monotonic() - self._kept_alive < 1.0:
            return
        self._kept_alive = time.monotonic()
        owned = consumer.assignment()
        consumer.pause(*owned)
        try:
            polled = self._poll(consumer, 0, 1)
        finally:
            consumer.resume(*(owned & consumer.assignment()))
        with self._lock:
            for tp, messages in polled.items():
                self._held.setdefault(tp, []).extend(messages)

    def position(self) -> dict[str, int]:
        """Per partition: the next offset after the last record returned; for a partition not read since
        it was assigned, the offset reading starts at (checkpointed, or the group's, or ``start``'s)."""
        with self._lock:
            merged = {**self._known, **self._read}
        return {str(p): offset for p, offset in sorted(merged.items())}

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
        """End offset minus the next offset to read, per partition: the position where this consumer read
        (or starts reading), else the group's committed offset. The end is the larger of the broker's end
        offset and the high-water mark of the last fetch."""
        owned = list(consumer.assignment())
        if not owned:
            return None
        ends = consumer.end_offsets(owned, timeout_ms=LAG_TIMEOUT_MS)
        with self._lock:
            read = {**self._known, **self._read}
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
        """Commit ``position``'s offsets for the partitions still owned, read since they were assigned, with
        every earlier offset the broker did not confirm (a failed commit is counted and sent again here)."""
        consumer = self._consumer
        if consumer is None or not isinstance(position, Mapping):
            return
        owned = {tp.partition for tp in consumer.assignment()}
        with self._lock:
            for key, offset in position.items():
                partition = int(key)
                floor = self._floor.get(partition)
                if partition not in owned or floor is None or offset <= floor or offset < self._told.get(partition, 0):
                    continue  # not ours (any more), nothing read since (re)assigned, or older than what we sent
                self._told[partition] = offset
                self._known[partition] = max(offset, self._known.get(partition, -1))
        self._send_commit(self._unconfirmed(owned))

    def _request(self, offsets: dict[int, int]) -> dict[Any, Any]:
        kafka = self._kafka
        return {kafka.TopicPartition(self.topic, p): kafka.OffsetAndMetadata(o) for p, o in offsets.items()}

    def _send_commit(self, offsets: dict[int, int]) -> Any:
        """Commit ``offsets`` asynchronously: the commit's future, or None (nothing to send, or it could not
        be sent: counted, and the offsets stay unconfirmed for the next commit)."""
        consumer = self._consumer
        if not offsets or consumer is None:
            return None
        try:
            return consumer.commit_async(self._request(offsets), callback=self._committed)
        except self._kafka.errors.KafkaError as exc:  # no broker to ask for the coordinator, say
            self._committed({}, exc)
            return None

    def _committed(self, offsets: Mapping[Any, Any], result: Any) -> None:
        if isinstance(result, BaseException):
            self.commit_errors += 1
            log.warning("%s: offset commit failed (%s); the next commit sends it again", self.uri, result)
            return
        with self._lock:
            for tp, meta in offsets.items():
                self._confirmed[tp.partition] = max(meta.offset, self._confirmed.get(tp.partition, -1))

    def _unconfirmed(self, partitions: Any) -> dict[int, int]:
        """The known offsets of ``partitions`` the broker has not confirmed yet."""
        with self._lock:
            return {p: o for p, o in self._known.items() if p in partitions and o > self._confirmed.get(p, -1)}

    def revoked(self, partitions: set[int], lost: bool = False) -> Any:
        """The group took ``partitions`` away: commit what is known done of them (unless lost: a commit
        would be refused; then it stays known, for the seek should they come back), then forget them.
        Returns the commit's future (None when there was nothing to commit)."""
        offsets = {} if lost else self._unconfirmed(partitions)
        self._starts = {}
        with self._lock:
            for table in (self._read, self._floor, self._told, self._confirmed, *(() if lost else (self._known,))):
                for p in partitions:
                    table.pop(p, None)
            self._unplaced -= partitions
            self._held = {tp: m for tp, m in self._held.items() if tp.partition not in partitions}
        return self._send_commit(offsets)

    async def assigned(self, partitions: set[int]) -> None:
        """The group gave ``partitions``: seek those with a known offset to the later of it and the group's
        offset, and commit it where the group's is missing or older (so any later owner starts there)."""
        self._joined = True
        self._starts = {}
        with self._lock:
            for p in partitions:
                self._read.pop(p, None)
                self._floor.pop(p, None)
            known = {p: self._known[p] for p in partitions if p in self._known}
            self._unplaced |= partitions - known.keys()
        consumer = self._consumer
        if not known or consumer is None:
            return
        group = await self._group_offsets(consumer, known)
        behind = {}
        with self._lock:
            for p, offset in known.items():
                at = max(offset, group.get(p) or -1) if group is not None else offset
                try:
                    consumer.seek(self._kafka.TopicPartition(self.topic, p), at)
                except ValueError:  # no longer assigned: the next assignment seeks
                    continue
                self._known[p] = at
                if group is not None and group.get(p) is not None:
                    self._confirmed[p] = group[p]
                if group is not None and at > (group.get(p) or -1):
                    behind[p] = at
        if behind:
            log.info("%s: the group's offsets %s are behind the checkpoint; committing %s", self.uri,
                     {p: (group or {}).get(p) for p in behind}, behind)
            self._send_commit(behind)

    async def _group_offsets(self, consumer: Any, partitions: Mapping[int, int]) -> dict[int, int | None] | None:
        """The group's committed offsets of ``partitions`` (None for one without), or None when they could
        not be fetched. Runs on kafka-python's IO loop, so it awaits its coordinator (3.x layout)."""
        fetch = getattr(getattr(consumer, "_coordinator", None), "fetch_committed_offsets_async", None)
        if fetch is None:
            return None
        tps = {self._kafka.TopicPartition(self.topic, p) for p in partitions}
        try:
            found = await fetch(tps, timeout_ms=LAG_TIMEOUT_MS)
        except Exception as exc:
            log.warning("%s: the group's offsets are unknown (%s); reading from the checkpoint's", self.uri, exc)
            return None
        out: dict[int, int | None] = dict.fromkeys(partitions)
        for tp, meta in (found or {}).items():
            offset = getattr(meta, "offset", None)
            out[tp.partition] = offset if isinstance(offset, int) and offset >= 0 else None
        return out

    def close(self) -> None:
        opener, self._opener = self._opener, None
        if opener is not None:
            opener.close()
        consumer, self._consumer = self._consumer, None
        self._stop_lag.set()
        if consumer is not None:
            try:
                offsets = self._unconfirmed({tp.partition for tp in consumer.assignment()})
                if offsets:
                    consumer.commit(self._request(offsets), timeout_ms=int(CLOSE_TIMEOUT * 1000))
            except Exception as exc:
                self.commit_errors += 1
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
                except Exception as exc:  # counted by the commit's callback
                    log.warning("%s: commit on revoke failed (%s); the new owner reads those records again",
                                source.uri, exc)

        async def on_partitions_lost(self, lost: Any) -> None:  # evicted: a commit would be refused
            source.revoked({tp.partition for tp in lost}, lost=True)

        async def on_partitions_assigned(self, assigned: Any) -> None:
            await source.assigned({tp.partition for tp in assigned})

    return Listener()


ADAPTER = Adapter("kafka", check_kafka_uri, source=KafkaSource, sink=KafkaSink,
                  source_keys=(*KEYS, "consumer_config"), sink_keys=(*KEYS, "key_attribute", "producer_config"),
                  shareable=always_shared,  # consumer groups spread partitions over the replicas
                  extra="kafka", read_back=read_back_kafka)
