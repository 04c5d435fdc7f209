"""Supervision inside a worker: a failing sink restarts its DAG from the checkpoint and
nothing is lost; a DAG that keeps failing goes ``failed`` while its neighbour runs on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from actors.restart import RestartPolicy
from actors.runtime import FAILED, RUNNING, DagRuntime
from adapters.base import RejectedRecord
from adapters.builtin.mem import MemSink, get_queue, mem_drain, mem_put, reset_mem_broker
from adapters.registry import open_sink, open_source
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.waiting import wait_until


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_mem_broker()
    yield
    reset_mem_broker()


def chain_dag(name: str, source: str, destination: str, every: int = 3, max_records: int = 50) -> Any:
    return load_dag_dict({
        "name": name,
        "checkpoint": {"every_epochs": every},
        "epochs": {"max_records": max_records, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {"source": f"mem://queue/{source}"}}],
        "publishers": [{"name": "out", "config": {"destination": f"mem://queue/{destination}"}}],
        "calculators": [
            {"name": "bucket", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
            {"name": "value", "type": "MultiplicationCalculator",
             "config": {"arguments": ["price", "qty"], "output_attribute": "value"}},
            {"name": "keep", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["id", "price"]}},
        ],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "bucket"},
            {"name": "value", "calculator": "value"},
            {"name": "ids", "calculator": "keep"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [
            {"from_node": "ingest", "to_node": "value"},
            {"from_node": "ingest", "to_node": "ids"},
            {"from_node": "value", "to_node": "publish"},
            {"from_node": "ids", "to_node": "publish"},
        ],
    })


class FlakySink(MemSink):
    """A mem sink whose writes fail while ``failures`` is positive (every ``period``-th write)."""

    def __init__(self, uri: str, config: Mapping[str, Any], plan: dict[str, int]) -> None:
        super().__init__(uri, config)
        self.plan = plan

    def write_batch(self, records: list[dict]) -> None:
        self.plan["writes"] += 1
        if self.plan["failures"] > 0 and self.plan["writes"] % self.plan["period"] == 0:
            self.plan["failures"] -= 1
            raise ConnectionError("sink refused the batch")
        super().write_batch(records)


def records(n: int) -> list[dict]:
    # Prices repeat so change detection matters: a restart that lost node state would differ.
    return [{"id": i, "price": float(i // 3), "qty": None if i % 5 == 0 else 2} for i in range(n)]


def dedupe(items: list[dict]) -> list[dict]:
    seen: set[int] = set()
    out = []
    for item in items:
        if item["id"] not in seen:
            seen.add(item["id"])
            out.append(item)
    return out


def test_sink_failures_restart_from_checkpoint_and_lose_nothing() -> None:
    dag = chain_dag("flaky", "flaky_in", "flaky_out")
    plan = {"writes": 0, "failures": 3, "period": 8}  # fails between checkpoints
    runtime = DagRuntime(
        dag, sink_factory=lambda uri, config: FlakySink(uri, config, plan),
        restart=RestartPolicy(max_restarts=10, within_seconds=60, base_delay=0.01),
    )
    inputs = records(3000)
    reference = ReferenceEvaluator(dag)
    expected = [r for rec in inputs for _, r in reference.ingest("in", rec)]
    runtime.start()
    mem_put("flaky_in", inputs)
    out = get_queue("flaky_out")
    got: list[dict] = []

    def complete() -> bool:
        got.extend(out.get(10_000, 0.05))
        return len(dedupe(got)) >= len(expected)

    assert wait_until(complete, timeout=60), f"{len(dedupe(got))} of {len(expected)} published"
    assert runtime.stop(timeout=15)
    got.extend(mem_drain("flaky_out"))
    assert plan["failures"] == 0
    assert runtime.stats.actor_restarts == 3
    assert dedupe(got) == expected
    assert len(got) > len(expected)  # the replayed segments show up as duplicates


def test_crash_loop_fails_the_dag_while_its_neighbour_keeps_running() -> None:
    always = {"writes": 0, "failures": 10**9, "period": 1}
    broken = DagRuntime(
        chain_dag("broken", "broken_in", "broken_out"),
        sink_factory=lambda uri, config: FlakySink(uri, config, always),
        restart=RestartPolicy(max_restarts=3, within_seconds=60, base_delay=0.01),
    )
    healthy = DagRuntime(chain_dag("healthy", "healthy_in", "healthy_out"))
    broken.start()
    healthy.start()
    mem_put("broken_in", records(10))
    assert wait_until(lambda: broken.state == FAILED, timeout=30)
    assert "restart budget" in broken.reason and "sink refused the batch" in broken.reason
    assert broken.details()["state"] == FAILED
    mem_put("healthy_in", records(300))
    assert get_queue("healthy_out").wait_for(lambda q: len(q) >= 1, timeout=10)
    assert healthy.state == RUNNING
    assert healthy.stop(timeout=10)
    assert dedupe(mem_drain("healthy_out")) != []
    assert broken.stop(timeout=5)
    assert broken.state == FAILED


def test_open_source_and_sink_are_the_default_factories() -> None:
    # The runtime uses the registry by default; this guards the wiring used in production.
    src = open_source("mem://queue/x", {})
    snk = open_sink("mem://queue/x", {})
    assert type(src).__name__ == "MemSource" and type(snk).__name__ == "MemSink"


class FailingFlushSink(MemSink):
    """Accepts writes but cannot flush: the final checkpoint of a stop fails."""

    def flush(self) -> None:
        raise ConnectionError("flush refused")


def test_a_failure_while_stopping_ends_the_stop_without_waiting_out_its_timeout() -> None:
    import time

    runtime = DagRuntime(chain_dag("stopfail", "stopfail_in", "stopfail_out", every=1000),
                         sink_factory=lambda uri, config: FailingFlushSink(uri, config))
    runtime.start()
    mem_put("stopfail_in", records(20))
    assert get_queue("stopfail_out").wait_for(lambda q: len(q) >= 1, timeout=10)
    started = time.monotonic()
    assert runtime.stop(timeout=60) is False  # the final flush failed: not a clean stop
    assert time.monotonic() - started < 30
    assert runtime.state == "stopped"


class PickySink(MemSink):
    """A mem sink that can never write a record without ``id`` (as a keyed sink cannot): it refuses it."""

    def write_batch(self, records: list[dict]) -> list[RejectedRecord]:
        refused = [RejectedRecord(r, "record has no 'id'") for r in records if "id" not in r]
        super().write_batch([r for r in records if "id" in r])
        return refused


def test_records_a_sink_refuses_are_publish_errors_dead_lettered_and_the_dag_goes_on() -> None:
    dag = load_dag_dict({
        "name": "picky", "checkpoint": {"every_epochs": 1},
        "dead_letter": "mem://queue/picky_dead",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/picky_in"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/picky_out"}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
    })
    runtime = DagRuntime(dag, sink_factory=lambda uri, config: (PickySink if "out" in uri else MemSink)(uri, config))
    runtime.start()
    try:
        mem_put("picky_in", [{"id": 1}, {"other": 2}, {"id": 3}])
        out, dead = get_queue("picky_out"), get_queue("picky_dead")
        got: list[dict] = []
        letters: list[dict] = []
        assert wait_until(lambda: (got.extend(out.get(10, 0.05)), letters.extend(dead.get(10, 0.01)))
                          and len(got) >= 2 and len(letters) >= 1, timeout=20)
        mem_put("picky_in", [{"id": 4}])
        assert wait_until(lambda: got.extend(out.get(10, 0.05)) or len(got) >= 3, timeout=20)
        assert [r["id"] for r in got] == [1, 3, 4]
        assert isinstance(letters[0].pop("time"), float)
        assert letters == [{"dag": "picky", "node": None, "error": "record has no 'id'", "input": {"other": 2},
                            "subscriber": None, "record": None, "publisher": "out"}]
        assert runtime.stats.publishers["out"].errors == 1
        assert runtime.stats.dead_letters == 1
        assert runtime.state == RUNNING
    finally:
        runtime.stop(timeout=10)


class UnopenableSink(MemSink):
    def open(self) -> None:
        raise ConnectionError("no such host")


def test_endpoint_status_is_closed_unless_the_endpoint_is_open() -> None:
    dag = chain_dag("status", "status_in", "status_out")
    runtime = DagRuntime(dag)
    assert runtime.stats.publishers["out"].status == "closed"  # not started: nothing is connected
    runtime.start()
    assert wait_until(lambda: runtime.stats.publishers["out"].status == "connected", timeout=10)
    assert runtime.stats.subscribers["in"].status == "connected"
    assert runtime.stop(timeout=10)
    assert runtime.stats.publishers["out"].status == "closed"
    assert runtime.stats.subscribers["in"].status == "closed"

    broken = DagRuntime(chain_dag("broken", "broken_in", "broken_out"),
                        sink_factory=lambda uri, config: UnopenableSink(uri, config),
                        restart=RestartPolicy(max_restarts=1, within_seconds=60, base_delay=0.01))
    broken.start()
    assert wait_until(lambda: broken.state == FAILED, timeout=20)
    assert broken.details()["publishers"]["out"]["status"] == "closed"  # a sink that never opened is not connected
    broken.stop(timeout=5)
