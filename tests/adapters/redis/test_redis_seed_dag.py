"""The seed's Redis DAG runs unchanged, and a pub/sub overflow reaches the DAG's counters.

``examples/dags/services/seed_redis_channel.json`` is written the seed's way: a
``redischannel://`` subscriber and a bare ``redis://`` publisher setting each record under
its ``__dagserver_key``. A channel is at-most-once: what a full buffer cannot hold is
dropped, and counted in the subscriber's ``dropped`` (``dagserver_records_dropped_total``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.runtime import DagRuntime
from adapters.registry import check_uri
from graphs.loader import load_dag_dict
from tests.support.redis_service import require_redis
from tests.support.waiting import wait_until

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "dags" / "services" / "seed_redis_channel.json"


@pytest.fixture
def client() -> Iterator[object]:
    host, port = require_redis()
    import redis

    connection = redis.Redis(host=host, port=port)
    yield connection
    connection.close()


def started(dag_dict: dict) -> DagRuntime:
    runtime = DagRuntime(load_dag_dict(dag_dict))
    runtime.start()
    assert wait_until(lambda: runtime.details()["subscribers"]["quotes"]["status"] == "connected", timeout=20)
    return runtime


def test_the_seed_style_example_runs_unchanged(client) -> None:
    dag = json.loads(EXAMPLE.read_text())
    assert check_uri(dag["subscribers"][0]["config"]["source"], "source") is None
    channel = dag["subscribers"][0]["config"]["source"].split("://", 1)[1]
    symbols = [f"SYM{uuid.uuid4().hex[:6]}" for _ in range(3)]
    runtime = started(dag)
    try:
        def published_all() -> bool:  # a message published before the subscription took hold is gone: send again
            for i, symbol in enumerate(symbols):
                client.publish(channel, json.dumps({"symbol": symbol, "price": 10.0 + i}))
            return all(client.get(symbol) is not None for symbol in symbols)

        assert wait_until(published_all, timeout=20, interval=0.2)
        assert [json.loads(client.get(s)) for s in symbols] == [{"price": 10.0 + i} for i in range(3)]
    finally:
        runtime.stop(timeout=10)
        client.delete(*symbols)


def test_a_full_channel_buffer_drops_and_counts_what_it_cannot_hold(client) -> None:
    channel = f"overflow-{uuid.uuid4().hex[:8]}"
    dag = json.loads(EXAMPLE.read_text())
    dag["name"] = "overflow"
    dag["subscribers"][0]["config"] = {"source": f"redischannel://{channel}", "max_buffer": 5}
    dag["publishers"][0]["config"] = {"destination": f"redis://list/{channel}-out"}
    runtime = started(dag)
    try:
        runtime.suspend()  # nothing is taken from the buffer while suspended
        for i in range(50):
            client.publish(channel, json.dumps({"symbol": f"S{i}", "n": i}))
        runtime.resume()
        subscriber = runtime.stats.subscribers["quotes"]
        # every message is either taken or counted as dropped; a read already waiting when the DAG was
        # suspended may take one more than the buffer holds
        assert wait_until(lambda: subscriber.dropped + subscriber.records == 50, timeout=20), \
            (subscriber.dropped, subscriber.records)
        assert 40 <= subscriber.dropped <= 45, subscriber.dropped
        assert runtime.details()["subscribers"]["quotes"]["dropped"] == subscriber.dropped
    finally:
        runtime.stop(timeout=10)
        client.delete(f"{channel}-out")
