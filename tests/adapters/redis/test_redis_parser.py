"""The ``redis`` extra brings the hiredis reply parser, which redis-py picks up by itself: the adapter's
clients parse replies in C (a list of 1,000 items read back is parsed without a Python loop per item)."""

from __future__ import annotations

from adapters.redis.lists import ListSink
from tests.support.services import require_module, require_port


def test_redis_py_finds_hiredis() -> None:
    require_module("redis", "redis")
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE, "pip install 'dagserver[redis]' brings hiredis; redis-py did not find it"


def test_the_adapters_client_parses_with_hiredis() -> None:
    require_module("redis", "redis")
    require_port("127.0.0.1", 6379, "Redis")
    sink = ListSink("redis://list/hiredis-probe", {})
    sink.open()
    try:
        client = sink.link.client
        client.ping()
        connection = client.connection_pool.get_connection()
        try:
            assert type(connection._parser).__name__ == "_HiredisParser"
        finally:
            client.connection_pool.release(connection)
    finally:
        sink.close()
