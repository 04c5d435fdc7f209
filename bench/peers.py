"""``python -m bench --peers``: the same work on dagserver and on the peers that are installed.

Workloads (the reference pipeline's three calculator objects, :func:`bench.ceiling._calculators`):

* **in-process throughput** over ``count`` records (default 200k): the bare Python loop
  (:func:`bench.ceiling.ceiling_rps`), dagserver's actor runtime in one process
  (:func:`bench.inprocess.inprocess_rps`), and Bytewax with the three calculators as three ``map``
  steps, its input read one record per batch (its default) and 1,000 per batch;
* **latency at 5,000 records/s offered** (p50 / p99 from each record's due time to its output):
  dagserver's server path (one worker; the figure ``python -m bench`` reports) and Bytewax in-process.

Quix Streams has no in-process mode (its applications read Kafka topics), so it appears in the table
only as a skip line; so does a peer that is not installed (``pip install 'dagserver[bench]'``).
Each figure is one run: on a busy machine compare ratios, and re-run before trusting one.

Usage::

    python -m bench --peers                  # table on stdout
    python -m bench.peers --count 50000      # the throughput rows only, without the server latency row
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.ceiling import _calculators, ceiling_rps
from bench.inprocess import inprocess_rps
from bench.workloads import throughput_record

try:  # the optional ``bench`` extra
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import DynamicSource, StatelessSourcePartition
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import TestingSink, TestingSource, run_main
except ImportError:
    op = None

LATENCY_RATE = 5_000.0  # records/s offered
LATENCY_SECONDS = 3.0


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def bytewax_flow(source: Any, sink: Any) -> Any:
    """A Bytewax dataflow: ``source`` → the three calculators as three map steps → ``sink``."""
    drop, defaults, value = _calculators()
    flow = Dataflow("peers")
    stream = op.input("in", flow, source)
    stream = op.map("drop_note", stream, drop.calculate)
    stream = op.map("default_qty", stream, defaults.calculate)
    stream = op.map("value", stream, value.calculate)
    op.output("out", stream, sink)
    return flow


def bytewax_rps(count: int, batch_size: int) -> float:
    """Records/s of the Bytewax flow over ``count`` records read ``batch_size`` at a time (wall time)."""
    records = [throughput_record(i) for i in range(count)]
    out: list[Any] = []
    flow = bytewax_flow(TestingSource(records, batch_size=batch_size), TestingSink(out))
    start = time.perf_counter()
    run_main(flow)
    elapsed = time.perf_counter() - start
    if len(out) != count:
        raise RuntimeError(f"Bytewax produced {len(out)} of {count} records")
    return count / elapsed


def bytewax_latency(rate: float, seconds: float) -> dict[str, float]:
    """p50 / p99 milliseconds from each record's due time (``rate`` records/s) to Bytewax's output."""
    count = int(rate * seconds)
    latencies: list[float] = []
    clock = {"start": 0.0}  # record i is due at start + i / rate; one worker keeps the order, output i is record i

    class Paced(StatelessSourcePartition):
        def __init__(self) -> None:
            self.start, self.sent = time.perf_counter(), 0
            clock["start"] = self.start

        def next_batch(self) -> list[Any]:
            if self.sent >= count:
                raise StopIteration
            due_now = min(count, int((time.perf_counter() - self.start) * rate) + 1)
            batch = [throughput_record(i) for i in range(self.sent, due_now)]
            self.sent = due_now
            return batch

        def next_awake(self) -> datetime:
            wait = self.start + self.sent / rate - time.perf_counter()
            return datetime.now(UTC) + timedelta(seconds=max(0.0, wait))

    class PacedSource(DynamicSource):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Paced:
            return Paced()

    class Stamp(StatelessSinkPartition):
        def write_batch(self, items: list[Any]) -> None:
            now, first = time.perf_counter(), clock["start"] + len(latencies) / rate
            latencies.extend((now - first - n / rate) * 1000 for n in range(len(items)))

    class StampSink(DynamicSink):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Stamp:
            return Stamp()

    run_main(bytewax_flow(PacedSource(), StampSink()))
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49], "p99_ms": cuts[98]}


def peers_rows(count: int, server_latency: Callable[[float, float], dict[str, float]] | None) -> list[str]:
    """The table's lines (markdown); ``server_latency(rate, seconds)`` gives dagserver's latency row."""
    bare = ceiling_rps(count)
    rows = ["| path | records/s | ratio to bare loop |", "|---|---:|---:|",
            f"| bare loop, 3 calculators, {count:,} records | {bare:,.0f} | 1.00 |"]
    ours = inprocess_rps(count)
    rows.append(f"| dagserver in-process (actor runtime) | {ours:,.0f} | {ours / bare:.2f} |")
    has_bytewax = op is not None
    if has_bytewax:
        for batch in (1, 1000):
            rps = bytewax_rps(count, batch)
            rows.append(f"| Bytewax in-process, input batch {batch} | {rps:,.0f} | {rps / bare:.2f} |")
    else:
        rows.append("| Bytewax | skipped: not installed (pip install 'dagserver[bench]') | |")
    rows.append("| Quix Streams | skipped: no in-process mode (it reads Kafka topics) | |"
                if installed("quixstreams") else
                "| Quix Streams | skipped: not installed (pip install 'dagserver[bench]') | |")
    rows += ["", f"| latency at {LATENCY_RATE:,.0f} rec/s offered | p50 ms | p99 ms |", "|---|---:|---:|"]
    if server_latency is not None:
        ms = server_latency(LATENCY_RATE, LATENCY_SECONDS)
        rows.append(f"| dagserver server path, 1 worker | {ms['p50_ms']:.2f} | {ms['p99_ms']:.2f} |")
    if has_bytewax:
        ms = bytewax_latency(LATENCY_RATE, LATENCY_SECONDS)
        rows.append(f"| Bytewax in-process | {ms['p50_ms']:.2f} | {ms['p99_ms']:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args(argv)
    print("\n".join(peers_rows(args.count, None)))


if __name__ == "__main__":
    main()
