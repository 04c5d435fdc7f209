"""Pytest fixtures giving tests the real Redis at 127.0.0.1:6379 (or ``DAGSERVER_REDIS``, ``HOST:PORT``).

``redis_keys`` (one per test) is a :class:`RedisKeys`: ``name("in")`` gives a key name unique
to the test, ``client`` a redis-py client (bytes replies), and every key made under the
test's prefix is deleted afterwards. ``redis_proxy`` is a :class:`TcpProxy` in front of the
server, for outages (``cut()`` / ``restore()`` / ``stall()``). Without a server or redis-py
the tests are skipped, or fail when ``DAGSERVER_REQUIRE_SERVICES=1``. Register the fixtures
by importing them in a ``conftest.py``.

Usage::

    def test_push(redis_keys):
        name = redis_keys.name("jobs")
        redis_keys.client.rpush(name, b'{"a": 1}')
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.services import require_module, require_port
from tests.support.tcp_proxy import TcpProxy


def redis_address() -> tuple[str, int]:
    host, _, port = os.environ.get("DAGSERVER_REDIS", "127.0.0.1:6379").partition(":")
    return host, int(port or 6379)


def require_redis() -> tuple[str, int]:
    """The server's address, once redis-py and the server are known to be there (skips or fails otherwise)."""
    require_module("redis", "redis")
    host, port = redis_address()
    require_port(host, port, "Redis")
    return host, port


class RedisKeys:
    """Key names unique to one test, and a client to look at them with."""

    def __init__(self, host: str, port: int) -> None:
        import redis

        self.host, self.port = host, port
        self.prefix = f"dagtest-{uuid.uuid4().hex[:10]}"
        self.client: Any = redis.Redis(host=host, port=port, socket_timeout=10)

    @property
    def config(self) -> dict[str, Any]:
        """The endpoint config reaching the server directly."""
        return {"host": self.host, "port": self.port}

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def clean(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            self.client.delete(*keys)
        self.client.close()


@pytest.fixture
def redis_keys() -> Iterator[RedisKeys]:
    keys = RedisKeys(*require_redis())
    try:
        yield keys
    finally:
        keys.clean()


@pytest.fixture
def redis_proxy() -> Iterator[TcpProxy]:
    with TcpProxy(require_redis()) as proxy:
        yield proxy
