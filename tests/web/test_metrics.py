"""The Prometheus exposition built from DAG details and worker lists (SPEC §8)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from actors.stats import COMPUTE_BUCKETS, LATENCY_BUCKETS, Histogram
from web.metrics import DAG_STATES, cumulative_buckets, render_metrics

COUNTERS = {
    "dagserver_node_computes_total", "dagserver_node_errors_total", "dagserver_records_received_total",
    "dagserver_records_rejected_total", "dagserver_records_published_total", "dagserver_publish_errors_total",
    "dagserver_actor_restarts_total", "dagserver_worker_restarts_total", "dagserver_epochs_completed_total",
    "dagserver_dead_letters_total", "dagserver_records_dropped_total", "dagserver_commit_errors_total",
    "dagserver_records_late_total", "dagserver_state_evictions_total",
    "dagserver_redriven_total",
}
HISTOGRAMS = {"dagserver_node_compute_seconds", "dagserver_epoch_latency_seconds"}
GAUGES = {"dagserver_ingress_backlog", "dagserver_dag_state", "dagserver_source_lag", "dagserver_source_status",
          "dagserver_sink_status", "dagserver_ha_leader", "dagserver_build_info", "dagserver_state_groups",
          "dagserver_state_bytes"}
ALWAYS = {"dagserver_ha_leader", "dagserver_build_info"}  # one sample each, whatever the DAGs


def details(name: str, worker: int | None, state: str = "running") -> dict[str, Any]:
    """A details dict shaped like ``actors.details.dag_details`` plus ``worker``."""
    compute = Histogram(COMPUTE_BUCKETS)
    compute.observe(2e-6, 3)   # -> the 5e-6 bucket
    compute.observe(0.002)     # -> the 0.005 bucket
    compute.observe(50.0, 2)   # -> the +Inf overflow
    latency = Histogram(LATENCY_BUCKETS)
    latency.observe(0.003, 4)
    endpoint = {"backlog": 0, "last_activity": None, "status": "connected"}
    return {
        "name": name, "state": state, "reason": None, "description": "", "file": f"{name}.json",
        "window": {"start_time": None, "end_time": None, "duration_seconds": None},
        "epochs": {"completed": 7, "open": 1, "max_records": 100, "max_inflight": 4,
                   "latency_seconds": latency.snapshot()},
        "ingress_backlog": 5, "actor_restarts": 2, "dead_letters": 1,
        "nodes": {
            "sum": {"type": "add", "input": None, "output": None, "computes": 6, "errors": 1,
                    "last_errors": [], "last_compute": None, "compute_seconds": compute.snapshot()},
            "per_minute": {"type": "CalculationNode", "input": None, "output": None, "computes": 6, "errors": 0,
                           "last_errors": [], "last_compute": None, "compute_seconds": {}, "late": 4,
                           "evictions": 2, "state": {"groups": 120, "bytes": 5300}},
        },
        "subscribers": {"in": {"source": "mem://in", "records": 10, "rejected": 3, "dropped": 4, "commit_errors": 5,
                               "errors": 0, "redriven": 2,
                               **endpoint, "backlog": 12}},
        "publishers": {"out": {"destination": "mem://out", "records": 9, "rejected": 0, "errors": 2, **endpoint}},
        "worker": worker,
    }


WORKERS = [{"id": 0, "pid": 10, "alive": True, "restarts": 3, "dags": ["a"]},
           {"id": 1, "pid": 11, "alive": False, "restarts": 0, "dags": []}]


@pytest.fixture
def text() -> str:
    return render_metrics([details("a", 0), details("b", None, state="failed")], WORKERS).decode("utf-8")


@pytest.fixture
def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_output_parses_with_the_expected_types(text: str) -> None:
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert families == ({name.removesuffix("_total"): "counter" for name in COUNTERS}
                        | dict.fromkeys(HISTOGRAMS, "histogram") | dict.fromkeys(GAUGES, "gauge"))


def test_names_are_exact(text: str) -> None:
    typed = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    assert typed == COUNTERS | HISTOGRAMS | GAUGES
    sample_names = {line.split("{", 1)[0] for line in text.splitlines() if not line.startswith("#")}
    assert sample_names >= COUNTERS
    assert not any(name.endswith("_total_total") for name in sample_names)
    assert "dagserver_node_computes_total_created" not in sample_names


def test_counter_values_and_labels(samples: list[Sample]) -> None:
    assert value(samples, "dagserver_node_computes_total", dag="a", node="sum", worker="0") == 6
    assert value(samples, "dagserver_node_errors_total", dag="a", node="sum", worker="0") == 1
    assert value(samples, "dagserver_records_received_total", dag="a", subscriber="in", worker="0") == 10
    assert value(samples, "dagserver_records_rejected_total", dag="a", subscriber="in", worker="0") == 3
    assert value(samples, "dagserver_records_published_total", dag="a", publisher="out", worker="0") == 9
    assert value(samples, "dagserver_publish_errors_total", dag="a", publisher="out", worker="0") == 2
    assert value(samples, "dagserver_actor_restarts_total", dag="a", worker="0") == 2
    assert value(samples, "dagserver_epochs_completed_total", dag="a", worker="0") == 7
    assert value(samples, "dagserver_dead_letters_total", dag="a", worker="0") == 1
    assert value(samples, "dagserver_ingress_backlog", dag="a", worker="0") == 5


def test_state_figures_of_stateful_nodes_only(samples: list[Sample]) -> None:
    assert value(samples, "dagserver_records_late_total", dag="a", node="per_minute", worker="0") == 4
    assert value(samples, "dagserver_state_evictions_total", dag="a", node="per_minute", worker="0") == 2
    assert value(samples, "dagserver_state_groups", dag="a", node="per_minute", worker="0") == 120
    assert value(samples, "dagserver_state_bytes", dag="a", node="per_minute", worker="0") == 5300
    stateless = [s for s in samples if (s.labels.get("node") == "sum" and "state" in s.name) or ("late" in s.name
                 and s.labels.get("node") == "sum")]
    assert stateless == []


def test_unplaced_dag_has_an_empty_worker_label(samples: list[Sample]) -> None:
    assert value(samples, "dagserver_node_computes_total", dag="b", node="sum", worker="") == 6


def test_worker_restarts(samples: list[Sample]) -> None:
    assert value(samples, "dagserver_worker_restarts_total", worker="0") == 3
    assert value(samples, "dagserver_worker_restarts_total", worker="1") == 0


def test_histogram_buckets_are_cumulative(samples: list[Sample]) -> None:
    labels = {"dag": "a", "node": "sum", "worker": "0"}
    buckets = [s for s in samples if s.name == "dagserver_node_compute_seconds_bucket"
               and {k: v for k, v in s.labels.items() if k != "le"} == labels]
    by_le = {s.labels["le"]: s.value for s in buckets}
    assert len(by_le) == len(COMPUTE_BUCKETS) + 1
    assert by_le["1e-06"] == 0
    assert by_le["5e-06"] == 3
    assert by_le["0.001"] == 3
    assert by_le["0.005"] == 4
    assert by_le["1.0"] == 4
    assert by_le["+Inf"] == 6
    values = [s.value for s in buckets]
    assert values == sorted(values)
    assert value(samples, "dagserver_node_compute_seconds_count", **labels) == 6
    assert value(samples, "dagserver_node_compute_seconds_sum", **labels) == pytest.approx(3 * 2e-6 + 0.002 + 100.0)


def test_epoch_latency_histogram(samples: list[Sample]) -> None:
    labels = {"dag": "a", "worker": "0"}
    assert value(samples, "dagserver_epoch_latency_seconds_bucket", le="0.0025", **labels) == 0
    assert value(samples, "dagserver_epoch_latency_seconds_bucket", le="0.005", **labels) == 4
    assert value(samples, "dagserver_epoch_latency_seconds_bucket", le="+Inf", **labels) == 4
    assert value(samples, "dagserver_epoch_latency_seconds_count", **labels) == 4
    assert value(samples, "dagserver_epoch_latency_seconds_sum", **labels) == pytest.approx(0.012)


def test_cumulative_buckets_counts_the_overflow() -> None:
    snapshot = {"buckets": [1.0, 2.0], "counts": [1, 0, 4], "sum": 9.0, "count": 5}
    assert cumulative_buckets(snapshot) == [("1.0", 1), ("2.0", 1), ("+Inf", 5)]


def test_dag_state_is_one_hot(samples: list[Sample]) -> None:
    for dag, worker, current in (("a", "0", "running"), ("b", "", "failed")):
        states = {s.labels["state"]: s.value for s in samples
                  if s.name == "dagserver_dag_state" and s.labels["dag"] == dag}
        assert set(states) == set(DAG_STATES)
        assert states == {state: (1.0 if state == current else 0.0) for state in DAG_STATES}
        assert value(samples, "dagserver_dag_state", dag=dag, worker=worker, state=current) == 1


def test_label_values_are_escaped() -> None:
    dag = details('we"ird\\na\nme', 2)
    text = render_metrics([dag], []).decode("utf-8")
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert value(samples, "dagserver_dead_letters_total", dag='we"ird\\na\nme', worker="2") == 1


def test_sparse_details_and_empty_input() -> None:
    text = render_metrics([{"name": "idle", "state": "stopped", "worker": None}], []).decode("utf-8")
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert {s.name for s in samples} == {"dagserver_dag_state"} | ALWAYS
    assert value(samples, "dagserver_dag_state", dag="idle", worker="", state="stopped") == 1
    empty = render_metrics([], [], leader=False).decode("utf-8")
    assert {s.name: s.value for family in text_string_to_metric_families(empty) for s in family.samples} == \
        {"dagserver_ha_leader": 0, "dagserver_build_info": 1}


def test_source_lag_statuses_drops_leader_and_build(samples: list[Sample]) -> None:
    assert value(samples, "dagserver_source_lag", dag="a", subscriber="in", worker="0") == 12
    assert value(samples, "dagserver_records_dropped_total", dag="a", subscriber="in", worker="0") == 4
    assert value(samples, "dagserver_commit_errors_total", dag="a", subscriber="in", worker="0") == 5
    for status in ("connected", "reconnecting", "closed", "failed"):
        want = 1 if status == "connected" else 0
        assert value(samples, "dagserver_source_status", dag="a", subscriber="in", worker="0", status=status) == want
        assert value(samples, "dagserver_sink_status", dag="a", publisher="out", worker="0", status=status) == want
    assert value(samples, "dagserver_ha_leader") == 1
    assert value(samples, "dagserver_build_info", version="") == 1
