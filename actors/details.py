"""The ``details()`` snapshot of a DAG, as the API serves it (SPEC §7, §8).

Everything returned is plain data (msgpack- and JSON-encodable) so it can cross the
worker's control channel unchanged. Node inputs and outputs, and the inputs of recent
errors, are **previews**: a value whose JSON text is longer than :data:`PREVIEW_CHARS` is
replaced by the start of that text and flagged (``input_truncated``...), so a heartbeat
stays small whatever the records weigh. ``details(full=True)`` has the whole values.

Usage::

    value, cut = preview({"big": "x" * 100_000})     # ('{"big": "xxxx...', True)
    value, cut = preview({"small": 1})               # ({'small': 1}, False)
"""

from __future__ import annotations

import base64
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.runtime import DagRuntime

PREVIEW_CHARS = 1024


def dag_details(runtime: DagRuntime, full: bool = False) -> dict[str, Any]:
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
        nodes[name] = entry
    return {
        "name": dag.name,
        "replica": runtime.replica,
        "state": str(runtime.state),
        "reason": runtime.reason,
        "description": dag.description,
        "file": dag.source_path,
        "window": {"start_time": dag.start_time, "end_time": dag.end_time,
                   "duration_seconds": dag.duration_seconds},
        "epochs": {"completed": stats.epochs_completed, "open": stats.epochs_open,
                   "max_records": dag.max_records, "max_inflight": dag.max_inflight, "max_bytes": dag.max_bytes,
                   "latency_seconds": stats.epoch_latency.snapshot()},
        "ingress_backlog": runtime.ingress_backlog,
        "actor_restarts": stats.actor_restarts,
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


def _error(error: dict[str, Any], full: bool) -> dict[str, Any]:
    if full:
        return dict(error)
    value, cut = preview(error.get("input"))
    return {**error, "input": value, "input_truncated": cut}


def _endpoint(stats: Any) -> dict[str, Any]:
    return {"records": stats.records, "rejected": stats.rejected, "dropped": stats.dropped, "errors": stats.errors,
            "redriven": stats.redriven, "backlog": stats.backlog, "last_activity": stats.last_activity,
            "status": stats.status}


# -- previews ---------------------------------------------------------------------------------------
class _Full(Exception):
    """The preview reached its length."""


def preview(value: Any, limit: int = PREVIEW_CHARS) -> tuple[Any, bool]:
    """``(value, False)`` when its JSON text fits in ``limit`` characters, else ``(start of the text, True)``.

    The walk stops as soon as ``limit`` characters are written, so it costs the same for a
    50 KB record as for a 5 MB one. Bytes show as base64, NaN and infinities as null.
    """
    out: list[str] = []
    left = [limit]
    try:
        _write(value, out, left)
    except _Full:
        return "".join(out)[:limit] + "…", True
    return value, False


def _put(text: str, out: list[str], left: list[int]) -> None:
    out.append(text)
    left[0] -= len(text)
    if left[0] < 0:
        raise _Full


def _write(value: Any, out: list[str], left: list[int]) -> None:
    kind = type(value)
    if kind is dict:
        _put("{", out, left)
        for i, (key, item) in enumerate(value.items()):
            _put(", " if i else "", out, left)
            _put(json.dumps(str(key)[: left[0] + 1]) + ": ", out, left)
            _write(item, out, left)
        _put("}", out, left)
    elif kind is list or kind is tuple:
        _put("[", out, left)
        for i, item in enumerate(value):
            _put(", " if i else "", out, left)
            _write(item, out, left)
        _put("]", out, left)
    elif value is None or kind is bool:
        _put("null" if value is None else ("true" if value else "false"), out, left)
    elif kind is int:
        _put(str(value) if -(10**18) < value < 10**18 else f"{float(value):e}", out, left)
    elif kind is float:
        _put(repr(value) if math.isfinite(value) else "null", out, left)
    elif kind is str:
        _put(json.dumps(value[: left[0] + 1]), out, left)
    elif kind is bytes or kind is bytearray:
        _put('"' + base64.b64encode(bytes(value[: left[0] + 1])).decode("ascii") + '"', out, left)
    else:
        _put(json.dumps(repr(value)[: left[0] + 1]), out, left)


def node_details(runtime: DagRuntime, node: str) -> dict[str, Any]:
    """One node's whole current input and output, and its recent errors (no previews)."""
    stats = runtime.stats.nodes.get(node)
    if stats is None:
        raise KeyError(f"dag {runtime.dag.name!r} has no node {node!r}")
    return {"dag": runtime.dag.name, "node": node, "type": runtime.dag.nodes[node].type, "input": stats.input,
            "output": stats.output, "computes": stats.computes, "errors": stats.errors,
            "last_errors": [dict(e) for e in list(stats.last_errors)]}
