"""Every SPEC §8 family, its help text, its labels, and the histogram bounds.

A help text must say what the family counts (and, for the one-hot gauges, which label
values there are), and the bounds must tell sub-millisecond epochs apart.
"""

from __future__ import annotations

import bisect
import itertools
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.stats import COMPUTE_BUCKETS, LATENCY_BUCKETS, Histogram
from tests.web.test_metrics import WORKERS, details
from web.metrics import DAG_STATES, ENDPOINT_STATUSES, FAMILIES, PREFIX, render_metrics

SPEC_FAMILIES = {  # SPEC §8, in its order, plus epochs_completed_total; redriven_total from §13
    "node_computes_total", "node_errors_total", "node_compute_seconds", "records_received_total",
    "records_rejected_total", "records_published_total", "records_dropped_total", "publish_errors_total",
    "dead_letters_total", "epoch_latency_seconds", "ingress_backlog", "source_lag", "source_status",
    "sink_status", "actor_restarts_total", "worker_restarts_total", "dag_state", "ha_leader", "build_info",
    "epochs_completed_total", "commit_errors_total", "records_late_total", "state_evictions_total", "state_groups",
    "state_bytes",
    "redriven_total",
}
# the words each help text must hold: what it counts, in the operator's terms
HELP_WORDS = {
    "source_lag": ("waiting at the source", "lag"),
    "source_status": ("subscriber", "status", *ENDPOINT_STATUSES),
    "sink_status": ("publisher", "status", *ENDPOINT_STATUSES),
    "records_dropped_total": ("lost", "at-most-once"),
    "commit_errors_total": ("commit", "failed", "retried"),
    "ha_leader": ("leader", "standby"),
    "build_info": ("version",),
    "dag_state": tuple(DAG_STATES),
    "node_compute_seconds": ("seconds", "compute"),
    "epoch_latency_seconds": ("seconds", "epoch", "acknowledge"),
    "dead_letters_total": ("dead_letter",),
    "redriven_total": ("dead letters", "injected again", "subscriber"),
    "worker_restarts_total": ("worker process",),
    "records_late_total": ("window", "watermark", "dead letter"),
    "state_evictions_total": ("max_keys",),
    "state_bytes": ("snapshot", "bytes"),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[str, str]]:
    """Rendered family name -> (type, help), parsed back from the exposition."""
    dags = [details("a", 0), {**details("a", 1), "replica": 1}, details("b", None, state="failed")]
    text = render_metrics(dags, WORKERS, version="1.2.3").decode("utf-8")
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.MULTILINE))
    kinds = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    return {name: (kinds[name], helps[name]) for name in kinds}


def test_every_spec_family_is_declared_and_rendered(rendered: dict[str, tuple[str, str]]) -> None:
    assert set(FAMILIES) == SPEC_FAMILIES
    assert set(rendered) == {PREFIX + name for name in SPEC_FAMILIES}
    for name, (kind, documentation) in FAMILIES.items():
        assert rendered[PREFIX + name] == (kind, documentation), name


def test_help_texts_say_what_they_count() -> None:
    texts = [documentation for _kind, documentation in FAMILIES.values()]
    assert len(set(texts)) == len(texts)  # no two families explained alike
    for name, (kind, documentation) in FAMILIES.items():
        assert len(documentation.split()) >= 6, (name, documentation)
        assert documentation[0].isupper() or documentation[0].isdigit(), name
        assert "\n" not in documentation and "\\" not in documentation, name
        if kind == "counter":
            assert name.endswith("_total"), name
    for name, words in HELP_WORDS.items():
        documentation = FAMILIES[name][1].lower()
        missing = [word for word in words if word.lower() not in documentation]
        assert not missing, (name, missing, documentation)


def test_help_texts_survive_a_parser() -> None:
    text = render_metrics([details("a", 0)], WORKERS).decode("utf-8")
    parsed = {family.name: family.documentation for family in text_string_to_metric_families(text)}
    for name, (_kind, documentation) in FAMILIES.items():
        assert parsed[PREFIX + name.removesuffix("_total")] == documentation


def test_replica_label_on_every_per_dag_family() -> None:
    text = render_metrics([{**details("a", 1), "replica": 2}], WORKERS).decode("utf-8")
    per_dag = [s for family in text_string_to_metric_families(text) for s in family.samples
               if "dag" in s.labels]
    assert {s.name for s in per_dag} >= {"dagserver_dag_state", "dagserver_node_computes_total",
                                         "dagserver_records_received_total", "dagserver_sink_status",
                                         "dagserver_epoch_latency_seconds_bucket", "dagserver_source_lag"}
    assert all(s.labels["replica"] == "2" and s.labels["worker"] == "1" for s in per_dag)
    plain = render_metrics([details("a", 1)], WORKERS).decode("utf-8")
    assert "replica=" not in plain


@pytest.mark.parametrize("bounds", [LATENCY_BUCKETS, COMPUTE_BUCKETS], ids=["epoch latency", "compute"])
def test_bounds_span_sub_millisecond_to_ten_seconds(bounds: tuple[float, ...]) -> None:
    assert list(bounds) == sorted(set(bounds))
    assert bounds[0] <= 50e-6
    assert bounds[-1] == 10.0
    assert sum(1 for bound in bounds if bound < 1e-3) >= 4  # fine-grained where small DAGs live
    for low, high in itertools.pairwise(bounds):
        assert high / low <= 5, (low, high)  # no blind spot wider than a factor of 5


def test_sub_millisecond_epochs_land_in_different_buckets() -> None:
    epochs = (60e-6, 200e-6, 400e-6, 800e-6, 2e-3, 4e-3)
    assert len({bisect.bisect_left(LATENCY_BUCKETS, seconds) for seconds in epochs}) == len(epochs)
    computes = (2e-6, 8e-6, 20e-6, 80e-6, 200e-6)
    assert len({bisect.bisect_left(COMPUTE_BUCKETS, seconds) for seconds in computes}) == len(computes)


def test_rendered_bounds_match_the_declared_ones() -> None:
    latency = Histogram(LATENCY_BUCKETS)
    latency.observe(300e-6)
    dag = {**details("a", 0), "epochs": {"completed": 1, "latency_seconds": latency.snapshot()}}
    text = render_metrics([dag], []).decode("utf-8")
    les = re.findall(r'^dagserver_epoch_latency_seconds_bucket\{[^}]*le="([^"]+)"\} (\d+)$', text, re.MULTILINE)
    assert [float(le) for le, _ in les] == [*LATENCY_BUCKETS, float("inf")]
    assert les[0] == ("5e-05", "0")
    assert dict(les)["0.0005"] == "1"  # 300 µs counted at the 500 µs bound, not lumped into 1 ms
    assert dict(les)["0.00025"] == "0"
