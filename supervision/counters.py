"""Counters that survive a worker's death (SPEC §8: monotonic across worker restarts).

When a worker dies, the supervisor keeps what its DAGs had counted (``carry``) and adds
it to what the replacement counts. A replacement that resumed counting from its
checkpoint's counters (``details["counters_restored"]``, :mod:`actors.counting`) already
holds everything counted up to that checkpoint, the last heartbeat's unknown tail included,
so only ``carry["base"]`` is added to it: what was counted before those counters began (an
older checkpoint without counters, a lost ``state_dir``). Either way a DAG is never shown
less than ``carry["floor"]``, what was shown when the last incarnation died: the checkpoint
may be older than the last heartbeat, and the replay of what came after it catches up with
the floor instead of counting it twice. Showing a DAG with its carry copies only the
dicts that hold counters; records and previews are shared, never copied.

Usage::

    carry = {}
    carry_forward(carry, last_details_of_dead_worker)
    shown = with_carry(current_details, carry)
"""

from __future__ import annotations

from typing import Any

NODE_COUNTERS = ("computes", "errors", "late", "evictions")
ENDPOINT_COUNTERS = ("records", "rejected", "dropped", "commit_errors", "errors", "redriven")
DAG_COUNTERS = ("actor_restarts", "dead_letters")
RESTORED = "counters_restored"  # in a runtime's details: its counters resumed from its checkpoint's
FLOOR, BASE = "floor", "base"  # in a carry: see the module's docstring


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
    """The incarnation of ``details`` (one DAG's last snapshot) is gone: update ``carry`` in place."""
    restored = bool(details.get(RESTORED))
    shown = _counters_only(with_carry(details, carry))  # what was shown when it went
    used = carry.get(BASE) or {} if restored else _counters_only(carry)  # what was added to its counts
    carry.clear()
    carry.update(shown)  # added to a replacement that counts from zero
    carry[FLOOR] = shown
    carry[BASE] = used  # added to a replacement that resumes from the checkpoints its counts went into


def plus(details: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``details`` with the counters of ``more`` added (e.g. another replica's): a new dict."""
    return _added(details, more)


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
    """``details`` with the carried counters added, never below the floor (a new dict; ``details`` is
    not changed)."""
    if not carry:
        return details
    shown = _added(details, carry.get(BASE) or {} if details.get(RESTORED) else carry)
    floor = carry.get(FLOOR)
    return _at_least(shown, floor) if floor else shown


def _at_least(shown: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """``shown`` (a new dict of its own) with each counter raised to ``floor``'s where that is higher."""
    for key in DAG_COUNTERS:
        shown[key] = max(shown.get(key, 0), floor.get(key, 0))
    epochs, low = dict(shown.get("epochs") or {}), floor.get("epochs") or {}
    epochs["completed"] = max(epochs.get("completed", 0), low.get("completed", 0))
    epochs["latency_seconds"] = _highest_histogram(epochs.get("latency_seconds"), low.get("latency_seconds"))
    shown["epochs"] = epochs
    for name, kept in (floor.get("nodes") or {}).items():
        node = shown["nodes"][name] = dict(shown["nodes"].get(name) or {})
        for key in NODE_COUNTERS:
            node[key] = max(node.get(key, 0), kept.get(key, 0))
        node["compute_seconds"] = _highest_histogram(node.get("compute_seconds"), kept.get("compute_seconds"))
    for section in ("subscribers", "publishers"):
        for name, kept in (floor.get(section) or {}).items():
            endpoint = shown[section][name] = dict(shown[section].get(name) or {})
            for key in ENDPOINT_COUNTERS:
                endpoint[key] = max(endpoint.get(key, 0), kept.get(key, 0))
    return shown


def _highest_histogram(mine: dict[str, Any] | None, low: dict[str, Any] | None) -> dict[str, Any]:
    """Each bucket's count the higher of the two (so no bucket ever goes down)."""
    if not low or not low.get("counts"):
        return dict(mine or {})
    if not mine or len(mine.get("counts") or ()) != len(low["counts"]):
        return {**low, "counts": list(low["counts"])}
    counts = [max(a, b) for a, b in zip(mine["counts"], low["counts"], strict=True)]
    return {**mine, "counts": counts, "count": sum(counts), "sum": max(mine.get("sum", 0.0), low.get("sum", 0.0))}
