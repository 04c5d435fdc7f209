"""What a ``kafka://topic/NAME`` destination holds, read without a consumer group (SPEC §13: dead letters).

A consumer with no group is assigned every partition of the topic, starts at the beginning
and reads until it is past the end offsets it saw when it began and a poll brings nothing
(or ``limit`` records), committing nothing, so no group's position moves. Ids are
``PARTITION:OFFSET``; records come partition by partition, each in offset order. Connection
settings come from the URI's query (``?bootstrap_servers=host:9092&format=msgpack``).

Usage::

    read_back_kafka(parse_uri("kafka://topic/dead?bootstrap_servers=127.0.0.1:9092"), 100)
"""

from __future__ import annotations

import time
from typing import Any

from adapters.base import ParsedUri, RejectedRecord, setting
from adapters.formats import FORMATS, decode_record
from adapters.registry import AdapterNotAvailable

READ_TIMEOUT = 15.0  # seconds a read-back may take before it answers with what it has
POLL_MS = 200


def read_back_kafka(parsed: ParsedUri, limit: int) -> list[tuple[str, Any]]:
    """At most ``limit`` ``(PARTITION:OFFSET, record)`` pairs of the topic, oldest first per partition."""
    if len(parsed.parts) != 2 or parsed.parts[0] != "topic":
        raise ValueError(f"kafka URI {parsed.raw!r} must look like kafka://topic/NAME")
    try:
        import kafka
    except ImportError as exc:
        raise AdapterNotAvailable("kafka:// needs the Python package kafka-python: pip install 'dagserver[kafka]'") \
            from exc
    topic = parsed.parts[1]
    servers = setting({}, parsed, "bootstrap_servers", "localhost:9092")
    fmt = str(setting({}, parsed, "format", "json"))
    if fmt not in FORMATS:
        raise ValueError(f"kafka 'format' must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if limit <= 0:
        return []
    consumer = kafka.KafkaConsumer(bootstrap_servers=[s.strip() for s in str(servers).split(",") if s.strip()],
                                   group_id=None, enable_auto_commit=False, metrics_enabled=False)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        assigned = [kafka.TopicPartition(topic, p) for p in partitions]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        found: dict[int, list[tuple[int, Any]]] = {p: [] for p in partitions}
        deadline = time.monotonic() + READ_TIMEOUT
        taken = 0
        while taken < limit and time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=POLL_MS, max_records=limit - taken)
            for tp, messages in got.items():
                for message in messages[:limit - taken]:
                    found[tp.partition].append((message.offset, _letter(message.value, fmt)))
                    taken += 1
            # done once a poll brings nothing and every partition is past the end it had when we began (some
            # brokers report the end of a many-record batch as its first offset + 1: the end alone is not enough)
            if not got and all(consumer.position(tp) >= ends.get(tp, 0) for tp in assigned):
                break
        return [(f"{p}:{offset}", letter) for p in partitions for offset, letter in found[p]]
    finally:
        consumer.close()


def _letter(value: bytes | None, fmt: str) -> Any:
    record = decode_record(value, fmt)
    return {"line": str(record.raw), "error": record.reason} if isinstance(record, RejectedRecord) else record
