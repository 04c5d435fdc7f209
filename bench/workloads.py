"""Benchmark workloads that run inside a worker process, fed and drained in-process.

:class:`FeederSource` is a real ``mem://queue`` source whose queue a generator thread in
the same process fills, so the feeder is never what is measured; :class:`CountingSink`
is a real ``mem://queue`` sink whose queue a drain thread empties, counting records and
noting when the last one came out. Both are used through ``custom://`` so that the DAGs
run on the server's normal path (worker process, actors, msgpack).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from adapters.builtin.mem import MemSink, MemSource, get_queue

FEED_CHUNK = 1000
STARTS: dict[str, float] = {}  # run name -> perf_counter() of the first record fed
FIGURES: dict[str, dict[str, float]] = {}  # run name -> figures its components add to its result (same process)


def throughput_record(i: int) -> dict[str, Any]:
    """Every record distinct, so every record propagates through every node."""
    return {"id": i, "price": float(i), "qty": 3 if i % 2 else None, "note": "bench"}


class FeederSource(MemSource):
    """config: ``run`` (name), ``count``, optional ``rate`` (records/s, for latency runs)."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.run = str(config["run"])
        super().__init__(f"mem://queue/{self.run}-in", {"max_size": 50_000})
        self.count = int(config["count"])
        self.rate = float(config["rate"]) if config.get("rate") else None

    def open(self, position: Any | None) -> None:
        super().open(position)
        threading.Thread(target=self._feed, daemon=True, name=f"feed-{self.run}").start()

    def _feed(self) -> None:
        queue = get_queue(f"{self.run}-in")
        STARTS[self.run] = start = time.perf_counter()
        if self.rate is None:
            for first in range(0, self.count, FEED_CHUNK):
                queue.put([throughput_record(i) for i in range(first, min(self.count, first + FEED_CHUNK))])
            return
        # Offered load: each record is stamped when it is due; price carries the stamp, qty is
        # absent (defaults to 1), so the published value is the ingress time itself.
        sent = 0
        last = 0.0
        while sent < self.count:
            due = min(self.count, int((time.perf_counter() - start) * self.rate) + 1)
            if due > sent:
                batch = []
                for i in range(sent, due):  # strictly increasing stamps: every record distinct
                    stamp = max(time.perf_counter(), last + 1e-9)
                    batch.append({"id": i, "price": stamp, "note": "bench"})
                    last = stamp
                queue.put(batch)
                sent = due
            else:
                time.sleep(max(0.0, start + sent / self.rate - time.perf_counter()))


class CountingSink(MemSink):
    """config: ``run``, ``count``, ``result`` (a JSON file written when all records are out)."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.run = str(config["run"])
        super().__init__(f"mem://queue/{self.run}-out", {"max_size": 50_000})
        self.count = int(config["count"])
        self.result = str(config["result"])
        self.latency = bool(config.get("latency"))

    def open(self) -> None:
        super().open()
        threading.Thread(target=self._drain, daemon=True, name=f"drain-{self.run}").start()

    def _drain(self) -> None:
        queue = get_queue(f"{self.run}-out")
        seen = 0
        latencies: list[float] = []
        while seen < self.count:
            batch = queue.get(10_000, 0.5)
            if self.latency and batch:
                now = time.perf_counter()
                latencies.extend(now - r["value"] for r in batch)
            seen += len(batch)
        end = time.perf_counter()
        out: dict[str, Any] = {"run": self.run, "count": seen, "seconds": end - STARTS[self.run], "pid": os.getpid()}
        out.update(FIGURES.pop(self.run, {}))
        if latencies:
            latencies.sort()
            out["latency_ms"] = {
                "p50_ms": statistics.median(latencies) * 1000,
                "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
                "max_ms": latencies[-1] * 1000,
            }
        tmp = self.result + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(out, fh)
        os.replace(tmp, self.result)


def pipeline_dag(run: str, count: int, result: str, rate: float | None = None, worker: int | None = None,
                 diamond: bool = False) -> dict[str, Any]:
    """The reference pipeline (or its diamond variant) between a feeder and a counter."""
    source = {"source": "custom://bench.workloads.FeederSource", "run": run, "count": count}
    if rate:
        source["rate"] = rate
    sink = {"destination": "custom://bench.workloads.CountingSink", "run": run, "count": count,
            "result": result, "latency": bool(rate)}
    calculators = [
        {"name": "drop_note", "type": "AttributeFilterAwayCalculator", "config": {"filter_attributes": ["note"]}},
        {"name": "default_qty", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
        {"name": "value", "type": "MultiplicationCalculator",
         "config": {"arguments": ["price", "qty"], "output_attribute": "value"}},
    ]
    nodes = [
        {"name": "ingest", "type": "SubscriptionNode", "subscriber": "feed", "calculator": "drop_note"},
        {"name": "defaults", "calculator": "default_qty"},
        {"name": "value", "calculator": "value"},
        {"name": "publish", "type": "PublicationNode", "publishers": ["count"]},
    ]
    chain = [("ingest", "defaults"), ("defaults", "value"), ("value", "publish")]
    if diamond:  # ingest feeds two calculators that meet again at the publication node
        chain = [("ingest", "defaults"), ("ingest", "value"), ("defaults", "publish"), ("value", "publish")]
    dag: dict[str, Any] = {
        "name": run,
        "epochs": {"max_records": 1000, "max_inflight": 4},
        "checkpoint": {"every_epochs": 50},
        "subscribers": [{"name": "feed", "config": source}],
        "publishers": [{"name": "count", "config": sink}],
        "calculators": calculators,
        "nodes": nodes,
        "edges": [{"from_node": a, "to_node": b} for a, b in chain],
    }
    if worker is not None:
        dag["worker"] = worker
    return dag


def chain_dag(run: str, count: int, result: str, nodes: int, worker: int = 0) -> dict[str, Any]:
    """A linear chain of ``nodes`` PassthruCalculator nodes between a feeder and a counter.

    The chain is ``ingest -> hop1 -> ... -> hopN -> publish``: only the ``nodes`` calculation
    nodes vary, so the slope of 1/throughput against ``nodes`` is the engine's cost per hop.
    Usage: ``chain_dag("chain10", 100_000, "/tmp/r.json", 10)``.
    """
    hops = [f"hop{i}" for i in range(1, nodes + 1)]
    names = ["ingest", *hops, "publish"]
    return {
        "name": run,
        "epochs": {"max_records": 1000, "max_inflight": 4},
        "checkpoint": {"every_epochs": 50},
        "subscribers": [{"name": "feed", "config": {"source": "custom://bench.workloads.FeederSource",
                                                    "run": run, "count": count}}],
        "publishers": [{"name": "count", "config": {"destination": "custom://bench.workloads.CountingSink",
                                                    "run": run, "count": count, "result": result}}],
        "calculators": [{"name": "same", "type": "PassthruCalculator"}],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "feed"},
            *({"name": hop, "calculator": "same"} for hop in hops),
            {"name": "publish", "type": "PublicationNode", "publishers": ["count"]},
        ],
        "edges": [{"from_node": a, "to_node": b} for a, b in pairwise(names)],
        "worker": worker,
    }


def idle_dag(name: str, worker: int = 0) -> dict[str, Any]:
    """A DAG that holds its actors but does almost nothing (for memory per DAG)."""
    return {
        "name": name,
        "subscribers": [{"name": "clock", "config": {"source": "metronome", "interval": 3600}}],
        "publishers": [{"name": "out", "config": {"destination": f"mem://topic/{name}"}}],
        "nodes": [
            {"name": "tick", "type": "SubscriptionNode", "subscriber": "clock"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "tick", "to_node": "publish"}],
        "worker": worker,
    }
