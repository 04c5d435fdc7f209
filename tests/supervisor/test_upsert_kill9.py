"""Effectively-once rows under kill -9 (SPEC §12): Kafka → per-key sums → PostgreSQL with ``upsert_key``.

Records ``{"id": i, "k": i % KEYS, "a": ...}`` are in a Kafka topic while a DAG keeps a count
and sum of ``a`` per ``k`` (an ``AggregateCalculator``, exactly-once state) and writes each
update to a PostgreSQL table keyed on ``k`` through ``upsert_key: ["k"]``. The worker is
SIGKILLed three times; each replay writes again rows already there, which update them instead
of adding more. The table ends with exactly one row per key, each equal to the last output of
the run without crashes (the reference evaluator). Size: ``UPSERT_KILL_RECORDS`` (default 40,000).
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bench.kafka import Broker
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.supervisor.test_redis_to_postgres_kill9 import POSTGRES, services  # noqa: F401 - a fixture
from tests.support.kafka_broker import require_kafka
from tests.support.supervised import SupervisedServer, process_gone
from tests.support.waiting import wait_until

N = int(os.environ.get("UPSERT_KILL_RECORDS", "40000"))
KEYS = 40
KILLS = 3


def record(i: int) -> dict[str, Any]:
    return {"id": i, "payload": f"p{i}", "k": i % KEYS, "a": i % 7 + 1}


def sums_dag(bootstrap: str, table: str) -> dict[str, Any]:
    return {
        "name": "sums", "replicas": 1,
        "checkpoint": {"every_epochs": 2}, "epochs": {"max_records": 200, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {
            "source": "kafka://topic/trades", "bootstrap_servers": [bootstrap],
            "consumer_config": {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500}}}],
        "publishers": [{"name": "out", "config": {
            "destination": "sql://sums", **POSTGRES, "upsert_key": ["k"],
            "insert_statement": f"INSERT INTO {table} (k, n, total) VALUES (%(k)s, %(n)s, %(total)s)"}}],
        "calculators": [{"name": "per_k", "type": "AggregateCalculator",
                         "config": {"key": ["k"], "aggregates": {"n": {"op": "count"},
                                                                 "total": {"op": "sum", "of": "a"}}}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "agg", "type": "PublicationNode", "calculator": "per_k", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "agg"}],
    }


def test_upsert_key_leaves_the_no_crash_rows_across_three_kill_9s(tmp_path: Path, services: Any) -> None:  # noqa: F811
    _client, db = services
    table = f"upsert_{uuid.uuid4().hex[:8]}"
    broker = Broker(binary=require_kafka()).__enter__()
    broker.create_topic("trades", 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    for i in range(N):
        producer.send("trades", value=json.dumps(record(i)).encode())
    producer.flush()
    producer.close()
    db.execute(f"CREATE TABLE {table} (k BIGINT PRIMARY KEY, n BIGINT NOT NULL, total DOUBLE PRECISION NOT NULL)")
    dag = sums_dag(broker.bootstrap, table)
    reference = ReferenceEvaluator(load_dag_dict(dag))  # the run without crashes
    expected = {out["k"]: (out["n"], out["total"]) for i in range(N) for _p, out in reference.ingest("in", record(i))}

    def counted() -> int:
        return int(db.execute(f"SELECT coalesce(sum(n), 0) FROM {table}").fetchone()[0])

    try:
        with SupervisedServer(tmp_path, {"sums": dag}, workers=1, max_restarts=20, within_seconds=600) as server:
            server.wait_dags("running")
            for kill in range(KILLS):
                assert wait_until(lambda kill=kill: counted() >= (kill + 1) * N // 10, timeout=120), \
                    server.log()[-3000:]
                victim = server.worker(0)["pid"]
                os.kill(victim, signal.SIGKILL)
                assert wait_until(lambda victim=victim: process_gone(victim), timeout=10)
                assert counted() < N, "the kill came too late to prove anything"
                assert wait_until(lambda victim=victim: (w := server.worker(0))["pid"] not in (None, victim)
                                  and w["alive"], timeout=60)
                server.wait_dags("running", ["sums"], timeout=60)
            assert wait_until(lambda: counted() == N, timeout=180), (counted(), server.log()[-3000:])
            assert server.worker(0)["restarts"] == KILLS
        rows = {k: (n, total) for k, n, total in db.execute(f"SELECT k, n, total FROM {table}").fetchall()}
        assert rows == expected
    finally:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        broker.__exit__(None, None, None)
