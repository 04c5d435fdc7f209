"""The cost of a ``/metrics`` scrape, and of the heartbeats behind it, when records are big.

100 DAGs of six nodes, each node holding a 50 KB record as its input and its output (as
the runtime keeps them): the worker side builds every DAG's ``details()`` and packs the
heartbeat as it does every 0.5 s; the supervisor side unpacks it, keeps it, and renders
``/metrics``. No process is started: both sides run here, on the real code.

Usage::

    python -m bench.scrape            # prints both medians
"""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Any

from actors.control import HEARTBEAT, pack, unpack
from actors.runtime import DagRuntime
from graphs.loader import load_dag_dict
from supervision.config import ServerConfig
from supervisor import DagEntry, Supervisor

NODES = 6


def big_record(i: int, size: int) -> dict[str, Any]:
    return {"id": i, "blob": "z" * size, "values": list(range(20))}


def six_node_dag(name: str) -> dict[str, Any]:
    names = [f"n{i}" for i in range(NODES)]
    nodes: list[dict[str, Any]] = [{"name": names[0], "type": "SubscriptionNode", "subscriber": "in"}]
    nodes += [{"name": n} for n in names[1:-1]] + [{"name": names[-1], "type": "PublicationNode",
                                                    "publishers": ["out"]}]
    return {"name": name, "subscribers": [{"name": "in", "config": {"source": f"mem://queue/{name}-in"}}],
            "publishers": [{"name": "out", "config": {"destination": f"mem://queue/{name}-out"}}],
            "nodes": nodes, "edges": [{"from_node": a, "to_node": b} for a, b in itertools.pairwise(names)]}


def loaded_runtimes(count: int, record_bytes: int) -> list[DagRuntime]:
    """``count`` runtimes (not started) whose nodes hold ``record_bytes`` records, with some figures."""
    runtimes = []
    for d in range(count):
        runtime = DagRuntime(load_dag_dict(six_node_dag(f"big{d}")))
        for i, stats in enumerate(runtime.stats.nodes.values()):
            stats.input = stats.output = big_record(i, record_bytes)
            stats.computes = 1000 + i
            stats.compute_seconds.observe(1e-5, 1000)
        runtimes.append(runtime)
    return runtimes


def median_ms(call: Any, rounds: int = 11) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def scrape_figures(count: int = 100, record_bytes: int = 50_000) -> dict[str, float]:
    """``heartbeat_ms_…``: build and pack one heartbeat of every DAG; ``metrics_render_ms_…``: one scrape."""
    runtimes = loaded_runtimes(count, record_bytes)

    def heartbeat() -> bytes:
        return pack([HEARTBEAT, 0, {rt.dag.name: rt.details() for rt in runtimes}])

    frame = heartbeat()
    supervisor = Supervisor(ServerConfig(workers=1), "WARNING")
    handle = supervisor.workers[0]
    for name, details in unpack(frame)[2].items():
        supervisor.dags[name] = DagEntry(name, f"{name}.json", {"name": name}, [0])
        handle.details[name] = details
    handle.process = _Alive()
    label = f"{count}_dags_{record_bytes // 1000}kb"
    return {f"heartbeat_ms_{label}": median_ms(heartbeat),
            f"heartbeat_bytes_{label}": float(len(frame)),
            f"metrics_render_ms_{label}": median_ms(supervisor.metrics_text)}


class _Alive:
    """Stands in for a worker process that is up (the scrape asks only that)."""

    pid = 0

    @staticmethod
    def is_alive() -> bool:
        return True


def main() -> None:
    for key, value in scrape_figures().items():
        print(f"{key}: {value:,.1f}")


if __name__ == "__main__":
    main()
