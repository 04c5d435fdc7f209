"""Every API endpoint against a real ``dagserver serve`` with real workers (SPEC §7, §8).

One server is shared by the module, and every test passes alone and in any order: the
lifecycle test works on its own DAG (``gamma``) and, like the test that kills a worker, puts
every DAG back to ``running`` when it ends (the ``restores_running`` fixture), even when it
fails. Worker restarts cannot be undone, so tests that kill a worker note it in
``Api.kills`` and the others expect exactly that many restarts (none unless a test caused
it); the kill test itself asserts against its own before and after. The DAG folder also holds
files that must be skipped: one that fails validation, one that is not JSON, one pinned to a
worker that does not exist and one reusing another's name.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.supervised import SupervisedServer, line_count, metronome_dag, process_gone
from tests.support.waiting import wait_until

METRIC_NAMES = {
    "node_computes_total": "counter", "node_errors_total": "counter", "node_compute_seconds": "histogram",
    "records_received_total": "counter", "records_rejected_total": "counter",
    "records_published_total": "counter", "publish_errors_total": "counter",
    "epoch_latency_seconds": "histogram", "ingress_backlog": "gauge", "actor_restarts_total": "counter",
    "worker_restarts_total": "counter", "dag_state": "gauge",
}
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{.*\})? (?P<value>\S+)$")
BROKEN_DAG = {"name": "broken", "nodes": [{"name": "n", "type": "CalculatoinNode"}], "edges": [],
              "subscribers": [{"name": "s", "config": {"source": "metronome", "pasword": "hunter2-SECRET"}}]}


class Api:
    """The shared server plus what the tests need to know about its files."""

    def __init__(self, server: SupervisedServer, root: Path, docs: dict[str, dict]) -> None:
        self.server = server
        self.root = root
        self.docs = docs
        self.kills = {0: 0, 1: 0}  # worker id -> how many times a test killed it

    def restarts(self, worker: int) -> int:
        """The restarts a worker must show: one per kill by a test, and none of its own."""
        return self.kills[worker]

    def out(self, name: str) -> Path:
        return self.root / f"{name}.jsonl"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    docs = {
        "alpha": metronome_dag("alpha", root / "alpha.jsonl", worker=0, description="the first"),
        "beta": metronome_dag("beta", root / "beta.jsonl", worker=1),
        "gamma": metronome_dag("gamma", root / "gamma.jsonl", worker=0),
        "far": metronome_dag("far", root / "far.jsonl", worker=7),
        "alpha_twin": metronome_dag("alpha", root / "twin.jsonl"),
    }
    raw = {"broken.json": json.dumps(BROKEN_DAG), "garbled.json": '{"name": "garbled", '}
    with SupervisedServer(root, docs, shutdown_timeout=5, raw_dag_files=raw) as server:
        server.wait_dags("running")
        for name in ("alpha", "beta", "gamma"):
            server.wait_lines(root / f"{name}.jsonl", 2)
        yield Api(server, root, docs)


def scrape(server: SupervisedServer) -> dict[str, float]:
    """Every sample of the exposition: ``name{labels}`` -> value."""
    samples = {}
    for line in server.metrics().splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            samples[match["name"] + (match["labels"] or "")] = float(match["value"])
    return samples


def restarts_sample(worker: int) -> str:
    return f'dagserver_worker_restarts_total{{worker="{worker}"}}'


# -- read-only ---------------------------------------------------------------------------------------
def test_list_dags_shows_every_valid_dag_running(api: Api) -> None:
    status, dags = api.server.get("/api/dags")
    assert status == 200
    assert [d["name"] for d in dags] == ["alpha", "beta", "gamma"]
    for dag in dags:
        assert set(dag) >= {"name", "state", "reason", "worker", "file", "description"}
        assert dag["state"] == "running"
        assert dag["worker"] == api.docs[dag["name"]]["worker"]
        assert dag["file"].endswith(f"{dag['name']}.json")
    assert dags[0]["description"] == "the first"


def test_dag_details_have_config_state_and_nodes(api: Api) -> None:
    def computed() -> bool:
        nodes = api.server.dag("alpha")["nodes"]
        return all(nodes[n]["computes"] > 0 for n in ("tick", "out"))

    assert wait_until(computed, timeout=10)
    details = api.server.dag("alpha")
    assert details["config"] == api.docs["alpha"]
    assert (details["name"], details["state"], details["worker"]) == ("alpha", "running", 0)
    assert set(details["nodes"]) == {"tick", "out"}
    tick = details["nodes"]["tick"]
    assert tick["type"] == "SubscriptionNode"
    assert tick["errors"] == 0 and tick["last_errors"] == []
    assert tick["output"]["message"] == "alpha"
    assert details["subscribers"]["clock"]["source"] == "metronome"
    assert details["subscribers"]["clock"]["records"] > 0
    assert details["publishers"]["sink"]["records"] > 0


def test_unknown_dags_are_404(api: Api) -> None:
    for method, path in (("GET", "/api/dags/nope"), ("POST", "/api/dags/nope/stop"),
                         ("POST", "/api/dags/broken/start"), ("GET", "/api/dags/far")):
        status, body = api.server.request(method, path)
        assert status == 404, (method, path, body)
        assert "error" in body


def test_an_unknown_action_is_404_and_names_the_valid_ones(api: Api) -> None:
    status, body = api.server.post("/api/dags/alpha/explode")
    assert status == 404
    assert "explode" in body["error"]
    assert body["actions"] == ["start", "stop", "suspend", "resume"]
    assert api.server.dag("alpha")["state"] == "running"


def test_an_action_in_the_wrong_state_is_409(api: Api) -> None:
    for action in ("resume", "start"):
        status, body = api.server.post(f"/api/dags/alpha/{action}")
        assert status == 409, (action, body)
        assert "running" in body["error"]
    assert api.server.dag("alpha")["state"] == "running"


def test_a_control_action_needs_post(api: Api) -> None:
    status, body = api.server.get("/api/dags/alpha/stop")
    assert status == 405
    assert "error" in body


def test_workers_list_their_process_and_dags(api: Api) -> None:
    workers = api.server.workers()
    assert [w["id"] for w in workers] == [0, 1]
    for worker in workers:
        assert set(worker) == {"id", "pid", "alive", "restarts", "dags"}
        assert isinstance(worker["pid"], int) and not process_gone(worker["pid"])
        assert worker["pid"] != api.server.pid
        assert worker["alive"] is True
        assert worker["restarts"] == api.restarts(worker["id"])
    assert workers[0]["dags"] == ["alpha", "gamma"]
    assert workers[1]["dags"] == ["beta"]


def test_healthz(api: Api) -> None:
    status, health = api.server.get("/healthz")
    assert status == 200
    assert health["status"] == "ok"
    assert (health["workers"], health["workers_down"], health["dags"]) == (2, [], 3)


def test_healthz_carries_counts_and_roles_only(api: Api) -> None:
    status, health = api.server.request("GET", "/healthz", auth=None)
    assert status == 200
    lines = api.server.get_ok("/api/skipped")["skipped"]
    assert health["skipped"] == len(lines) >= 4  # how many start-up problems, not what they are
    text = json.dumps(health)
    for leak in ("hunter2-SECRET", "pasword", "broken.json", str(api.root), "CalculatoinNode"):
        assert leak not in text, (leak, health)
    assert set(health) <= {"status", "workers", "workers_down", "dags", "skipped", "role", "ha"}


def test_the_skipped_files_lines_need_a_login(api: Api) -> None:
    assert api.server.request("GET", "/api/skipped", auth=None)[0] == 401
    status, body = api.server.request("GET", "/api/skipped", auth="viewer")
    assert status == 200 and any("broken.json" in line for line in body["skipped"]), body


def test_dag_files_that_cannot_run_are_reported_and_skipped(api: Api) -> None:
    skipped = api.server.get_ok("/api/skipped")["skipped"]
    text = "\n".join(skipped)
    assert "broken.json" in text and "CalculatoinNode" in text  # failed validation, with where and what
    assert "garbled.json" in text and "invalid JSON" in text
    assert "'far'" in text and "worker 7" in text
    assert "alpha_twin.json" in text and "'alpha'" in text
    log = api.server.log()
    for problem in ("broken.json", "garbled.json", "worker 7", "alpha_twin.json"):
        assert re.search(rf"skipped: .*{re.escape(problem)}", log), problem
    assert api.server.states() == {"alpha": "running", "beta": "running", "gamma": "running"}


def test_metrics_expose_every_documented_family(api: Api) -> None:
    text = api.server.metrics()
    for name, kind in METRIC_NAMES.items():
        assert f"# TYPE dagserver_{name} {kind}\n" in text, name
    samples = scrape(api.server)
    assert samples['dagserver_node_computes_total{dag="alpha",node="tick",worker="0"}'] > 0
    assert samples['dagserver_records_received_total{dag="alpha",subscriber="clock",worker="0"}'] > 0
    assert samples['dagserver_records_published_total{dag="alpha",publisher="sink",worker="0"}'] > 0
    assert samples['dagserver_dag_state{dag="beta",worker="1",state="running"}'] == 1
    assert samples['dagserver_dag_state{dag="beta",worker="1",state="failed"}'] == 0
    assert samples[restarts_sample(1)] == api.restarts(1)
    assert 'dagserver_node_compute_seconds_count{dag="alpha",node="tick",worker="0"}' in samples
    assert 'dagserver_epoch_latency_seconds_bucket{dag="alpha",worker="0",le="+Inf"}' in samples
    assert 'dagserver_ingress_backlog{dag="alpha",worker="0"}' in samples
    assert not any('dag="far"' in key or 'dag="broken"' in key for key in samples)


# -- state changes -----------------------------------------------------------------------------------
RUNNING_AGAIN = {"suspended": "resume", "stopped": "start", "failed": "start"}


@pytest.fixture
def restores_running(api: Api) -> Iterator[None]:
    """After the test, pass or fail: every DAG running and both workers up, as the other tests expect."""
    yield
    server = api.server
    assert wait_until(lambda: all(w["alive"] for w in server.workers()), timeout=20, interval=0.05), \
        (server.workers(), server.log()[-3000:])
    for name, state in server.states().items():
        if state in RUNNING_AGAIN:
            status, body = server.post(f"/api/dags/{name}/{RUNNING_AGAIN[state]}")
            assert status == 200, (name, state, body)
    server.wait_dags("running", timeout=20)


def control(api: Api, name: str, action: str, expect: str) -> None:
    status, body = api.server.post(f"/api/dags/{name}/{action}")
    assert status == 200, (action, body)
    assert (body["name"], body["state"]) == (name, expect)
    assert api.server.dag(name)["state"] == expect


def refused(api: Api, name: str, action: str) -> None:
    status, body = api.server.post(f"/api/dags/{name}/{action}")
    assert status == 409, (action, body)


@pytest.mark.usefixtures("restores_running")
def test_suspend_resume_stop_start(api: Api) -> None:
    out = api.out("gamma")
    control(api, "gamma", "suspend", "suspended")
    refused(api, "gamma", "suspend")
    refused(api, "gamma", "start")
    control(api, "gamma", "resume", "running")
    api.server.wait_lines(out, line_count(out) + 2)

    control(api, "gamma", "stop", "stopped")
    assert out.read_bytes().endswith(b"\n")  # stopping drained and flushed
    for action in ("stop", "suspend", "resume"):
        refused(api, "gamma", action)
    control(api, "gamma", "start", "running")
    api.server.wait_lines(out, line_count(out) + 2)

    control(api, "gamma", "suspend", "suspended")
    control(api, "gamma", "stop", "stopped")  # straight from suspended
    control(api, "gamma", "start", "running")
    assert api.server.states() == {"alpha": "running", "beta": "running", "gamma": "running"}


@pytest.mark.usefixtures("restores_running")
def test_counters_never_go_down_across_a_worker_restart(api: Api) -> None:
    server = api.server
    assert wait_until(lambda: server.dag("beta")["nodes"]["tick"]["computes"] >= 3, timeout=10)
    before = scrape(server)
    victim = server.worker(1)
    bystander = server.worker(0)
    os.kill(victim["pid"], signal.SIGKILL)
    api.kills[1] += 1
    assert wait_until(lambda: server.worker(1)["pid"] != victim["pid"] and server.worker(1)["alive"],
                      timeout=10, interval=0.05)
    server.wait_dags("running", ["beta"])
    server.wait_lines(api.out("beta"), line_count(api.out("beta")) + 2)
    after = scrape(server)

    computes = [key for key in before if key.startswith("dagserver_node_computes_total{")]
    assert any('dag="beta"' in key for key in computes)
    monotonic = [key for key in before if key.endswith("}") and re.match(r"dagserver_\w+_(total|count)\{", key)]
    went_down = {key: (before[key], after.get(key)) for key in monotonic if after.get(key, -1.0) < before[key]}
    assert not went_down
    assert after[restarts_sample(1)] == before[restarts_sample(1)] + 1
    assert after[restarts_sample(0)] == before[restarts_sample(0)]
    assert server.worker(1)["restarts"] == victim["restarts"] + 1
    assert (server.worker(0)["pid"], server.worker(0)["restarts"]) == (bystander["pid"], bystander["restarts"])
    assert server.get_ok("/healthz")["status"] == "ok"
