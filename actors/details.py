"""The ``details()`` snapshot of a running DAG, as the API serves it (SPEC §7).

Everything returned is plain data (msgpack- and JSON-encodable) so it can cross the
worker's control channel unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.runtime import DagRuntime


def dag_details(runtime: DagRuntime) -> dict[str, Any]:
    dag = runtime.dag
    stats = runtime.stats
    return {
        "name": dag.name,
        "state": runtime.state,
        "reason": runtime.reason,
        "description": dag.description,
        "file": dag.source_path,
        "window": {"start_time": dag.start_time, "end_time": dag.end_time,
                   "duration_seconds": dag.duration_seconds},
        "epochs": {"completed": stats.epochs_completed, "open": stats.epochs_open,
                   "max_records": dag.max_records, "max_inflight": dag.max_inflight,
                   "latency_seconds": stats.epoch_latency.snapshot()},
        "ingress_backlog": stats.ingress_backlog,
        "actor_restarts": stats.actor_restarts,
        "dead_letters": stats.dead_letters,
        "nodes": {
            name: {
                "type": dag.nodes[name].type,
                "input": node.input,
                "output": node.output,
                "computes": node.computes,
                "errors": node.errors,
                "last_errors": list(node.last_errors),
                "last_compute": node.last_compute,
                "compute_seconds": node.compute_seconds.snapshot(),
            }
            for name, node in stats.nodes.items()
        },
        "subscribers": {
            name: {"source": dag.subscribers[name].source, **_endpoint(s)}
            for name, s in stats.subscribers.items()
        },
        "publishers": {
            name: {"destination": dag.publishers[name].destination, **_endpoint(s)}
            for name, s in stats.publishers.items()
        },
    }


def _endpoint(stats: Any) -> dict[str, Any]:
    return {"records": stats.records, "rejected": stats.rejected, "errors": stats.errors,
            "backlog": stats.backlog, "last_activity": stats.last_activity, "status": stats.status}
