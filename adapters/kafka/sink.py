"""The Kafka sink (``kafka://topic/NAME`` as a destination; the source and the adapter's declaration are
in adapters/kafka.py). ``acks=all``, one flush per batch, the batch acknowledged when every message
is. A record Kafka refuses for itself alone (too large, invalid) or that cannot be encoded is
returned as a :class:`RejectedRecord` (a publish error: counted, dead-lettered) and the rest of the
batch is delivered; a broker that stays away for ``publish_timeout`` raises. A broker down at
``open()`` leaves the sink ``reconnecting`` while the producer is made again (kafka_link.Opener).

Usage::

    sink = KafkaSink("kafka://topic/priced", {"bootstrap_servers": "127.0.0.1:9092"})
    sink.open(); refused = sink.write_batch([{"id": 1}]); sink.close()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from adapters.base import CLOSED, CONNECTED, RECONNECTING, RejectedRecord, Sink, publish_limit, setting
from adapters.formats import encode_record
from adapters.kafka.link import (
    CLOSE_TIMEOUT,
    PRODUCER_DEFAULTS,
    RECORD_ERRORS,
    TOO_LARGE,
    Opener,
    client_config,
    connected,
    endpoint_settings,
    given_client_config,
    load_kafka,
    make_client,
)

log = logging.getLogger(__name__)


class KafkaSink(Sink):
    """Writes ``kafka://topic/NAME`` with ``acks=all``; one flush per batch."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.topic, self.servers, self.format = endpoint_settings(self.config, self.parsed)
        self.key_attribute = setting(self.config, self.parsed, "key_attribute", None)
        self.wait_limit = publish_limit(self.config)
        self.client_settings = given_client_config(self.config, "producer_config")
        self._producer: Any = None
        self._kafka: Any = None
        self._opener: Opener | None = None
        self._refusals: tuple[type[BaseException], ...] = ()

    def open(self) -> None:
        """Make the producer; a broker out of reach leaves the sink ``reconnecting`` while it is made again."""
        kafka = self._kafka = load_kafka()
        self._refusals = tuple(getattr(kafka.errors, name) for name in RECORD_ERRORS if hasattr(kafka.errors, name))
        defaults = {**PRODUCER_DEFAULTS, "max_block_ms": int(self.wait_limit * 1000)}
        settings = client_config(kafka.KafkaProducer, defaults, self.client_settings)
        settings.update(bootstrap_servers=self.servers, acks="all")
        self.status = CONNECTED
        self._opener = Opener(self, kafka, lambda: make_client(kafka.KafkaProducer, settings), self._use)
        self._opener.start()

    def _use(self, producer: Any) -> None:
        self._producer = producer

    def _ready(self, deadline: float) -> Any:
        """The producer, waiting until ``deadline`` for one while no broker answered yet."""
        opener = self._opener
        if opener is None:
            raise RuntimeError(f"{self!r} is not open")
        while self._producer is None and opener.failure is None and time.monotonic() < deadline:
            opener.made.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if self._opener is not opener:
                raise RuntimeError(f"{self!r} was closed")
        opener.raise_failure()
        if self._producer is None:
            raise self._kafka.errors.KafkaTimeoutError(
                f"{self.uri}: no broker answered within {self.wait_limit:g}s (publish_timeout)")
        return self._producer

    def _key(self, record: Any) -> bytes | None:
        value = record.get(self.key_attribute) if self.key_attribute and isinstance(record, Mapping) else None
        if value is None:
            return None
        return bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode("utf-8")

    def write_batch(self, records: list[dict]) -> list[RejectedRecord] | None:
        """Send every record, flush once, wait for every acknowledgement. A record that cannot be encoded,
        or that Kafka refuses for itself alone (too large, invalid), is returned as a reject; the rest of the
        batch is delivered. A broker that stays away for ``publish_timeout`` raises."""
        deadline = time.monotonic() + self.wait_limit
        producer = self._ready(deadline)
        refused: list[RejectedRecord] = []
        sent: list[tuple[dict, Any]] = []
        for record in records:
            try:
                value = encode_record(record, self.format)
            except (TypeError, ValueError, OverflowError) as exc:
                refused.append(RejectedRecord(raw=record, reason=f"cannot be written as {self.format}: {exc}"))
                continue
            try:
                sent.append((record, producer.send(self.topic, value=value, key=self._key(record))))
            except self._refusals as exc:  # the producer's own check (max_request_size), before sending
                refused.append(self._refused(record, exc))
        self._wait([future for _, future in sent], deadline)
        for record, future in sent:
            if future.failed():
                if not isinstance(future.exception, self._refusals):
                    self.status = CONNECTED if connected(self._producer) else RECONNECTING
                    raise future.exception
                refused.append(self._refused(record, future.exception))
        return refused or None

    def _refused(self, record: dict, exc: BaseException) -> RejectedRecord:
        if type(exc).__name__ in TOO_LARGE:
            why = (f"too large for kafka topic {self.topic!r} ({exc}); raise producer_config 'max_request_size' "
                   "and the topic's 'max.message.bytes', or publish smaller records")
        else:
            why = f"refused by kafka topic {self.topic!r}: {exc}"
        return RejectedRecord(raw=record, reason=why)

    def _wait(self, futures: list[Any], deadline: float) -> None:
        """Flush until every send is done (acknowledged or failed); raise once ``deadline`` passed."""
        while True:
            try:
                self._producer.flush(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                break
            except self._kafka.errors.KafkaTimeoutError:
                self.status = RECONNECTING if not connected(self._producer) else self.status
                if time.monotonic() >= deadline:
                    pending = sum(1 for f in futures if not f.is_done)
                    raise self._kafka.errors.KafkaTimeoutError(
                        f"{self.uri}: {pending} of {len(futures)} messages not acknowledged after "
                        f"{self.wait_limit:g}s") from None
        self.status = CONNECTED

    def flush(self) -> None:
        if self._producer is not None:
            self._wait([], time.monotonic() + self.wait_limit)

    def close(self) -> None:
        opener, self._opener = self._opener, None
        if opener is not None:
            opener.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.flush(timeout=CLOSE_TIMEOUT)
            except Exception as exc:
                log.warning("%s: messages still unacknowledged at close (%s)", self.uri, exc)
            finally:
                producer.close(timeout=CLOSE_TIMEOUT)
        self.status = CLOSED
