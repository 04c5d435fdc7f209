"""Counters that survive a worker's death (SPEC §8: monotonic across worker restarts).

When a worker dies, the supervisor keeps what its DAGs had counted (``carry``) and adds
it to what the replacement counts from zero. Showing a DAG with its carry copies only the
dicts that hold counters; records and previews are shared, never copied.

Usage::

    carry = {}
    carry_forward(carry, last_details_of_dead_worker)
    shown = with_carry(current_details, carry)
"""

from __future__ import annotations

from typing import Any

NODE_COUNTERS = ("computes", "errors")
ENDPOINT_COUNTERS = ("records", "rejected", "dropped", "errors", "redriven")
DAG_COUNTERS = ("actor_restarts", "dead_letters")


def _summed_histogram(mine: dict[str, Any] | None, more: dict[str, Any] | None) -> dict[str, Any]:
    """A new histogram snapshot: ``mine`` plus ``more`` (either may be missing or empty)."""
    if not more or not more.get("counts"):
        return dict(mine or {})
    if not mine or len(mine.get("counts") or ()) != len(more["counts"]):
        return {**more, "counts": list(more["counts"])}
    return {**mine, "counts": [a + b for a, b in zip(mine["counts"], more["counts"], strict=True)],
            "sum": mine.get("sum", 0.0) + more.get("sum", 0.0), "count": mine.get("count", 0) + more.get("count", 0)}


def _added(details: dict[str, Any], carry: dict[str, Any]) -> dict[str, Any]:
    """``details`` with ``carry``'s counters added: a new dict, ``details`` unchanged."""
    shown = dict(details)
    for key in DAG_COUNTERS:
        shown[key] = details.get(key, 0) + carry.get(key, 0)
    epochs, carried_epochs = details.get("epochs") or {}, carry.get("epochs") or {}
    shown["epochs"] = {**epochs, "completed": epochs.get("completed", 0) + carried_epochs.get("completed", 0),
                       "latency_seconds": _summed_histogram(epochs.get("latency_seconds"),
                                                            carried_epochs.get("latency_seconds"))}
    nodes = dict(details.get("nodes") or {})
    for name, kept in (carry.get("nodes") or {}).items():
        node = dict(nodes.get(name) or {})
        for key in NODE_COUNTERS:
            node[key] = node.get(key, 0) + kept.get(key, 0)
        node["compute_seconds"] = _summed_histogram(node.get("compute_seconds"), kept.get("compute_seconds"))
        nodes[name] = node
    shown["nodes"] = nodes
    for section in ("subscribers", "publishers"):
        endpoints = dict(details.get(section) or {})
        for name, kept in (carry.get(section) or {}).items():
            endpoint = dict(endpoints.get(name) or {})
            for key in ENDPOINT_COUNTERS:
                endpoint[key] = endpoint.get(key, 0) + kept.get(key, 0)
            endpoints[name] = endpoint
        shown[section] = endpoints
    return shown


def carry_forward(carry: dict[str, Any], details: dict[str, Any]) -> None:
    """Add the counters of ``details`` (one DAG's snapshot) into ``carry``, in place."""
    carry.update(_counters_only(_added(_counters_only(details), carry)))


def _counters_only(details: dict[str, Any]) -> dict[str, Any]:
    """Just the counters of a snapshot (what a carry holds)."""
    epochs = details.get("epochs") or {}
    return {
        **{key: details.get(key, 0) for key in DAG_COUNTERS},
        "epochs": {"completed": epochs.get("completed", 0), "latency_seconds": epochs.get("latency_seconds") or {}},
        "nodes": {name: {**{k: node.get(k, 0) for k in NODE_COUNTERS},
                         "compute_seconds": node.get("compute_seconds") or {}}
                  for name, node in (details.get("nodes") or {}).items()},
        **{section: {name: {k: e.get(k, 0) for k in ENDPOINT_COUNTERS}
                     for name, e in (details.get(section) or {}).items()}
           for section in ("subscribers", "publishers")},
    }


def with_carry(details: dict[str, Any], carry: dict[str, Any] | None) -> dict[str, Any]:
    """``details`` with the carried counters added (a new dict; ``details`` is not changed)."""
    if not carry:
        return details
    return _added(details, carry)
