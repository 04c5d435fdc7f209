"""Fixtures of the adapter tests: real brokers (see tests/support/kafka_broker.py)."""

from tests.support.kafka_broker import kafka_broker, kafka_outage

__all__ = ["kafka_broker", "kafka_outage"]
