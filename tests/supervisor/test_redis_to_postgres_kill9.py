"""kill -9 under load, Redis stream → DAG → PostgreSQL (SPEC §3 at-least-once, §6 redis and sql).

10,000 records are added to a Redis stream while a DAG copies them into a PostgreSQL table
whose primary key is the record id, with an idempotent insert (``ON CONFLICT DO NOTHING``).
The worker is killed with SIGKILL mid-stream; its replacement resumes from the checkpoint:
the stream entries the dead worker read but never acknowledged are pending on its consumer,
which the new incarnation (same server, same replica: same consumer name) reads first. The
table ends with exactly 10,000 rows: nothing lost, and the replayed ones inserted once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import require_module, require_port
from tests.support.supervised import SupervisedServer, process_gone
from tests.support.waiting import wait_until

N = 10_000
POSTGRES = {"db_type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}


@pytest.fixture
def services() -> Any:
    require_module("redis", "redis")
    require_module("psycopg", "sql")
    require_port("127.0.0.1", 6379, "Redis")
    require_port("127.0.0.1", 5432, "PostgreSQL")
    import psycopg
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    db = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True)
    yield client, db
    client.close()
    db.close()


def copy_dag(stream: str, table: str) -> dict[str, Any]:
    return {
        "name": "copy",
        "checkpoint": {"every_epochs": 2}, "epochs": {"max_records": 200, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {"source": f"redis://stream/{stream}", "host": "127.0.0.1",
                                                  "port": 6379}}],
        "publishers": [{"name": "out", "config": {
            "destination": "sql://orders", **POSTGRES,
            "insert_statement": f"INSERT INTO {table} (id, payload) VALUES (%(id)s, %(payload)s) "
                                "ON CONFLICT DO NOTHING"}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
    }


def feed(client: Any, stream: str, per_second: float = 2000.0,
         record: Any = lambda i: {"id": i, "payload": f"p{i}"}) -> threading.Thread:
    """Add records 0..N-1 (``record(i)``) to ``stream`` at about ``per_second``, on a thread."""
    def produce() -> None:
        started = time.monotonic()
        for start in range(0, N, 250):
            pipe = client.pipeline(transaction=False)
            for i in range(start, start + 250):
                pipe.xadd(stream, {"data": json.dumps(record(i))})
            pipe.execute()
            time.sleep(max(0.0, started + (start + 250) / per_second - time.monotonic()))  # pacing, not waiting

    thread = threading.Thread(target=produce, daemon=True, name="feed")
    thread.start()
    return thread


def test_kill_9_mid_stream_leaves_exactly_every_row(tmp_path: Path, services: Any) -> None:
    client, db = services
    tag = uuid.uuid4().hex[:8]
    stream, table = f"kill9-{tag}", f"kill9_{tag}"
    db.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)")

    def rows() -> int:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    try:
        with SupervisedServer(tmp_path, {"copy": copy_dag(stream, table)}, workers=1) as server:
            server.wait_dags("running")
            feeder = feed(client, stream)
            assert wait_until(lambda: rows() >= N // 4, timeout=120), server.log()[-3000:]
            victim = server.worker(0)["pid"]
            os.kill(victim, signal.SIGKILL)
            assert wait_until(lambda: process_gone(victim), timeout=10)
            assert rows() < N, "the kill came too late to prove anything"
            feeder.join(60)
            assert wait_until(lambda: rows() == N, timeout=180), (rows(), server.log()[-3000:])
            assert server.worker(0)["restarts"] == 1
            assert wait_until(lambda: server.dag("copy")["state"] == "running", timeout=30)
        assert db.execute(f"SELECT count(DISTINCT id), min(id), max(id) FROM {table}").fetchone() == (N, 0, N - 1)
    finally:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        client.delete(stream)
