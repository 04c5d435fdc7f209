"""Deliberately broken Kafka sources, to prove the multi-host scenarios can fail.

:class:`EarlyCommitKafkaSource` is the ``kafka://`` source with the rule that keeps
at-least-once broken: it commits the group's offsets as soon as it read the records,
before any checkpoint covers them. A server that dies then leaves records that nobody
reads again. :class:`NeverCommitKafkaSource` never commits: whoever takes a partition over
reads it again from its start. For tests only; never use them in a DAG.

Usage (a DAG's subscriber)::

    {"source": "custom://tests.support.broken_kafka.EarlyCommitKafkaSource", "topic": "in",
     "bootstrap_servers": ["10.231.0.10:9092"], "consumer_config": {...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.kafka import KafkaSource


class EarlyCommitKafkaSource(KafkaSource):
    """Reads ``kafka://topic/TOPIC`` (``config["topic"]``) and commits what it read at once."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(f"kafka://topic/{config['topic']}", {k: v for k, v in config.items() if k != "topic"})

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        records = super().read_batch(max_records, timeout)
        if records:
            self._consumer.commit_async(self._request(dict(self._read)))  # before any checkpoint: the bug
        return records

    def commit(self, position: Any) -> None:
        """The checkpoint's commit would take the group's offsets back to what it covers: not done."""


class NeverCommitKafkaSource(EarlyCommitKafkaSource):
    """Reads like the ``kafka://`` source and never commits an offset."""

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        return KafkaSource.read_batch(self, max_records, timeout)
