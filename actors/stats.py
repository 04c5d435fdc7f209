"""Per-DAG counters that outlive the DAG's actors.

A :class:`DagStats` belongs to the DAG runtime, not to any actor, so a restart of the
actors keeps every count (SPEC §8: counters are monotonic). Each figure is written by
exactly one actor thread and read by ``details()``/metrics; plain ints are enough.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from actors.tap import NodeTap

MAX_KEPT_ERRORS = 10
# Histogram bounds in seconds (SPEC §8). An epoch of a small DAG completes in well under a
# millisecond and one compute takes microseconds, so both scales are fine-grained there
# (1, 2.5, 5 per decade) and coarse above, ending at 10 s: a p50/p99 read from them stays
# meaningful from the fastest epochs to a stalled sink.
LATENCY_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
COMPUTE_BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05,
                   0.25, 1.0, 2.5, 10.0)


class Histogram:
    """A cumulative-bucket histogram that can add ``n`` equal observations at once."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += n
        self.sum += value * n
        self.count += n

    def observe_each(self, values: list[float]) -> None:
        """One observation per value (``values`` is sorted in place: one C sort, then one bisect per
        bucket instead of one per value)."""
        values.sort()
        counts, upto_bound = self.counts, bisect.bisect_right
        below = 0
        for i, bound in enumerate(self.buckets):
            upto = upto_bound(values, bound, below)  # values <= bound: bucket i is (bound i-1, bound i]
            counts[i] += upto - below
            below = upto
        counts[-1] += len(values) - below
        self.sum += sum(values)
        self.count += len(values)

    def snapshot(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "counts": list(self.counts), "sum": self.sum,
                "count": self.count}


@dataclass
class NodeStats:
    computes: int = 0
    errors: int = 0
    last_errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_KEPT_ERRORS))
    last_compute: float | None = None
    input: Any = None
    output: Any = None
    compute_seconds: Histogram = field(default_factory=lambda: Histogram(COMPUTE_BUCKETS))
    late: int = 0  # records too late for their window (SPEC §11)
    evictions: int = 0  # groups evicted by max_keys
    state_groups: int | None = None  # groups a stateful calculator holds now (None: it does not say)
    state_bytes: int | None = None  # size of its latest snapshot, encoded (None: no state taken yet)
    stateful: bool = False  # the node keeps calculator or transformer state (shown under "state")
    tap: NodeTap = field(default_factory=NodeTap)  # its latest computes, kept while someone reads them

    def error(self, message: str, input_value: Any, now: float) -> None:
        self.errors += 1
        self.last_errors.append({"time": now, "message": message, "input": input_value})


@dataclass
class EndpointStats:
    """A subscriber's or a publisher's figures."""

    records: int = 0
    rejected: int = 0
    dropped: int = 0  # records lost by nature of the source (an at-most-once channel's overflow)
    commit_errors: int = 0  # subscriber: commits/acks its source failed (and retries), SPEC §6
    errors: int = 0
    redriven: int = 0  # subscriber: dead letters' records injected again (``redriven_total``, SPEC §13)
    backlog: int | None = 0  # subscriber: records waiting at the source (None: unknown); publisher: epochs
    last_activity: float | None = None
    status: str = "closed"  # the adapter's status while its endpoint is open (SPEC §6); closed otherwise

    def add(self, n: int) -> None:
        self.records += n
        self.last_activity = time.time()


@dataclass
class DagStats:
    nodes: dict[str, NodeStats]
    subscribers: dict[str, EndpointStats]
    publishers: dict[str, EndpointStats]
    epochs_completed: int = 0
    epochs_open: int = 0
    ingress_backlog: int = 0
    actor_restarts: int = 0
    dead_letters: int = 0
    epoch_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))

    @classmethod
    def for_dag(cls, dag: Any) -> DagStats:
        return cls(
            nodes={n: NodeStats() for n in dag.nodes},
            subscribers={s: EndpointStats() for s in dag.subscribers},
            publishers={p: EndpointStats() for p in dag.publishers},
        )
