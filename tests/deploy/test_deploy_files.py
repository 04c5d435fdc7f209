"""The files of ``deploy/`` checked on their own (SPEC §10): no server needed, promtool for the rules.

* the alert rules and the scrape config pass ``promtool check``, and the rules' unit tests
  (``tests/deploy/alerts_test.yml``: when each alert stays quiet, when it fires, what it says)
  pass ``promtool test rules``;
* the Grafana dashboard is well formed: one templated datasource, ``dag`` and ``worker``
  variables from ``label_values``, panels that do not overlap, every query filtered by the
  variables, and every ``dagserver_`` name one that ``/metrics`` renders;
* the systemd unit has what running it for real needs, and ``systemd-analyze verify`` accepts it.

The queries and rules are evaluated against a live server in ``test_prometheus_live.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import require_promtool
from tests.support.supervised import DAGSERVER, ROOT
from web.metrics import FAMILIES, PREFIX

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dagserver.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
UNIT = DEPLOY / "systemd" / "dagserver.service"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# metrics without a dag label (no $dag filter possible)
SERVER_WIDE = {"dagserver_worker_restarts_total", "dagserver_ha_leader", "dagserver_build_info"}
SELECTOR = re.compile(r"\b(dagserver_\w+)(\{[^}]*\})?")


def rendered_names() -> set[str]:
    """Every sample name ``/metrics`` can show: counters and gauges as is, histograms' three series."""
    names = set()
    for name, (kind, _help) in FAMILIES.items():
        full = PREFIX + name
        names |= {f"{full}_bucket", f"{full}_sum", f"{full}_count"} if kind == "histogram" else {full}
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included, rows left out."""
    found = []
    for panel in board["panels"]:
        found += panel.get("panels", []) if panel["type"] == "row" else [panel]
    return found


def panel_queries() -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every query of the dashboard."""
    return [(panel["title"], target["expr"]) for panel in panels(dashboard()) for target in panel["targets"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(require_promtool()), *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


# -- Prometheus -------------------------------------------------------------------------------------
def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_scrape_config_passes_promtool_check() -> None:
    result = promtool("check", "config", str(SCRAPE_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # alerts.yml, found next to it
    assert "job_name: dagserver" in SCRAPE_CONFIG.read_text()  # DagserverDown expects this job


def test_alert_rules_fire_when_they_should() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_summary_a_description_and_a_severity() -> None:
    text = ALERTS.read_text()
    alerts = re.split(r"^\s+- alert: ", text, flags=re.MULTILINE)[1:]
    assert len(alerts) == 9
    for alert in alerts:
        name = alert.split("\n", 1)[0]
        for key in ("expr:", "severity:", "summary:", "description:"):
            assert key in alert, (name, key)
    names = [alert.split("\n", 1)[0] for alert in alerts]
    spec = ("DagserverDagFailed", "DagserverWorkerRestarting", "DagserverSinkReconnecting", "DagserverBacklogGrowing",
            "DagserverEpochLatencyHigh")  # SPEC §10's five; the others are extras
    assert set(spec) <= set(names)
    assert re.search(r"alert: DagserverSinkReconnecting\n(?:.*\n)*?\s+for: 1m\n", text)


def test_alerts_use_only_rendered_names() -> None:
    used = {name for name, _labels in SELECTOR.findall(ALERTS.read_text())}
    assert used <= rendered_names(), used - rendered_names()


# -- Grafana ----------------------------------------------------------------------------------------
def test_dashboard_is_a_grafana_dashboard_with_its_variables() -> None:
    board = dashboard()
    assert board["uid"] == "dagserver" and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert set(variables) == {"datasource", "dag", "worker"}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for name in ("dag", "worker"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE
        assert re.fullmatch(rf"label_values\(dagserver_dag_state(\{{[^}}]*\}})?, {name}\)", variable["definition"])
        assert variable["query"]["query"] == variable["definition"]
        assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"


def test_dashboard_panels_are_laid_out_and_use_the_datasource_variable() -> None:
    board = dashboard()
    every = board["panels"] + [inner for row in board["panels"] for inner in row.get("panels", [])]
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in every:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in panels(board):
        assert panel["title"] and panel.get("description"), panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"]), panel["title"]


def test_dashboard_queries_use_rendered_names_and_the_variables() -> None:
    for title, expr in panel_queries():
        for name, labels in SELECTOR.findall(expr):
            assert name in rendered_names(), (title, name)
            if name in SERVER_WIDE:
                continue
            assert 'dag=~"$dag"' in labels and 'worker=~"$worker"' in labels, (title, expr)
        assert expr.count("(") == expr.count(")"), (title, expr)


def test_dashboard_covers_what_the_spec_asks() -> None:
    titles = {title.lower() for title, _ in panel_queries()}
    exprs = "\n".join(expr for _, expr in panel_queries())
    for needed in ("records_received_total", "records_published_total",  # throughput
                   "node_errors_total", "publish_errors_total", "dead_letters_total", "records_rejected_total",
                   "records_dropped_total", "commit_errors_total",  # errors
                   "epoch_latency_seconds_bucket", "ingress_backlog", "source_lag",  # latency, backlog
                   "source_status", "sink_status", "actor_restarts_total", "worker_restarts_total",
                   "dag_state", "node_computes_total", "ha_leader", "build_info"):
        assert PREFIX + needed in exprs, needed
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    assert "sum by (worker)" in exprs  # per-worker load
    assert {"records in and out", "errors", "epoch latency p50 / p99", "source lag", "dag states",
            "computes per worker", "worker restarts", "reconnecting"} <= titles


# -- systemd ----------------------------------------------------------------------------------------
def unit_settings() -> dict[str, dict[str, str]]:
    """``{section: {key: value}}`` of the unit (the last value of a repeated key)."""
    settings: dict[str, dict[str, str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            settings[section] = {}
        else:
            key, _, value = line.partition("=")
            settings[section][key.strip()] = value.strip()
    return settings


def test_systemd_unit_runs_serve_as_a_dedicated_user_hardened() -> None:
    unit = unit_settings()
    service = unit["Service"]
    assert service["ExecStart"].endswith("/dagserver serve -c /etc/dagserver/supervisor.toml")
    assert service["User"] == "dagserver" and service["Group"] == "dagserver"
    assert service["WorkingDirectory"] == "/var/lib/dagserver" and service["StateDirectory"] == "dagserver"
    assert service["Restart"] == "on-failure"
    assert service["KillMode"] == "mixed"  # SIGTERM to the supervisor alone: it stops its workers cleanly
    assert int(service["TimeoutStopSec"].rstrip("s")) > 15  # above the default shutdown_timeout
    for key, value in {"NoNewPrivileges": "true", "ProtectSystem": "strict", "ProtectHome": "true",
                       "PrivateTmp": "true", "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (a lint only: the unit's keys are checked above)")
    unit = tmp_path / "dagserver.service"  # the real binary here, so verify can check ExecStart
    unit.write_text(UNIT.read_text().replace("/opt/dagserver/bin/dagserver", str(DAGSERVER)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "dagserver.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
