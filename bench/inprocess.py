"""``python -m bench.inprocess``: the 4-node reference pipeline in this one process.

No worker process and no supervisor: a :class:`~actors.runtime.DagRuntime` reading a
``mem://queue`` and writing another, fed by a thread. It isolates the actor runtime's own
cost from the process machinery that ``python -m bench`` includes.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from actors.runtime import DagRuntime
from adapters.builtin.mem import get_queue, mem_put
from bench.workloads import throughput_record
from graphs.loader import load_dag_dict


def inprocess_rps(count: int, prepare: Callable[[DagRuntime], None] | None = None, cpu: bool = False) -> float:
    """Records/s through the pipeline; ``prepare`` is called with the started runtime before the feed.
    ``cpu``: per second of this process's CPU time instead of wall time (steadier on a busy machine)."""
    clock = time.process_time if cpu else time.perf_counter
    dag = load_dag_dict({
        "name": "inprocess",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/inprocess-in", "max_size": 50_000}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/inprocess-out", "max_size": 50_000}}],
        "calculators": [
            {"name": "drop_note", "type": "AttributeFilterAwayCalculator", "config": {"filter_attributes": ["note"]}},
            {"name": "default_qty", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
            {"name": "value", "type": "MultiplicationCalculator",
             "config": {"arguments": ["price", "qty"], "output_attribute": "value"}},
        ],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "drop_note"},
            {"name": "defaults", "calculator": "default_qty"},
            {"name": "value", "calculator": "value"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "defaults"}, {"from_node": "defaults", "to_node": "value"},
                  {"from_node": "value", "to_node": "publish"}],
    })
    runtime = DagRuntime(dag)
    runtime.start()
    if prepare is not None:
        prepare(runtime)
    out = get_queue("inprocess-out", 50_000)

    def feed() -> None:
        for first in range(0, count, 1000):
            mem_put("inprocess-in", [throughput_record(i) for i in range(first, min(count, first + 1000))])

    start = clock()
    threading.Thread(target=feed, daemon=True).start()
    seen = 0
    while seen < count:
        seen += len(out.get(10_000, 1.0))
    elapsed = clock() - start
    runtime.stop(timeout=30)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args()
    print(f"4-node mem pipeline in one process: {inprocess_rps(args.count):,.0f} records/s")


if __name__ == "__main__":
    main()
