"""The counters a checkpoint saves with its positions, so a kill -9 loses none of them (SPEC §3, §8).

A worker tells the supervisor its counts in heartbeats; what it counted after the last one
dies with it. When the input behind those counts was committed, it is never read (nor
counted) again, so each checkpoint also saves the counters that go with its positions, and
the next incarnation of the DAG starts counting from them (the supervisor merges them with
what it carried: ``supervision/counters.py``).

The subscribers' counts are exactly those of the checkpointed positions: each ``Ingest``
carries its subscriber's counts with that batch included (:func:`subscriber_counted`), kept
per epoch like the positions. The nodes' counts are those at the end of the checkpoint
epoch (each node's ``State`` carries them, :func:`node_counted`). The publishers' and the
DAG's own are read when the checkpoint is handed to the saver.

Usage::

    saved = checkpoint_counters(stats, subscribers={"in": [10, 2, 0]}, nodes={})
    fresh = DagStats.for_dag(dag)
    restore_counters(fresh, saved)          # fresh.subscribers["in"].rejected == 2
"""

from __future__ import annotations

from typing import Any

from actors.stats import DagStats, EndpointStats, Histogram, NodeStats

ENDPOINT_FIELDS = ("records", "rejected", "dropped", "commit_errors", "errors")
SUBSCRIBER_COUNTED = ("records", "rejected", "dropped")  # the order of an Ingest's ``counted``


def subscriber_counted(stats: EndpointStats) -> list[int]:
    """What an ``Ingest`` carries: the subscriber's counts, its batch included."""
    return [stats.records, stats.rejected, stats.dropped]


def node_counted(stats: NodeStats) -> list[Any]:
    """What a node's ``State`` carries: its counts at the end of the epoch."""
    return [stats.computes, stats.errors, _histogram(stats.compute_seconds)]


def checkpoint_counters(stats: DagStats, subscribers: dict[str, list[int]],
                        nodes: dict[str, list[Any]]) -> dict[str, Any]:
    """The ``counters`` section of a checkpoint (plain data): ``subscribers`` and ``nodes`` hold
    what the checkpoint epoch's messages carried (:func:`subscriber_counted`, :func:`node_counted`)."""
    subs: dict[str, dict[str, int]] = {}
    for name, endpoint in stats.subscribers.items():
        entry = {key: getattr(endpoint, key) for key in ENDPOINT_FIELDS}
        entry.update(zip(SUBSCRIBER_COUNTED, subscribers.get(name) or [0, 0, 0], strict=True))
        subs[name] = entry
    return {
        "subscribers": subs,
        "publishers": {name: {key: getattr(endpoint, key) for key in ENDPOINT_FIELDS}
                       for name, endpoint in stats.publishers.items()},
        "nodes": {name: {"computes": counted[0], "errors": counted[1], "compute_seconds": counted[2]}
                  for name, counted in nodes.items() if name in stats.nodes},
        "epochs_completed": stats.epochs_completed,
        "dead_letters": stats.dead_letters,
        "actor_restarts": stats.actor_restarts,
        "epoch_latency": _histogram(stats.epoch_latency),
    }


def restore_counters(stats: DagStats, saved: Any) -> bool:
    """Start ``stats`` (fresh) from a checkpoint's ``counters``; False when there are none to restore
    (a checkpoint written before they were saved). Unknown names and shapes are skipped."""
    if not isinstance(saved, dict) or not saved:
        return False
    for section, endpoints in (("subscribers", stats.subscribers), ("publishers", stats.publishers)):
        for name, counts in (saved.get(section) or {}).items():
            if name in endpoints and isinstance(counts, dict):
                for key in ENDPOINT_FIELDS:
                    setattr(endpoints[name], key, _int(counts.get(key)))
    for name, counts in (saved.get("nodes") or {}).items():
        if name in stats.nodes and isinstance(counts, dict):
            node = stats.nodes[name]
            node.computes, node.errors = _int(counts.get("computes")), _int(counts.get("errors"))
            _set_histogram(node.compute_seconds, counts.get("compute_seconds"))
    stats.epochs_completed = _int(saved.get("epochs_completed"))
    stats.dead_letters = _int(saved.get("dead_letters"))
    stats.actor_restarts = _int(saved.get("actor_restarts"))
    _set_histogram(stats.epoch_latency, saved.get("epoch_latency"))
    return True


def subscribers_counted(saved: Any) -> dict[str, list[int]]:
    """A checkpoint's subscriber counts in the form an ``Ingest`` carries (the coordinator's start)."""
    subs = (saved or {}).get("subscribers") if isinstance(saved, dict) else None
    return {name: [_int(counts.get(key)) for key in SUBSCRIBER_COUNTED]
            for name, counts in (subs or {}).items() if isinstance(counts, dict)}


def nodes_counted(saved: Any) -> dict[str, list[Any]]:
    """A checkpoint's node counts in the form a ``State`` carries (the coordinator's start)."""
    nodes = (saved or {}).get("nodes") if isinstance(saved, dict) else None
    return {name: [_int(counts.get("computes")), _int(counts.get("errors")), counts.get("compute_seconds")]
            for name, counts in (nodes or {}).items() if isinstance(counts, dict)}


def _histogram(histogram: Histogram) -> dict[str, Any]:
    return {"counts": list(histogram.counts), "sum": histogram.sum, "count": histogram.count}


def _set_histogram(histogram: Histogram, saved: Any) -> None:
    if isinstance(saved, dict) and len(saved.get("counts") or ()) == len(histogram.counts):
        histogram.counts = [_int(c) for c in saved["counts"]]
        histogram.sum = float(saved.get("sum") or 0.0)
        histogram.count = _int(saved.get("count"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
