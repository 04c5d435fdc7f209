"""Fixtures of the adapter tests: real brokers (see tests/support/kafka_broker.py)."""

from tests.support.kafka_broker import kafka_broker, kafka_outage
from tests.support.redis_service import redis_keys, redis_proxy  # noqa: F401

__all__ = ["kafka_broker", "kafka_outage"]
