"""Prometheus text exposition of every DAG's and worker's figures (SPEC §8).

:func:`render_metrics` turns plain data — the per-DAG ``details()`` snapshots (see
``actors/details.py``) plus each DAG's ``worker``, and the worker list — into the
exposition bytes served at ``/metrics`` (text format 0.0.4). Nothing is kept between
scrapes, so the counters are exactly as monotonic as the snapshots they come from.

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


def render_metrics(dags: list[dict[str, Any]], workers: list[dict[str, Any]], *, leader: bool = True,
                   version: str = "") -> bytes:
    """The exposition for ``dags`` and ``workers``, UTF-8 encoded.

    ``dags`` are ``dag_details`` dicts, each with an extra ``worker`` key (an int, or None
    when the DAG is not placed) and, for a replica of a DAG run as several, ``replica``
    (its index, added as a label); ``workers`` are ``{id, pid, alive, restarts, dags}``.
    Missing sections (e.g. a stopped DAG without node figures) are simply left out.
    ``leader`` is whether this server runs the DAGs (always, without high availability).
    """
    computes = Family("node_computes_total", "counter", "Node computations completed.")
    errors = Family("node_errors_total", "counter", "Node computations that raised an error.")
    compute_seconds = Family("node_compute_seconds", "histogram", "Time spent in one node computation.")
    received = Family("records_received_total", "counter", "Records taken in by a subscriber.")
    rejected = Family("records_rejected_total", "counter", "Records a subscriber rejected as invalid.")
    dropped = Family("records_dropped_total", "counter",
                     "Records lost by a source that is at-most-once by nature (a full pub/sub buffer).")
    lag = Family("source_lag", "gauge", "Records waiting at the source, where the source can tell.")
    source_status = Family("source_status", "gauge", "1 for the subscriber's current connection status.")
    sink_status = Family("sink_status", "gauge", "1 for the publisher's current connection status.")
    published = Family("records_published_total", "counter", "Records written by a publisher.")
    publish_errors = Family("publish_errors_total", "counter", "Failed publisher writes.")
    latency = Family("epoch_latency_seconds", "histogram", "Epoch latency, from ingress to all acks.")
    backlog = Family("ingress_backlog", "gauge", "Records read from the sources and not yet completed.")
    actor_restarts = Family("actor_restarts_total", "counter", "Restarts of the DAG's actors.")
    epochs = Family("epochs_completed_total", "counter", "Epochs fully acknowledged.")
    dead_letters = Family("dead_letters_total", "counter",
                          "Records rejected at ingress and failed computations, counted whether or not the DAG "
                          "has a dead_letter destination.")
    worker_restarts = Family("worker_restarts_total", "counter", "Restarts of a worker process.")
    state = Family("dag_state", "gauge", "1 for the DAG's current state, 0 for the others.")
    ha_leader = Family("ha_leader", "gauge", "1 when this server is the leader that runs the DAGs.")
    build_info = Family("build_info", "gauge", "Always 1; the labels tell the version.")

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
        for sub, figures in (dag.get("subscribers") or {}).items():
            labels = f'{dag_label},subscriber="{escape(str(sub))}",{worker}'
            received.add(labels, figures.get("records"))
            rejected.add(labels, figures.get("rejected"))
            dropped.add(labels, figures.get("dropped"))
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
    families = (computes, errors, compute_seconds, received, rejected, dropped, lag, source_status, published,
                publish_errors, sink_status, latency, backlog, actor_restarts, epochs, dead_letters, worker_restarts,
                state, ha_leader, build_info)
    return "".join(family.render() for family in families).encode("utf-8")


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
