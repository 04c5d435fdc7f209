"""Fixtures of the adapter tests: real brokers (see tests/support/kafka_broker.py and redis_service.py),
a fresh in-memory broker around every test, and ``runtimes``: DAG runtimes a test starts, stopped after it."""

from collections.abc import Iterator

import pytest

from actors.runtime import DagRuntime
from adapters.builtin.mem import reset_mem_broker
from tests.support.kafka_broker import kafka_broker, kafka_outage
from tests.support.redis_service import redis_keys, redis_proxy

__all__ = ["kafka_broker", "kafka_outage", "redis_keys", "redis_proxy"]


@pytest.fixture(autouse=True)
def _fresh_mem_broker() -> Iterator[None]:
    reset_mem_broker()
    yield
    reset_mem_broker()


@pytest.fixture
def runtimes() -> Iterator[list[DagRuntime]]:
    """Append each DagRuntime the test starts; each is stopped when the test ends, whatever happened."""
    started: list[DagRuntime] = []
    yield started
    for runtime in started:
        runtime.stop(timeout=10)
