"""A DAG's life in one process: stop, suspend/resume, time windows, file tailing across a
restart, backpressure from a slow sink, and records rejected at the door."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import RUNNING, STOPPED, SUSPENDED, DagRuntime
from adapters.builtin.mem import MemSink, get_queue, mem_drain, mem_put, mem_size, reset_mem_broker
from graphs.loader import load_dag_dict
from tests.support.waiting import wait_until


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_mem_broker()
    yield
    reset_mem_broker()


def passthru_dag(source: str, destination: str, **extra: Any) -> Any:
    return load_dag_dict({
        "name": "life",
        "subscribers": [{"name": "in", "config": {"source": source}}],
        "publishers": [{"name": "out", "config": {"destination": destination}}],
        "calculators": [{"name": "copy", "type": "PassthruCalculator"}],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "copy"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
        **extra,
    })


def numbered(start: int, stop: int) -> list[dict]:
    return [{"n": i} for i in range(start, stop)]


def test_stop_drains_everything_read_and_is_idempotent() -> None:
    runtime = DagRuntime(passthru_dag("mem://queue/a", "mem://queue/b"))
    runtime.start()
    assert runtime.state == RUNNING
    mem_put("a", numbered(0, 500))
    assert get_queue("b").wait_for(lambda q: len(q) >= 500, timeout=10)
    assert runtime.stop(timeout=10)
    assert runtime.state == STOPPED
    assert runtime.stop(timeout=1)
    assert mem_drain("b") == numbered(0, 500)
    assert runtime.details()["nodes"]["ingest"]["computes"] == 500


def test_suspend_stops_reading_and_resume_continues_with_state_kept() -> None:
    runtime = DagRuntime(passthru_dag("mem://queue/a", "mem://queue/b"))
    runtime.start()
    mem_put("a", numbered(0, 10))
    assert get_queue("b").wait_for(lambda q: len(q) >= 10, timeout=10)
    runtime.suspend()
    assert runtime.state == SUSPENDED
    mem_put("a", numbered(10, 20))
    # Suspended: the records wait in the broker. Nothing is read while suspended, so the
    # queue still holds all ten once a full read cycle has had the chance to run.
    assert not get_queue("b").wait_for(lambda q: len(q) > 10, timeout=0.3)
    assert mem_size("a") == 10
    runtime.resume()
    assert runtime.state == RUNNING
    assert get_queue("b").wait_for(lambda q: len(q) >= 20, timeout=10)
    assert runtime.stop(timeout=10)
    assert mem_drain("b") == numbered(0, 20)
    assert runtime.stats.nodes["ingest"].computes == 20


def test_time_window_suspends_outside_and_resumes_inside() -> None:
    # 23:00 for 2h: crosses midnight.
    dag = passthru_dag("mem://queue/a", "mem://queue/b", start_time="2300", duration="2h")
    runtime = DagRuntime(dag)
    runtime.start(now=datetime(2026, 1, 1, 12, 0))
    assert runtime.state == SUSPENDED
    mem_put("a", numbered(0, 5))
    runtime.check_window(datetime(2026, 1, 1, 23, 30))
    assert runtime.state == RUNNING
    assert get_queue("b").wait_for(lambda q: len(q) >= 5, timeout=10)
    runtime.check_window(datetime(2026, 1, 2, 0, 59))
    assert runtime.state == RUNNING
    runtime.check_window(datetime(2026, 1, 2, 1, 0))
    assert runtime.state == SUSPENDED
    # An operator's suspend is not undone by the window.
    runtime.check_window(datetime(2026, 1, 2, 23, 0))
    assert runtime.state == RUNNING
    runtime.suspend()
    runtime.check_window(datetime(2026, 1, 2, 23, 5))
    assert runtime.state == SUSPENDED
    assert runtime.stop(timeout=10)


def test_file_tail_resumes_after_restart_without_rereading(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in numbered(0, 100)) + '{"n": 10')
    dag = passthru_dag(f"file://{src}", "mem://queue/out")
    state = tmp_path / "state"
    first = DagRuntime(dag, state_dir=state)
    first.start()
    assert get_queue("out").wait_for(lambda q: len(q) >= 100, timeout=10)
    assert first.stop(timeout=10)
    assert mem_drain("out") == numbered(0, 100)
    with src.open("a") as fh:  # complete the partial line, then add more
        fh.write("0}\n" + "".join(json.dumps(r) + "\n" for r in numbered(101, 150)))
    second = DagRuntime(dag, state_dir=state)
    second.start()
    assert get_queue("out").wait_for(lambda q: len(q) >= 50, timeout=10)
    assert second.stop(timeout=10)
    assert mem_drain("out") == numbered(100, 150)


class GatedSink(MemSink):
    """Writes one batch per ``allow`` event: a sink as slow as the test wants."""

    def __init__(self, uri: str, config: Mapping[str, Any], allow: threading.Semaphore,
                 written: list[dict]) -> None:
        super().__init__(uri, config)
        self.allow = allow
        self.written = written

    def write_batch(self, records: list[dict]) -> None:
        self.allow.acquire()
        self.written.extend(records)


def test_slow_sink_backpressures_the_source_and_nothing_is_dropped() -> None:
    dag = passthru_dag("mem://queue/a", "mem://queue/unused",
                       epochs={"max_records": 10, "max_inflight": 2})
    allow = threading.Semaphore(0)
    written: list[dict] = []
    runtime = DagRuntime(dag, sink_factory=lambda uri, config: GatedSink(uri, config, allow, written))
    runtime.start()
    mem_put("a", numbered(0, 1000))
    capacity = 10 * (2 + 1) + 1  # max_records * (max_inflight + 1), plus one spare slot per subscriber
    # The DAG takes at most its gate's worth of records; the rest stays in the broker.
    assert wait_until(lambda: mem_size("a") <= 1000 - capacity)
    assert not wait_until(lambda: mem_size("a") < 1000 - capacity, timeout=0.3)
    assert wait_until(lambda: runtime.details()["subscribers"]["in"]["backlog"] == 1000 - capacity)
    for _ in range(200):
        allow.release()
    assert wait_until(lambda: len(written) >= 1000, timeout=20)
    allow.release(1000)
    assert runtime.stop(timeout=10)
    assert written == numbered(0, 1000)


def test_records_that_are_not_maps_are_rejected_counted_and_dead_lettered(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    dag = passthru_dag("mem://queue/a", "mem://queue/b", dead_letter=f"file://{dead}")
    runtime = DagRuntime(dag)
    runtime.start()
    mem_put("a", [{"ok": 1}, [1, 2], "text", {1: "int key"}, {"ok": 2}, {"bad": {1, 2}}])
    assert get_queue("b").wait_for(lambda q: len(q) >= 2, timeout=10)
    assert runtime.stop(timeout=10)
    assert mem_drain("b") == [{"ok": 1}, {"ok": 2}]
    assert runtime.details()["subscribers"]["in"]["rejected"] == 4
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == 4
    assert all(letter["dag"] == "life" and letter["subscriber"] == "in" for letter in letters)
    assert "not a map" in letters[0]["error"]
