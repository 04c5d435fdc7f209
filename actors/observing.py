"""The worker's commands for seeing inside a DAG: tap, inject, capture (SPEC §13).

Each takes the DAG's runtime and the request's arguments and answers at once (they run
beside the DAG's lane, never behind it). A refusal is an answer too, ``{"refused": why,
"status": HTTP status}``, so the supervisor can tell the caller which kind of problem it was.

Usage (from :meth:`actors.worker.Worker.handle`)::

    OBSERVING["tap"](runtime, {"name": "prices", "node": "value", "after": 0})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.capture import Capture
from actors.runtime import DagRuntime


def tap(runtime: DagRuntime, args: dict[str, Any]) -> dict[str, Any]:
    """``{"open", "newest", "computes": [...]}`` of one node (opening its tap)."""
    node = str(args.get("node", ""))
    stats = runtime.stats.nodes.get(node)
    if stats is None:
        return {"refused": f"dag {runtime.dag.name!r} has no node {node!r}", "status": 404}
    return {"dag": runtime.dag.name, "node": node, **stats.tap.read(int(args.get("after") or 0),
                                                                     int(args.get("limit") or 100))}


def inject(runtime: DagRuntime, args: dict[str, Any]) -> dict[str, Any]:
    subscriber, records = str(args.get("subscriber", "")), list(args.get("records") or [])
    if subscriber not in runtime.dag.subscribers:
        return {"refused": f"dag {runtime.dag.name!r} has no subscriber {subscriber!r}", "status": 404}
    why_not = runtime.inject(subscriber, records)
    if why_not:
        return {"refused": why_not, "status": 409}
    return {"dag": runtime.dag.name, "subscriber": subscriber, "injected": len(records)}


def capture(runtime: DagRuntime, args: dict[str, Any]) -> dict[str, Any]:
    started = Capture(str(args["id"]), int(args["records"]), float(args["seconds"]), int(args["max_bytes"]))
    why_not = runtime.start_capture(started)
    if why_not:
        return {"refused": why_not, "status": 409}
    return started.status()


def capture_status(runtime: DagRuntime, args: dict[str, Any]) -> dict[str, Any]:
    status = runtime.capture_status(str(args.get("id", "")))
    if status is None:
        return {"refused": f"dag {runtime.dag.name!r} has no capture {args.get('id')!r} (a worker keeps the "
                           "latest few, and none across its own restart)", "status": 404}
    return status


OBSERVING: dict[str, Callable[[DagRuntime, dict[str, Any]], dict[str, Any]]] = {
    "tap": tap, "inject": inject, "capture": capture, "capture_status": capture_status}
