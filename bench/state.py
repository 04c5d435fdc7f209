"""State benchmarks (SPEC §11): a keyed tumbling sum through the server, and checkpointing many groups.

``aggregate_rps_1w``: records/s of a DAG whose one node is an ``AggregateCalculator`` (a sum per
key over 1-minute tumbling windows of event time, 10,000 keys), fed and drained in the worker
as the other throughput figures are; ``aggregate_ceiling_rps``: a plain-Python dict loop doing
the same keyed windowed sum (and building the same output record) in this process. Neither
counts building the input records (the feeder builds them before its clock starts); the
engine's figure counts everything else (source, actors, msgpack, publisher, sink). The two run
in turns, and ``aggregate_ratio`` is the median of the pairs' ratios.

``checkpoint_100k_groups``: an ``AggregateCalculator`` holding 100,000 groups; the time its
node takes to snapshot it (the calculator's ``snapshot()`` and the msgpack encoding, on the
node's thread) and the time the saver takes to write the checkpoint holding it (write,
fsync, rename), with the encoded size.

``latency_with_state``: the latency pipeline at 5,000 rec/s with a node holding 100,000 entries
that each checkpoint snapshots, against the same DAG with an empty state (p50/p99/max, and
``snapshots``: how many checkpoints took the state while the records flowed, so a p99 that
never met a checkpoint shows as such). The two run in turns, one pair after the other, and
``latency_with_state_p99_ratio`` is the median of the pairs' p99 ratios: a busy machine moves
both runs of a pair alike.

Usage::

    dag = aggregate_dag("aggregate", 200_000, "/tmp/result.json")     # run by bench/__main__.py
    checkpoint_figures(100_000)   # {"snapshot_ms": ..., "write_ms": ..., "bytes": ..., "groups": ...}
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actors.checkpoint import write_checkpoint
from adapters.builtin.mem import get_queue
from bench.workloads import FEED_CHUNK, FIGURES, STARTS, FeederSource, pipeline_dag
from graphs.aggregate import AggregateCalculator
from graphs.calculators import Calculator
from graphs.state import ComponentStates

KEYS = 10_000
BASE_TIME = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP = 0.001  # seconds of event time between records: 60,000 records per window, about 6 per key


def keyed_record(i: int) -> dict[str, Any]:
    return {"k": f"k{i % KEYS}", "v": float(i % 97), "ts": BASE_TIME + i * STEP}


class KeyedFeederSource(FeederSource):
    """A :class:`~bench.workloads.FeederSource` of :func:`keyed_record` records, built before the clock
    starts: the plain loop it is compared with does not count building its records either."""

    def open(self, position: Any | None) -> None:
        super(FeederSource, self).open(position)
        threading.Thread(target=self._feed_keyed, daemon=True, name=f"feed-{self.run}").start()

    def _feed_keyed(self) -> None:
        queue = get_queue(f"{self.run}-in")
        chunks = [[keyed_record(i) for i in range(first, min(self.count, first + FEED_CHUNK))]
                  for first in range(0, self.count, FEED_CHUNK)]
        STARTS[self.run] = time.perf_counter()
        for chunk in chunks:
            queue.put(chunk)


AGGREGATE_CONFIG = {"key": ["k"], "aggregates": {"total": {"op": "sum", "of": "v"}},
                    "window": {"tumbling": 60, "time": "ts"}}


def aggregate_dag(run: str, count: int, result: str, worker: int = 0) -> dict[str, Any]:
    """feed -> ``sum`` (AggregateCalculator) -> publish -> counter; every output published (upsert stream)."""
    return {
        "name": run, "propagate": "always", "worker": worker,
        "epochs": {"max_records": 1000, "max_inflight": 4}, "checkpoint": {"every_epochs": 50},
        "subscribers": [{"name": "feed", "config": {"source": "custom://bench.state.KeyedFeederSource",
                                                    "run": run, "count": count}}],
        "publishers": [{"name": "count", "config": {"destination": "custom://bench.workloads.CountingSink",
                                                    "run": run, "count": count, "result": result}}],
        "calculators": [{"name": "per_minute", "type": "AggregateCalculator", "config": AGGREGATE_CONFIG}],
        "nodes": [{"name": "sum", "type": "SubscriptionNode", "subscriber": "feed", "calculator": "per_minute"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["count"]}],
        "edges": [{"from_node": "sum", "to_node": "publish"}],
    }


def aggregate_ceiling_rps(count: int) -> float:
    """The same keyed 1-minute tumbling sum in a plain loop over a dict, one output record per input."""
    records = [keyed_record(i) for i in range(count)]
    sums: dict[tuple[str, float], float] = {}
    start = time.perf_counter()
    for record in records:
        window = math.floor(record["ts"] / 60) * 60
        key = (record["k"], window)
        total = sums.get(key, 0.0) + float(record["v"])
        sums[key] = total
        _ = {"k": record["k"], "window_start": window, "window_end": window + 60, "total": total}
    return count / (time.perf_counter() - start)


def checkpoint_figures(groups: int = 100_000) -> dict[str, float]:
    """Snapshot (calculator + msgpack, the node's share) and checkpoint write (the saver's) of ``groups`` groups."""
    calc = AggregateCalculator("per_key", {"key": ["k"], "aggregates": {"n": {"op": "count"},
                                                                        "total": {"op": "sum", "of": "v"}},
                                           "max_keys": groups})
    for i in range(groups):
        calc.calculate({"k": f"key-{i}", "v": float(i)})
    states = ComponentStates("per_key", {"calculator": calc})
    start = time.perf_counter()
    blobs = states.snapshot()
    snapshot_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="dagserver-bench-") as tmp:
        start = time.perf_counter()
        write_checkpoint(Path(tmp) / "bench.ckpt", {"positions": {}, "ticks": {}, "nodes": {
            "per_key": {"input": {}, "output": {}, "latest": None, "state": blobs}}})
        write_s = time.perf_counter() - start
    return {"snapshot_ms": snapshot_s * 1000, "write_ms": write_s * 1000, "bytes": float(states.last_bytes),
            "groups": float(groups)}


class HeldStateCalculator(Calculator):
    """Stateful, passes each record on as it is, and holds ``config["groups"]`` entries that every
    checkpoint snapshots: what a node with a large state costs the records behind it."""

    stateful = True

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.held = {f"key-{i}": float(i) for i in range(int(self.config.get("groups", 0)))}

    def calculate(self, record: dict) -> dict | None:
        return record

    def snapshot(self) -> dict[str, float]:
        figures = FIGURES.setdefault(str(self.config.get("run")), {"snapshots": 0})
        figures["snapshots"] += 1  # the run's result tells how many checkpoints its records met
        return self.held

    def restore(self, value: Any) -> None:
        self.held = dict(value)


def held_state_dag(run: str, count: int, result: str, rate: float, groups: int, worker: int = 0) -> dict[str, Any]:
    """The latency pipeline with a :class:`HeldStateCalculator` of ``groups`` entries before its publication
    node (``groups=0``: the same DAG without state, the baseline)."""
    dag = pipeline_dag(run, count, result, rate=rate, worker=worker)
    dag["calculators"].append({"name": "held", "type": "bench.state.HeldStateCalculator",
                               "config": {"groups": groups, "run": run}})
    dag["nodes"].insert(-1, {"name": "held", "calculator": "held"})
    dag["edges"] = [e for e in dag["edges"] if e["to_node"] != "publish"]
    dag["edges"] += [{"from_node": "value", "to_node": "held"}, {"from_node": "held", "to_node": "publish"}]
    return dag
