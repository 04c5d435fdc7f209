"""The dashboard's queries and the alert rules against a real Prometheus scraping a live server (SPEC §10).

One ``dagserver serve`` runs three DAGs: ``clock`` (metronome -> file, and on to an
in-memory queue), ``faulty`` (reads that queue; every compute raises, so it counts node
errors and dead letters, and its queue reports a source lag) and ``broken`` (its sink can
never open; with ``max_restarts = 2`` it is ``failed`` within a second). A Prometheus
scrapes it every second and evaluates ``deploy/prometheus/alerts.yml`` every second. Then:

* every query of every dashboard panel, with ``$dag``/``$worker`` set to All (``.*``) and
  to one real DAG and its worker, returns data;
* the variables' ``label_values`` list the DAGs and workers;
* every alert rule is evaluated without error, and each expression runs as a query;
* the DAG-failed alert fires for ``broken`` (and only for it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_deploy_files import ALERTS, dashboard, panel_queries
from tests.support.prometheus import PrometheusServer, require_prometheus
from tests.support.supervised import SupervisedServer, metronome_dag
from tests.support.waiting import wait_until

# what Grafana puts in place of its own variables; 10 s holds ten 1 s scrapes
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__interval": "2s", "$__range": "1m"}
NEVER_EVALUATED = "0001-01-01T00:00:00Z"
TIMEOUT = 30.0


def live_dags(tmp: Path) -> dict[str, dict[str, Any]]:
    """The three DAG documents described above, writing their files under ``tmp``."""
    clock = metronome_dag("clock", tmp / "clock.jsonl", interval=0.05)
    clock["publishers"].append({"name": "relay", "config": {"destination": "mem://queue/clock-ticks"}})
    clock["nodes"][1]["publishers"].append("relay")
    faulty = {
        "name": "faulty",
        "subscribers": [{"name": "ticks", "config": {"source": "mem://queue/clock-ticks"}}],
        "publishers": [{"name": "sink", "config": {"destination": f"file://{tmp / 'faulty.jsonl'}"}}],
        "calculators": [{"name": "explode", "type": "tests.support.userclasses.RaisingCalculator"}],
        "transformers": [{"name": "arm", "type": "AttributeNameChangeDataTransformer",
                          "config": {"name_mapping": {"tick": "boom"}}}],  # boom = tick >= 1: it raises
        "nodes": [{"name": "check", "type": "SubscriptionNode", "subscriber": "ticks", "calculator": "explode",
                   "input_transformers": ["arm"]},
                  {"name": "out", "type": "PublicationNode", "publishers": ["sink"]}],
        "edges": [{"from_node": "check", "to_node": "out"}],
    }
    broken = metronome_dag("broken", tmp / "broken.jsonl", interval=0.05)
    broken["publishers"][0]["config"]["destination"] = "custom://tests.support.useradapters.FailingOpenSink"
    return {"clock": clock, "faulty": faulty, "broken": broken}


def filled(expr: str, dag: str, worker: str) -> str:
    """``expr`` with the dashboard's and Grafana's variables replaced, as Grafana would send it."""
    for variable, value in {**GRAFANA_VARIABLES, "$dag": dag, "$worker": worker}.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SupervisedServer, PrometheusServer]]:
    """The server with its DAGs (``broken`` already failed) and a Prometheus holding a few scrapes of it."""
    require_prometheus()
    tmp = tmp_path_factory.mktemp("deploy-live")
    with SupervisedServer(tmp, live_dags(tmp), max_restarts=2) as server:
        server.wait_dags("failed", ["broken"], timeout=TIMEOUT)
        server.wait_dags("running", ["clock", "faulty"], timeout=TIMEOUT)
        with PrometheusServer(tmp / "prometheus", f"127.0.0.1:{server.port}", rule_files=[ALERTS]) as prom:
            def scraped_enough() -> bool:  # a rate over 10 s needs two samples; take a few more
                result = prom.query("count_over_time(dagserver_build_info[10s])")
                return bool(result) and float(result[0]["value"][1]) >= 4

            assert wait_until(scraped_enough, timeout=TIMEOUT, interval=0.2), (prom.log(), server.log()[-2000:])
            yield server, prom


def test_prometheus_scrapes_the_server(stack: tuple[SupervisedServer, PrometheusServer]) -> None:
    _server, prom = stack
    [up] = prom.query('up{job="dagserver"}')
    assert up["value"][1] == "1"
    states = {s["metric"]["dag"]: s["metric"]["state"] for s in prom.query("dagserver_dag_state == 1")}
    assert states == {"clock": "running", "faulty": "running", "broken": "failed"}


def test_variables_list_the_dags_and_workers(stack: tuple[SupervisedServer, PrometheusServer]) -> None:
    server, prom = stack
    variables = {variable["name"]: variable["definition"] for variable in dashboard()["templating"]["list"]
                 if variable["type"] == "query"}
    assert variables["dag"] == "label_values(dagserver_dag_state, dag)"
    assert set(prom.label_values("dag", "dagserver_dag_state")) == {"clock", "faulty", "broken"}
    workers = {str(server.dag(name)["worker"]) for name in ("clock", "faulty", "broken")}
    assert set(prom.label_values("worker", 'dagserver_dag_state{dag=~".*"}')) == workers


@pytest.mark.parametrize(("title", "expr"), panel_queries(),
                         ids=[f"{title}-{i}" for i, (title, _) in enumerate(panel_queries())])
def test_every_panel_query_returns_data(stack: tuple[SupervisedServer, PrometheusServer], title: str,
                                        expr: str) -> None:
    server, prom = stack
    worker = str(server.dag("faulty")["worker"])
    for dag_value, worker_value in ((".*", ".*"), ("faulty", worker)):
        query = filled(expr, dag_value, worker_value)
        assert wait_until(lambda q=query: prom.query(q), timeout=TIMEOUT, interval=0.25), \
            f"{title}: no data for {query}"


def test_every_alert_rule_evaluates_without_error(stack: tuple[SupervisedServer, PrometheusServer]) -> None:
    _server, prom = stack
    assert wait_until(lambda: all(rule["lastEvaluation"] != NEVER_EVALUATED for rule in prom.rules()),
                      timeout=TIMEOUT, interval=0.25)
    rules = prom.rules()
    assert len(rules) == 9
    for rule in rules:
        assert rule["type"] == "alerting", rule["name"]
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule["name"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["name"]
        prom.query(rule["query"])  # raises PrometheusError on a bad expression


def test_a_failed_dag_fires_its_alert(stack: tuple[SupervisedServer, PrometheusServer]) -> None:
    _server, prom = stack
    [rule] = [rule for rule in prom.rules() if rule["name"] == "DagserverDagFailed"]
    assert rule["duration"] == 0  # a failed DAG stays failed: no need to wait (see alerts.yml)
    assert [sample["metric"]["dag"] for sample in prom.query(rule["query"])] == ["broken"]

    def failed_alerts() -> list[dict[str, Any]]:
        return [alert for alert in prom.alerts() if alert["labels"]["alertname"] == "DagserverDagFailed"]

    assert wait_until(lambda: any(alert["state"] == "firing" for alert in failed_alerts()),
                      timeout=TIMEOUT, interval=0.25), prom.alerts()
    [alert] = failed_alerts()
    assert alert["labels"]["dag"] == "broken" and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"].startswith("DAG broken failed on 127.0.0.1:")
