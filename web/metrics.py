"""Prometheus text exposition of every DAG's and worker's figures (SPEC §8).

:func:`render_metrics` turns plain data — the per-DAG ``details()`` snapshots (see
``actors/details.py``) plus each DAG's ``worker``, and the worker list — into the
exposition bytes served at ``/metrics`` (text format 0.0.4). Nothing is kept between
scrapes, so the counters are exactly as monotonic as the snapshots they come from.
:data:`FAMILIES` names every family with its type and help text (what it counts); the
histogram bounds are ``actors.stats.LATENCY_BUCKETS`` and ``COMPUTE_BUCKETS``.

The text is written directly rather than through ``prometheus_client``'s registry: its
generic per-sample validation and escaping cost ~80 ms for 100 DAGs, most of the scrape
budget, while here each label set is escaped once and reused for all of its samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from prometheus_client.utils import floatToGoString

from web.service import DAG_STATES as STATES

PREFIX = "dagserver_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DAG_STATES = tuple(str(state) for state in STATES)
ENDPOINT_STATUSES = ("connected", "reconnecting", "closed", "failed")

# Every family: name (without the prefix) -> (type, help text saying what it counts). Labels
# are ``dag`` and ``worker`` (the worker process id, "" when unplaced) on every per-DAG
# family, plus ``replica`` (its index) for one copy of a DAG run as several (SPEC §5).
FAMILIES: dict[str, tuple[str, str]] = {
    "node_computes_total": ("counter", "Computations a node ran on an input record, failed ones included."),
    "node_errors_total": ("counter", "Node computations that raised or returned something other than a map; "
                                     "each is also a dead letter."),
    "node_compute_seconds": ("histogram", "Seconds each node computation took (transformers and calculator), "
                                          "one observation per compute."),
    "records_late_total": ("counter", "Records a windowed aggregate received for a window already closed by its "
                                      "watermark; each is also a dead letter, and not an error."),
    "state_evictions_total": ("counter", "Groups a stateful node dropped because it held more than max_keys, "
                                         "the least recently updated first."),
    "state_groups": ("gauge", "Groups (keys, or key and window) a stateful node holds now."),
    "state_bytes": ("gauge", "Bytes of a stateful node's latest snapshot, msgpack-encoded as checkpointed."),
    "records_received_total": ("counter", "Records a subscriber read from its source and let into the DAG."),
    "records_rejected_total": ("counter", "Records a subscriber refused at ingress as invalid (not a map, "
                                          "undecodable); each is also a dead letter."),
    "records_dropped_total": ("counter", "Records a source lost before the DAG saw them because it is at-most-once "
                                         "by nature (a pub/sub channel whose buffer overflowed)."),
    "commit_errors_total": ("counter", "Commits of completed input back to the source (Kafka offset commits, "
                                       "STOMP ACKs, stream XACKs) that failed; each is retried at the next commit."),
    "source_lag": ("gauge", "Records waiting at the source and not read yet (e.g. Kafka consumer lag); "
                            "absent for sources that cannot tell."),
    "source_status": ("gauge", "Subscriber connection status: 1 for the status label it has now (connected, "
                               "reconnecting, closed, failed), 0 for the others."),
    "sink_status": ("gauge", "Publisher connection status: 1 for the status label it has now (connected, "
                             "reconnecting, closed, failed), 0 for the others."),
    "records_published_total": ("counter", "Records a publisher wrote to its destination."),
    "publish_errors_total": ("counter", "Publisher writes that failed, plus records the destination refused."),
    "epoch_latency_seconds": ("histogram", "Seconds from an epoch's first record read to the acknowledgement of "
                                           "all its outputs, one observation per completed epoch."),
    "ingress_backlog": ("gauge", "Records read from the sources and not yet completed (in open epochs)."),
    "actor_restarts_total": ("counter", "Restarts of the DAG's actors after one of them failed."),
    "epochs_completed_total": ("counter", "Epochs whose outputs were all acknowledged."),
    "dead_letters_total": ("counter", "Records rejected at ingress, refused by a sink, or whose computation "
                                      "failed, counted whether or not the DAG has a dead_letter destination."),
    "redriven_total": ("counter", "Dead letters whose ingress record was injected again at its subscriber "
                                  "(POST /api/dags/NAME/deadletters/redrive)."),
    "worker_restarts_total": ("counter", "Times a worker process was replaced after it died or hung."),
    "dag_state": ("gauge", "DAG state: 1 for the state label the DAG is in now (starting, running, suspended, "
                           "stopped, failed, restarting, standby), 0 for the others."),
    "ha_leader": ("gauge", "1 when this server is the leader that runs the DAGs, 0 on a standby; "
                           "always 1 without high availability."),
    "build_info": ("gauge", "Always 1; the version label is the dagserver version serving these metrics."),
}


def render_metrics(dags: list[dict[str, Any]], workers: list[dict[str, Any]], *, leader: bool = True,
                   version: str = "") -> bytes:
    """The exposition for ``dags`` and ``workers``, UTF-8 encoded.

    ``dags`` are ``dag_details`` dicts, each with an extra ``worker`` key (an int, or None
    when the DAG is not placed) and, for a replica of a DAG run as several, ``replica``
    (its index, added as a label); ``workers`` are ``{id, pid, alive, restarts, dags}``.
    Missing sections (e.g. a stopped DAG without node figures) are simply left out.
    ``leader`` is whether this server runs the DAGs (always, without high availability).
    """
    computes = family("node_computes_total")
    errors = family("node_errors_total")
    compute_seconds = family("node_compute_seconds")
    late = family("records_late_total")
    evictions = family("state_evictions_total")
    groups = family("state_groups")
    state_bytes = family("state_bytes")
    received = family("records_received_total")
    rejected = family("records_rejected_total")
    dropped = family("records_dropped_total")
    commit_errors = family("commit_errors_total")
    lag = family("source_lag")
    source_status = family("source_status")
    sink_status = family("sink_status")
    published = family("records_published_total")
    publish_errors = family("publish_errors_total")
    latency = family("epoch_latency_seconds")
    backlog = family("ingress_backlog")
    epochs = family("epochs_completed_total")
    actor_restarts = family("actor_restarts_total")
    worker_restarts = family("worker_restarts_total")
    dead_letters = family("dead_letters_total")
    redriven = family("redriven_total")
    state = family("dag_state")
    ha_leader = family("ha_leader")
    build_info = family("build_info")

    for dag in dags:
        dag_label = f'dag="{escape(str(dag.get("name", "")))}"'
        worker = f'worker="{escape(worker_label(dag.get("worker")))}"'
        if dag.get("replica") is not None:  # one of several replicas of the DAG (SPEC §5, §8)
            worker += f',replica="{dag["replica"]}"'
        per_dag = f"{dag_label},{worker}"
        current = dag.get("state")
        for each in DAG_STATES:
            state.add(f'{per_dag},state="{each}"', 1 if each == current else 0)

        for node, figures in (dag.get("nodes") or {}).items():
            labels = f'{dag_label},node="{escape(str(node))}",{worker}'
            computes.add(labels, figures.get("computes"))
            errors.add(labels, figures.get("errors"))
            compute_seconds.add_histogram(labels, figures.get("compute_seconds"))
            held = figures.get("state")
            if held is not None or figures.get("late") or figures.get("evictions"):  # stateful nodes only
                late.add(labels, figures.get("late", 0))
                evictions.add(labels, figures.get("evictions", 0))
            if held is not None:
                groups.add(labels, held.get("groups"))
                state_bytes.add(labels, held.get("bytes"))
        for sub, figures in (dag.get("subscribers") or {}).items():
            labels = f'{dag_label},subscriber="{escape(str(sub))}",{worker}'
            received.add(labels, figures.get("records"))
            rejected.add(labels, figures.get("rejected"))
            dropped.add(labels, figures.get("dropped"))
            commit_errors.add(labels, figures.get("commit_errors"))
            redriven.add(labels, figures.get("redriven"))
            lag.add(labels, figures.get("backlog"))
            _status(source_status, labels, figures.get("status"))
        for pub, figures in (dag.get("publishers") or {}).items():
            labels = f'{dag_label},publisher="{escape(str(pub))}",{worker}'
            published.add(labels, figures.get("records"))
            publish_errors.add(labels, figures.get("errors"))
            _status(sink_status, labels, figures.get("status"))

        epoch_figures = dag.get("epochs") or {}
        epochs.add(per_dag, epoch_figures.get("completed"))
        latency.add_histogram(per_dag, epoch_figures.get("latency_seconds"))
        backlog.add(per_dag, dag.get("ingress_backlog"))
        actor_restarts.add(per_dag, dag.get("actor_restarts"))
        dead_letters.add(per_dag, dag.get("dead_letters"))

    for entry in workers:
        worker_restarts.add(f'worker="{escape(worker_label(entry.get("id")))}"', entry.get("restarts"))

    ha_leader.add("", 1 if leader else 0)
    build_info.add(f'version="{escape(version)}"', 1)
    families = (computes, errors, compute_seconds, late, evictions, groups, state_bytes, received, rejected, dropped,
                commit_errors, lag, source_status, published, publish_errors, sink_status, latency, backlog,
                actor_restarts, epochs, dead_letters, redriven, worker_restarts, state, ha_leader, build_info)
    return "".join(metric.render() for metric in families).encode("utf-8")


def family(name: str) -> Family:
    """An empty :class:`Family` for ``name``, a key of :data:`FAMILIES`."""
    kind, documentation = FAMILIES[name]
    return Family(name, kind, documentation)


def _status(family: Family, labels: str, current: Any) -> None:
    """One sample per known status, 1 for ``current`` (an unknown status gets its own sample)."""
    if current is None:
        return
    for status in ENDPOINT_STATUSES:
        family.add(f'{labels},status="{status}"', 1 if status == current else 0)
    if current not in ENDPOINT_STATUSES:
        family.add(f'{labels},status="{escape(str(current))}"', 1)


def worker_label(worker: Any) -> str:
    """The ``worker`` label value: the worker id as text, or ``""`` when unplaced."""
    return "" if worker is None else str(worker)


def escape(value: str) -> str:
    """A label value escaped for the text format (backslash, double quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def number(value: Any) -> str:
    """A sample value as text: integers as they are, floats Go-style (``+Inf``, ``NaN``)."""
    if isinstance(value, int):
        return str(int(value))
    value = float(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


@lru_cache(maxsize=64)
def _bounds(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """Bucket upper bounds as ``le`` label values (a few distinct tuples, hence the cache)."""
    return tuple(floatToGoString(bound) for bound in bounds)


def cumulative_buckets(snapshot: dict[str, Any]) -> list[tuple[str, int]]:
    """Per-bucket ``counts`` (the last one the +Inf overflow) as cumulative ``(le, count)`` pairs."""
    bounds: Sequence[float] = snapshot.get("buckets") or ()
    counts: Sequence[int] = snapshot.get("counts") or ()
    result: list[tuple[str, int]] = []
    running = 0
    for i, le in enumerate(_bounds(tuple(bounds))):
        if i < len(counts):
            running += counts[i]
        result.append((le, running))
    result.append(("+Inf", running + sum(counts[len(bounds):])))
    return result


class Family:
    """One metric family: its ``# HELP``/``# TYPE`` header and its sample lines."""

    __slots__ = ("help", "kind", "lines", "name")

    def __init__(self, name: str, kind: str, documentation: str) -> None:
        self.name = PREFIX + name
        self.kind = kind
        self.help = documentation
        self.lines: list[str] = []

    def add(self, labels: str, value: Any) -> None:
        """One sample with the already-escaped ``labels``; a missing (None) value is skipped."""
        if value is not None:
            self.lines.append(f"{self.name}{{{labels}}} {number(value)}\n" if labels
                              else f"{self.name} {number(value)}\n")

    def add_histogram(self, labels: str, snapshot: dict[str, Any] | None) -> None:
        """The ``_bucket``/``_count``/``_sum`` samples of one ``Histogram.snapshot()``."""
        if not snapshot:
            return
        buckets = cumulative_buckets(snapshot)
        name = self.name
        self.lines.extend(f'{name}_bucket{{{labels},le="{le}"}} {count}\n' for le, count in buckets)
        self.lines.append(f"{name}_count{{{labels}}} {buckets[-1][1]}\n")
        self.lines.append(f"{name}_sum{{{labels}}} {number(snapshot.get('sum', 0.0))}\n")

    def render(self) -> str:
        """The family's text, header first (emitted even when there are no samples)."""
        header = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return header + "".join(self.lines)
