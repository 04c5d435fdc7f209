"""Exactly-once state under kill -9 (SPEC §11): the worker dies 5 times, the counts do not double.

A real ``dagserver serve`` runs a DAG pinned to worker 0 that reads a file of records through
two stateful nodes: ``count``, a user calculator counting records and summing ``a`` (with
``snapshot()``/``restore()``), and ``agg``, an ``AggregateCalculator`` counting and summing ``a``
per ``name``. The test SIGKILLs worker 0 five times mid-stream, each time just after a new
checkpoint reached the disk (so the replay that follows re-reads records the state has
already seen once). Outputs are at-least-once: the files hold repeats. The state is
exactly-once: the final count and sums equal the input's exactly, and equal what the
reference evaluator (the run without crashes) ends with.

Size: ``STATE_KILL_RECORDS`` records (default 200,000); every kill waits for the stream to
move on first, so the five kills land while input is left.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from actors.checkpoint import checkpoint_path, read_checkpoint
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.supervised import SupervisedServer, line_count, process_gone
from tests.support.waiting import wait_until

N = int(os.environ.get("STATE_KILL_RECORDS", "200000"))
KILLS = 5
NAMES = 7
SLOW = 90.0


def state_dag(source: Path, counts: Path, sums: Path) -> dict[str, Any]:
    return {
        "name": "exactly", "worker": 0,
        "checkpoint": {"every_epochs": 4}, "epochs": {"max_records": 500, "max_inflight": 4},
        "subscribers": [{"name": "in", "config": {"source": f"file://{source}"}}],
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


def committed_position(state_dir: Path) -> int:
    data = read_checkpoint(checkpoint_path(state_dir, "exactly"))
    return int(((data or {}).get("positions") or {}).get("in", -1))


def last_id(server: SupervisedServer) -> int:
    """The id of the latest record the ingest node took (-1 while the DAG is between workers)."""
    output = server.dag("exactly").get("nodes", {}).get("ingest", {}).get("output") or {}
    return int(output.get("id", -1)) if isinstance(output, dict) else -1


def seen(server: SupervisedServer) -> int:
    """The count node's latest ``seen`` as the API shows it (0 while the DAG is between workers)."""
    output = server.dag("exactly").get("nodes", {}).get("count", {}).get("output") or {}
    return int(output.get("seen", 0)) if isinstance(output, dict) else 0


def kill_after_a_checkpoint(server: SupervisedServer, size: int) -> None:
    """Once the stream moved on by 1/20 of the file and a new checkpoint landed, SIGKILL worker 0 (the replay
    then re-reads what that checkpoint does not cover); wait for its successor."""
    position = committed_position(server.state_dir)  # a byte offset in the file
    assert wait_until(lambda: committed_position(server.state_dir) > position + size // 20, timeout=SLOW,
                      interval=0.01), server.log()[-3000:]
    assert wait_until(lambda: server.worker(0)["alive"], timeout=SLOW, interval=0.05)
    victim = server.worker(0)["pid"]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: process_gone(victim), timeout=SLOW)
    assert committed_position(server.state_dir) < size, "the stream ended before the kill: raise N"
    assert wait_until(lambda: (w := server.worker(0))["pid"] not in (None, victim) and w["alive"],
                      timeout=SLOW, interval=0.05), server.log()[-3000:]
    server.wait_dags("running", ["exactly"], timeout=SLOW)


def last_per_name(path: Path) -> dict[str, dict[str, Any]]:
    final: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        out = json.loads(line)
        final[out["name"]] = out
    return final


def test_state_is_exactly_once_across_five_kill_9s(tmp_path: Path) -> None:
    source, counts, sums = tmp_path / "in.jsonl", tmp_path / "counts.jsonl", tmp_path / "sums.jsonl"
    with open(source, "w") as fh:
        fh.writelines(json.dumps(record(i)) + "\n" for i in range(N))
    dag = state_dag(source, counts, sums)
    reference = ReferenceEvaluator(load_dag_dict(dag))  # the run without crashes
    for i in range(N):
        reference.ingest("in", record(i))
    with SupervisedServer(tmp_path, {"exactly": dag}, workers=2, shutdown_timeout=30, max_restarts=20,
                          within_seconds=600, heartbeat_timeout=10) as server:
        for _kill in range(KILLS):
            kill_after_a_checkpoint(server, source.stat().st_size)
        assert wait_until(lambda: last_id(server) == N - 1, timeout=3 * SLOW, interval=0.1), server.log()[-3000:]
        # the last record is in: the count catches up at once (a state that lost records never does)
        assert wait_until(lambda: seen(server) >= N, timeout=30, interval=0.1), (seen(server), N)
        assert wait_until(lambda: line_count(counts) > 0 and json.loads(
            counts.read_text().splitlines()[-1])["seen"] == N, timeout=SLOW, interval=0.1)
        shown = server.get_ok("/api/dags/exactly/nodes/agg")
        restarts = server.worker(0)["restarts"]
    assert restarts == KILLS
    assert seen_lines(counts) > N  # outputs repeated after each kill (at-least-once) ...
    final_count = json.loads(counts.read_text().splitlines()[-1])
    expected_total = float(sum(record(i)["a"] for i in range(N)))
    assert (final_count["seen"], final_count["total"]) == (N, expected_total)  # ... the state did not
    assert final_count == reference.state["count"].output
    final_sums = last_per_name(sums)
    assert {k: (v["n"], v["total"]) for k, v in final_sums.items()} == {
        f"s{k}": (len(range(k, N, NAMES)), float(sum(record(i)["a"] for i in range(k, N, NAMES))))
        for k in range(NAMES)}
    assert final_sums == {o["name"]: o for o in [reference.state["agg"].output]} | {
        k: v for k, v in final_sums.items() if k != reference.state["agg"].output["name"]}
    assert shown["state"]["groups"] == NAMES and shown["state"]["bytes"] > 0


def seen_lines(path: Path) -> int:
    return line_count(path)
