"""Exactly-once state under kill -9 (SPEC §11): the worker dies 5 times, the counts do not double.

A real ``dagserver serve`` runs a DAG pinned to worker 0 that reads a file of records through
two stateful nodes: ``count``, a user calculator counting records and summing ``a`` (with
``snapshot()``/``restore()``), and ``agg``, an ``AggregateCalculator`` counting and summing ``a``
per ``name``. The test SIGKILLs worker 0 five times mid-stream, each time just after a new
checkpoint reached the disk (so the replay that follows re-reads records the state has
already seen once). The file sinks are cut back to each checkpoint (SPEC §12), so the files
hold no repeats. The state is exactly-once: the final count and sums equal the input's exactly, and equal what the
reference evaluator (the run without crashes) ends with.

Size: ``STATE_KILL_RECORDS`` records (default 200,000) from a file; every kill waits for the
stream to move on first, so the five kills land while input is left. The same with a Kafka
source (``replicas: 1``, its consumer group committing what checkpoints cover):
``STATE_KILL_KAFKA_RECORDS`` records (default 50,000, so that producing them and the run stay
well under a minute on this machine).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import msgpack
from kafka import KafkaProducer

from actors.checkpoint import checkpoint_path, read_checkpoint
from bench.kafka import Broker
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.kafka_broker import require_kafka
from tests.support.supervised import SupervisedServer, line_count, process_gone
from tests.support.waiting import wait_until

N = int(os.environ.get("STATE_KILL_RECORDS", "200000"))
KAFKA_N = int(os.environ.get("STATE_KILL_KAFKA_RECORDS", "50000"))
KILLS = 5
NAMES = 7
SLOW = 90.0


def state_dag(source: dict[str, Any], counts: Path, sums: Path) -> dict[str, Any]:
    return {
        "name": "exactly", "worker": 0, "replicas": 1,
        "checkpoint": {"every_epochs": 4}, "epochs": {"max_records": 500, "max_inflight": 4},
        "subscribers": [{"name": "in", "config": source}],
        "publishers": [{"name": "counts", "config": {"destination": f"file://{counts}"}},
                       {"name": "sums", "config": {"destination": f"file://{sums}"}}],
        "calculators": [
            {"name": "counter", "type": "tests.support.userclasses.CountingCalculator"},
            {"name": "per_name", "type": "AggregateCalculator",
             "config": {"key": ["name"], "aggregates": {"n": {"op": "count"}, "total": {"op": "sum", "of": "a"}}}},
        ],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
            {"name": "count", "type": "PublicationNode", "calculator": "counter", "publishers": ["counts"]},
            {"name": "agg", "type": "PublicationNode", "calculator": "per_name", "publishers": ["sums"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "count"}, {"from_node": "ingest", "to_node": "agg"}],
    }


def record(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"s{i % NAMES}", "a": i % 5 + 1}


def checkpointed_seen(state_dir: Path) -> int:
    """The count the checkpoint on disk holds for the ``count`` node's calculator (-1 while there is none)."""
    data = read_checkpoint(checkpoint_path(state_dir, "exactly"))
    blob = (((data or {}).get("nodes") or {}).get("count") or {}).get("state", {}).get("calculator")
    return int(msgpack.unpackb(blob)["seen"]) if blob else -1


def node_output(server: SupervisedServer, node: str) -> dict[str, Any]:
    """A node's latest output as the API shows it ({} while the DAG is between workers)."""
    output = server.dag("exactly").get("nodes", {}).get(node, {}).get("output") or {}
    return output if isinstance(output, dict) else {}


def seen(server: SupervisedServer) -> int:
    return int(node_output(server, "count").get("seen", 0))


def kill_after_a_checkpoint(server: SupervisedServer, n: int) -> None:
    """Once a checkpoint holding n/20 more counted records than the last one landed, SIGKILL worker 0 (the
    replay then re-reads what that checkpoint does not cover); wait for its successor."""
    before = checkpointed_seen(server.state_dir)
    assert wait_until(lambda: checkpointed_seen(server.state_dir) > before + n // 20, timeout=SLOW, interval=0.01), \
        server.log()[-3000:]
    assert wait_until(lambda: server.worker(0)["alive"], timeout=SLOW, interval=0.05)
    victim = server.worker(0)["pid"]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: process_gone(victim), timeout=SLOW)
    assert checkpointed_seen(server.state_dir) < n, "the stream ended before the kill: raise the record count"
    assert wait_until(lambda: (w := server.worker(0))["pid"] not in (None, victim) and w["alive"],
                      timeout=SLOW, interval=0.05), server.log()[-3000:]
    server.wait_dags("running", ["exactly"], timeout=SLOW)


def last_per_name(outputs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {out["name"]: out for out in outputs}


def run_with_kills(tmp_path: Path, source: dict[str, Any], n: int) -> None:
    """Run the DAG on ``source`` (which holds records 0..n-1), kill worker 0 five times, check the state."""
    counts, sums = tmp_path / "counts.jsonl", tmp_path / "sums.jsonl"
    dag = state_dag(source, counts, sums)
    reference = ReferenceEvaluator(load_dag_dict(dag))  # the run without crashes
    expected_sums = last_per_name([out for i in range(n) for p, out in reference.ingest("in", record(i))
                                   if p == "sums"])
    with SupervisedServer(tmp_path, {"exactly": dag}, workers=2, shutdown_timeout=30, max_restarts=20,
                          within_seconds=600, heartbeat_timeout=10) as server:
        for _kill in range(KILLS):
            kill_after_a_checkpoint(server, n)
        assert wait_until(lambda: node_output(server, "ingest").get("id") == n - 1, timeout=3 * SLOW,
                          interval=0.1), server.log()[-3000:]
        # the last record is in: the count catches up at once (a state that lost records never does)
        assert wait_until(lambda: seen(server) >= n, timeout=30, interval=0.1), (seen(server), n)
        assert seen(server) == n, f"the state counted {seen(server)} of {n} records: some twice"
        assert wait_until(lambda: line_count(counts) > 0 and json.loads(
            counts.read_text().splitlines()[-1])["seen"] == n, timeout=SLOW, interval=0.1), (
            seen(server), counts.read_text().splitlines()[-1:], server.log()[-2000:])
        shown = server.get_ok("/api/dags/exactly/nodes/agg")
        restarts = server.worker(0)["restarts"]
    assert restarts == KILLS
    assert line_count(counts) == n  # each output written once: the file sink was cut back to each checkpoint ...
    final_count = json.loads(counts.read_text().splitlines()[-1])
    assert (final_count["seen"], final_count["total"]) == (n, float(sum(record(i)["a"] for i in range(n))))
    assert final_count == reference.state["count"].output  # ... the state did not
    final_sums = last_per_name([json.loads(line) for line in sums.read_text().splitlines()])
    assert {k: (v["n"], v["total"]) for k, v in final_sums.items()} == {
        f"s{k}": (len(range(k, n, NAMES)), float(sum(record(i)["a"] for i in range(k, n, NAMES))))
        for k in range(NAMES)}
    assert final_sums == expected_sums
    assert shown["state"]["groups"] == NAMES and shown["state"]["bytes"] > 0


def test_state_is_exactly_once_across_five_kill_9s(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    with open(source, "w") as fh:
        fh.writelines(json.dumps(record(i)) + "\n" for i in range(N))
    run_with_kills(tmp_path, {"source": f"file://{source}"}, N)


def test_state_is_exactly_once_across_five_kill_9s_reading_kafka(tmp_path: Path) -> None:
    with Broker(binary=require_kafka()) as broker:
        broker.create_topic("trades", 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
        for i in range(KAFKA_N):
            producer.send("trades", value=json.dumps(record(i)).encode())
        producer.flush()
        producer.close()
        run_with_kills(tmp_path, {"source": "kafka://topic/trades", "bootstrap_servers": [broker.bootstrap],
                                  "consumer_config": {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500}},
                       KAFKA_N)
