"""Counters that survive a worker's death (SPEC §8: monotonic across worker restarts).

When a worker dies, the supervisor keeps what its DAGs had counted (``carry``) and adds
it to what the replacement counts from zero.

Usage::

    carry = {}
    carry_forward(carry, last_details_of_dead_worker)
    shown = with_carry(current_details, carry)
"""

from __future__ import annotations

import copy
from typing import Any

NODE_COUNTERS = ("computes", "errors")
ENDPOINT_COUNTERS = ("records", "rejected", "errors")
DAG_COUNTERS = ("actor_restarts", "dead_letters")


def _add_histogram(into: dict[str, Any], more: dict[str, Any]) -> None:
    if not more:
        return
    if not into.get("counts") or len(into["counts"]) != len(more.get("counts", [])):
        into.update(copy.deepcopy(more))
        return
    into["counts"] = [a + b for a, b in zip(into["counts"], more["counts"], strict=True)]
    into["sum"] = into.get("sum", 0.0) + more.get("sum", 0.0)
    into["count"] = into.get("count", 0) + more.get("count", 0)


def carry_forward(carry: dict[str, Any], details: dict[str, Any]) -> None:
    """Add the counters of ``details`` (one DAG's snapshot, or a carry) into ``carry``."""
    for key in DAG_COUNTERS:
        carry[key] = carry.get(key, 0) + details.get(key, 0)
    epochs = carry.setdefault("epochs", {})
    epochs["completed"] = epochs.get("completed", 0) + details.get("epochs", {}).get("completed", 0)
    _add_histogram(epochs.setdefault("latency_seconds", {}), details.get("epochs", {}).get("latency_seconds", {}))
    for name, node in details.get("nodes", {}).items():
        kept = carry.setdefault("nodes", {}).setdefault(name, {})
        for key in NODE_COUNTERS:
            kept[key] = kept.get(key, 0) + node.get(key, 0)
        _add_histogram(kept.setdefault("compute_seconds", {}), node.get("compute_seconds", {}))
    for section in ("subscribers", "publishers"):
        for name, endpoint in details.get(section, {}).items():
            kept = carry.setdefault(section, {}).setdefault(name, {})
            for key in ENDPOINT_COUNTERS:
                kept[key] = kept.get(key, 0) + endpoint.get(key, 0)


def with_carry(details: dict[str, Any], carry: dict[str, Any] | None) -> dict[str, Any]:
    """``details`` with the carried counters added (a new dict; ``details`` is not changed)."""
    if not carry:
        return details
    shown = copy.deepcopy(details)
    carry_forward(shown, carry)
    return shown
