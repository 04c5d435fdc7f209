"""The JSON API, /healthz and /metrics over an in-memory service (SPEC §7)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from web.app import create_app
from web.metrics import CONTENT_TYPE
from web.service import ACTIONS, UnknownDag, WrongState

# Which states each action may be applied in, and the state it leads to.
TRANSITIONS = {
    "start": ({"stopped", "failed"}, "running"),
    "stop": ({"running", "suspended", "restarting"}, "stopped"),
    "suspend": ({"running"}, "suspended"),
    "resume": ({"suspended"}, "running"),
}


class FakeService:
    """A small in-memory :class:`~web.service.SupervisorService`."""

    def __init__(self) -> None:
        self.dags: dict[str, dict[str, Any]] = {
            "alpha": {"name": "alpha", "state": "running", "reason": None, "worker": 0,
                      "file": "dags/alpha.json", "description": "first"},
            "beta": {"name": "beta", "state": "stopped", "reason": "stopped by user", "worker": None,
                     "file": "dags/beta.json", "description": "second"},
        }
        self.status = "ok"
        self.fail_with: Exception | None = None

    def _dag(self, name: str) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        if name not in self.dags:
            raise UnknownDag(f"no DAG named {name!r}")
        return self.dags[name]

    def list_dags(self) -> list[dict[str, Any]]:
        return [dict(dag) for dag in self.dags.values()]

    def dag_details(self, name: str) -> dict[str, Any]:
        dag = self._dag(name)
        return {**dag, "config": {"name": name}, "nodes": {"n": {"computes": 3}}}

    def control(self, name: str, action: str) -> dict[str, Any]:
        dag = self._dag(name)
        allowed, target = TRANSITIONS[action]
        if dag["state"] not in allowed:
            raise WrongState(f"cannot {action} {name!r} while {dag['state']}")
        dag["state"] = target
        return dict(dag)

    def workers(self) -> list[dict[str, Any]]:
        return [{"id": 0, "pid": 1234, "alive": True, "restarts": 1, "dags": ["alpha"]}]

    def health(self) -> dict[str, Any]:
        return {"status": self.status, "workers": 1}

    def metrics_text(self) -> bytes:
        return b"# HELP dagserver_up Up.\n# TYPE dagserver_up gauge\ndagserver_up 1\n"


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def app(fake: FakeService) -> Flask:
    return create_app(fake)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_service_is_stored_on_the_app(app: Flask, fake: FakeService) -> None:
    assert app.extensions["dagserver"] is fake


def test_list_dags(client: FlaskClient) -> None:
    response = client.get("/api/dags")
    assert response.status_code == 200
    assert response.is_json
    assert [dag["name"] for dag in response.get_json()] == ["alpha", "beta"]
    assert response.get_json()[1]["worker"] is None


def test_dag_details(client: FlaskClient) -> None:
    response = client.get("/api/dags/alpha")
    assert response.status_code == 200
    body = response.get_json()
    assert body["config"] == {"name": "alpha"}
    assert body["state"] == "running"
    assert body["nodes"]["n"]["computes"] == 3


def test_unknown_dag_is_404_json(client: FlaskClient) -> None:
    response = client.get("/api/dags/nope")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no DAG named 'nope'"}


@pytest.mark.parametrize(("name", "action", "state"), [
    ("alpha", "suspend", "suspended"),
    ("alpha", "stop", "stopped"),
    ("beta", "start", "running"),
])
def test_control_applies_the_action(client: FlaskClient, name: str, action: str, state: str) -> None:
    response = client.post(f"/api/dags/{name}/{action}")
    assert response.status_code == 200
    assert response.get_json()["state"] == state


def test_suspend_then_resume(client: FlaskClient) -> None:
    assert client.post("/api/dags/alpha/suspend").get_json()["state"] == "suspended"
    assert client.post("/api/dags/alpha/resume").get_json()["state"] == "running"


def test_wrong_state_is_409(client: FlaskClient, fake: FakeService) -> None:
    response = client.post("/api/dags/beta/resume")
    assert response.status_code == 409
    assert response.get_json() == {"error": "cannot resume 'beta' while stopped"}
    assert fake.dags["beta"]["state"] == "stopped"


def test_control_of_unknown_dag_is_404(client: FlaskClient) -> None:
    response = client.post("/api/dags/nope/start")
    assert response.status_code == 404
    assert "nope" in response.get_json()["error"]


def test_unknown_action_is_404_listing_the_valid_ones(client: FlaskClient, fake: FakeService) -> None:
    response = client.post("/api/dags/alpha/explode")
    assert response.status_code == 404
    body = response.get_json()
    assert body["actions"] == list(ACTIONS)
    assert "explode" in body["error"]
    for action in ACTIONS:
        assert action in body["error"]
    assert fake.dags["alpha"]["state"] == "running"


def test_wrong_method_is_405_json(client: FlaskClient) -> None:
    response = client.get("/api/dags/alpha/start")
    assert response.status_code == 405
    assert response.is_json
    assert "error" in response.get_json()
    assert client.delete("/api/dags").status_code == 405


def test_unknown_api_route_is_404_json(client: FlaskClient) -> None:
    response = client.get("/api/nothing/here")
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["error"]


def test_unknown_route_outside_api_is_plain_404(client: FlaskClient) -> None:
    response = client.get("/nothing")
    assert response.status_code == 404
    assert not response.is_json


def test_unexpected_error_is_500_json_and_logged(client: FlaskClient, fake: FakeService,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_with = RuntimeError("boom")
    with caplog.at_level(logging.ERROR, logger="web.app"):
        response = client.get("/api/dags/alpha")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error: RuntimeError: boom"}
    assert any(record.exc_info for record in caplog.records)


def test_workers(client: FlaskClient) -> None:
    response = client.get("/api/workers")
    assert response.status_code == 200
    assert response.get_json() == [{"id": 0, "pid": 1234, "alive": True, "restarts": 1, "dags": ["alpha"]}]


def test_healthz_ok_is_200(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "workers": 1}


def test_healthz_degraded_is_503(client: FlaskClient, fake: FakeService) -> None:
    fake.status = "degraded"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "degraded"


def test_metrics_is_prometheus_text(client: FlaskClient, fake: FakeService) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.data == fake.metrics_text()
