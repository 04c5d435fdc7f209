"""What a running DAG holds and reports, in one process (SPEC §3 bounds, §7 details, §8 metrics).

* the ingress gate bounds bytes as well as records (``epochs.max_bytes``);
* details carry previews of big node values, whole values on request;
* ``node_compute_seconds`` has one observation per compute, ``dead_letters`` counts with or
  without a ``dead_letter`` destination, ``ingress_backlog`` is what was read and not
  completed and the subscriber's ``backlog`` what still waits at the source;
* dead letters are durable before the positions they cover are committed (the
  checkpoint's directory fsync is in ``test_checkpoint.py``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from actors.details import node_details
from actors.preview import PREVIEW_CHARS, preview
from actors.runtime import DagRuntime
from actors.stats import COMPUTE_BUCKETS
from adapters.builtin.mem import MemSink, mem_put, mem_size, reset_mem_broker
from graphs.loader import load_dag_dict
from tests.support.useradapters import CommitWatchingSource
from tests.support.waiting import wait_until
from web.metrics import render_metrics


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_mem_broker()
    yield
    reset_mem_broker()


def chain(calculator: dict[str, Any] | None = None, **extra: Any) -> Any:
    nodes: list[dict[str, Any]] = [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                                   {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}]
    if calculator is not None:
        nodes[0]["calculator"] = calculator["name"]
    return load_dag_dict({
        "name": "figures",
        "subscribers": [{"name": "in", "config": {"source": extra.pop("source", "mem://queue/in")}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "calculators": [calculator] if calculator else [],
        "nodes": nodes,
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
        **extra,
    })


class GatedSink(MemSink):
    """Writes only once ``gate`` is set: holds every epoch open until then."""

    def __init__(self, uri: str, config: Mapping[str, Any], gate: threading.Event) -> None:
        super().__init__(uri, config)
        self.gate = gate

    def write_batch(self, records: list[dict]) -> None:
        self.gate.wait()
        super().write_batch(records)


def blocked(dag: Any) -> tuple[DagRuntime, threading.Event]:
    gate = threading.Event()
    runtime = DagRuntime(dag, sink_factory=lambda uri, config: GatedSink(uri, config, gate))
    runtime.start()
    return runtime, gate


def test_the_gate_bounds_bytes_in_flight_not_only_records() -> None:
    runtime, gate = blocked(chain(epochs={"max_records": 100, "max_inflight": 4, "max_bytes": 20_000}))
    mem_put("in", [{"n": i, "pad": "x" * 1000} for i in range(2000)])
    try:
        assert wait_until(lambda: runtime.stats.subscribers["in"].records > 0)
        assert not wait_until(lambda: runtime.stats.subscribers["in"].records > 120, timeout=0.5)
        # 20 KB of 1 KB records, plus the one batch of 100 that crossed the limit; by records
        # alone the gate would have let 100 * (4 + 1) + 1 in
        assert runtime.stats.subscribers["in"].records <= 120
    finally:
        gate.set()
    assert wait_until(lambda: mem_size("out") == 2000, timeout=20)
    assert runtime.stop(timeout=10)


def test_backlog_figures_while_a_sink_holds_everything() -> None:
    runtime, gate = blocked(chain(epochs={"max_records": 10, "max_inflight": 2}))
    mem_put("in", [{"n": i} for i in range(100)])
    capacity = 10 * (2 + 1) + 1
    try:
        assert wait_until(lambda: runtime.details()["ingress_backlog"] == capacity)
        assert wait_until(lambda: runtime.details()["subscribers"]["in"]["backlog"] == 100 - capacity)
    finally:
        gate.set()
    assert wait_until(lambda: runtime.details()["ingress_backlog"] == 0)
    assert runtime.stop(timeout=10)


def test_details_preview_big_values_and_node_details_give_them_whole() -> None:
    runtime = DagRuntime(chain())
    runtime.start()
    big = {"n": 1, "blob": "y" * 50_000}
    mem_put("in", [big])
    assert wait_until(lambda: runtime.stats.nodes["publish"].computes == 1)
    node = runtime.details()["nodes"]["publish"]
    assert node["input_truncated"] and node["output_truncated"]
    assert isinstance(node["input"], str) and len(node["input"]) <= PREVIEW_CHARS + 1
    assert node["input"].startswith('{"n": 1, "blob": "yyyy')
    assert node_details(runtime, "publish")["input"] == big
    assert runtime.details(full=True)["nodes"]["publish"]["output"] == big
    assert runtime.stop(timeout=10)


def test_previews_keep_small_values_and_are_bounded_for_any_value() -> None:
    assert preview({"a": [1, 2.5, None, True, "x"]}) == ({"a": [1, 2.5, None, True, "x"]}, False)
    for value in ({"k": b"\x00" * 10_000}, {"k": [float("nan")] * 10_000}, {"k": {str(i): i for i in range(5000)}},
                  ["x" * 100_000]):
        text, cut = preview(value)
        assert cut and isinstance(text, str) and len(text) <= PREVIEW_CHARS + 1
        assert "NaN" not in text


def test_node_compute_seconds_observes_each_compute() -> None:
    slow = {"name": "slow", "type": "tests.support.userclasses.SleepyCalculator", "config": {"seconds": 0.03}}
    runtime = DagRuntime(chain(slow, epochs={"max_records": 1000}))
    runtime.start()
    mem_put("in", [{"n": i, "sleep": i == 7} for i in range(50)])
    assert wait_until(lambda: runtime.stats.nodes["ingest"].computes == 50)
    histogram = runtime.stats.nodes["ingest"].compute_seconds
    assert histogram.count == 50
    slow_buckets = sum(n for bound, n in zip((*COMPUTE_BUCKETS, float("inf")), histogram.counts, strict=True)
                       if bound > 0.01)
    assert slow_buckets == 1  # the one slow compute; an epoch average would have smeared it over all 50
    assert runtime.stop(timeout=10)


def test_dead_letters_are_counted_without_a_destination() -> None:
    raising = {"name": "risky", "type": "tests.support.userclasses.RaisingCalculator"}
    runtime = DagRuntime(chain(raising))
    runtime.start()
    mem_put("in", [{"n": i, "boom": i % 2 == 0} for i in range(10)] + [[1, 2]])  # 5 errors, 1 reject
    assert wait_until(lambda: runtime.stats.dead_letters == 6)
    assert runtime.stats.nodes["ingest"].errors == 5
    assert runtime.details()["dead_letters"] == 6
    assert runtime.stop(timeout=10)


def test_dead_letters_are_durable_before_the_positions_they_cover_are_committed(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    CommitWatchingSource.seen = []
    dag = chain({"name": "risky", "type": "tests.support.userclasses.RaisingCalculator"},
                source="custom://tests.support.useradapters.CommitWatchingSource",
                dead_letter=f"file://{dead}", checkpoint={"every_epochs": 1}, epochs={"max_records": 7})
    dag = load_dag_dict({**dag.raw, "subscribers": [{"name": "in", "config": {
        "source": "custom://tests.support.useradapters.CommitWatchingSource", "count": 100, "dead": str(dead)}}]})
    runtime = DagRuntime(dag, state_dir=tmp_path / "state")
    runtime.start()
    assert wait_until(lambda: any(position == 100 for position, _ in CommitWatchingSource.seen), timeout=20)
    assert runtime.stop(timeout=10)
    assert CommitWatchingSource.seen
    for position, lines in CommitWatchingSource.seen:
        assert lines >= position, (position, lines)  # every record before the position has its letter on disk
    assert [json.loads(line)["input"]["n"] for line in dead.read_text().splitlines()] == list(range(100))


def test_source_lag_is_left_out_when_the_source_cannot_tell(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"n": 1}\n')
    runtime = DagRuntime(chain(source=f"file://{source}"))
    runtime.start()
    assert wait_until(lambda: runtime.stats.subscribers["in"].records == 1)
    details = runtime.details()
    assert details["subscribers"]["in"]["backlog"] is None  # a file cannot tell what waits in it
    text = render_metrics([{**details, "worker": 0}], []).decode()
    assert "dagserver_source_lag{" not in text
    assert runtime.stop(timeout=5)
