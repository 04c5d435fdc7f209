"""The ``details()`` snapshot of a DAG, as the API serves it (SPEC §7, §8).

Everything returned is plain data (msgpack- and JSON-encodable) so it can cross the
worker's control channel unchanged. Node inputs and outputs, and the inputs of recent
errors, are **previews**: a value whose JSON text is longer than :data:`actors.preview.PREVIEW_CHARS` is
replaced by the start of that text and flagged (``input_truncated``...), so a heartbeat
stays small whatever the records weigh. ``details(full=True)`` has the whole values.

Usage::

    value, cut = preview({"big": "x" * 100_000})     # ('{"big": "xxxx...', True)
    value, cut = preview({"small": 1})               # ({'small': 1}, False)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from actors.preview import preview
from actors.states import DagState
from actors.stats import DagStats
from graphs.model import DagModel


class DagView(Protocol):
    """What a snapshot reads of a running DAG (an :class:`actors.runtime.DagRuntime` is one).

    Named here, not imported from the runtime, so imports go one way: the runtime uses this
    module, and this module needs nothing of the runtime's.
    """

    dag: DagModel
    stats: DagStats
    replica: int | None
    state: DagState
    reason: str

    @property
    def ingress_backlog(self) -> int: ...

    def next_times(self) -> tuple[datetime | None, datetime | None]: ...


def dag_details(runtime: DagView, full: bool = False) -> dict[str, Any]:
    dag = runtime.dag
    stats = runtime.stats
    nodes = {}
    for name, node in stats.nodes.items():
        entry: dict[str, Any] = {"type": dag.nodes[name].type}
        for key in ("input", "output"):
            entry[key], entry[f"{key}_truncated"] = (getattr(node, key), False) if full else preview(getattr(node, key))
        entry.update(computes=node.computes, errors=node.errors, last_compute=node.last_compute,
                     last_errors=[_error(e, full) for e in list(node.last_errors)],
                     compute_seconds=node.compute_seconds.snapshot())
        entry.update(node_state(node))
        nodes[name] = entry
    return {
        "name": dag.name,
        "replica": runtime.replica,
        "state": str(runtime.state),
        "reason": runtime.reason,
        "description": dag.description,
        "file": dag.source_path,
        "window": {"start_time": dag.start_time, "end_time": dag.end_time,
                   "duration_seconds": dag.duration_seconds, "schedule": runtime.schedule.describe()},
        **_next_times(runtime),
        "epochs": {"completed": stats.epochs_completed, "open": stats.epochs_open,
                   "max_records": dag.max_records, "max_inflight": dag.max_inflight, "max_bytes": dag.max_bytes,
                   "latency_seconds": stats.epoch_latency.snapshot()},
        "ingress_backlog": runtime.ingress_backlog,
        "actor_restarts": stats.actor_restarts,
        "counters_restored": runtime.counters_restored,  # counting resumed from a checkpoint's counters
        "dead_letters": stats.dead_letters,
        "nodes": nodes,
        "subscribers": {
            name: {"source": dag.subscribers[name].source, **_endpoint(s)}
            for name, s in stats.subscribers.items()
        },
        "publishers": {
            name: {"destination": dag.publishers[name].destination, **_endpoint(s)}
            for name, s in stats.publishers.items()
        },
    }


def _next_times(runtime: DagView) -> dict[str, str | None]:
    """``next_start`` and ``next_stop`` of the DAG's schedule, ISO-8601 with the offset (None: never)."""
    start, stop = runtime.next_times()
    return {"next_start": start.isoformat() if start else None, "next_stop": stop.isoformat() if stop else None}


def _error(error: dict[str, Any], full: bool) -> dict[str, Any]:
    if full:
        return dict(error)
    value, cut = preview(error.get("input"))
    return {**error, "input": value, "input_truncated": cut}


def _endpoint(stats: Any) -> dict[str, Any]:
    return {"records": stats.records, "rejected": stats.rejected, "dropped": stats.dropped,
            "commit_errors": stats.commit_errors, "errors": stats.errors, "redriven": stats.redriven,
            "backlog": stats.backlog, "last_activity": stats.last_activity, "status": stats.status}


def node_details(runtime: DagView, node: str) -> dict[str, Any]:
    """One node's whole current input and output, and its recent errors (no previews)."""
    stats = runtime.stats.nodes.get(node)
    if stats is None:
        raise KeyError(f"dag {runtime.dag.name!r} has no node {node!r}")
    return {"dag": runtime.dag.name, "node": node, "type": runtime.dag.nodes[node].type, "input": stats.input,
            "output": stats.output, "computes": stats.computes, "errors": stats.errors,
            "last_errors": [dict(e) for e in list(stats.last_errors)], **node_state(stats)}


def node_state(stats: Any) -> dict[str, Any]:
    """A node's state figures (SPEC §11): records too late for their window, groups evicted, and for a
    stateful node ``state``: groups held now and the size of its latest snapshot (bytes, encoded)."""
    figures: dict[str, Any] = {"late": stats.late, "evictions": stats.evictions}
    if stats.stateful:
        figures["state"] = {"groups": stats.state_groups, "bytes": stats.state_bytes}
    return figures
