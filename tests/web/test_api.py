"""The JSON API, /healthz and /metrics over an in-memory service (SPEC §7)."""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
from typing import Any

import msgpack
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from web.app import create_app
from web.jsonsafe import dumps_iteratively, to_jsonable
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
        # Extra fields of node ``n`` in the details (e.g. its ``input`` / ``output`` records).
        self.node_fields: dict[str, Any] = {}
        # The details' ``last_errors``: ``[{"node", "error", "input"}]``.
        self.last_errors: list[dict[str, Any]] = []

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
        return {**dag, "config": {"name": name}, "nodes": {"n": {"computes": 3, **self.node_fields}},
                "last_errors": list(self.last_errors)}

    def node_details(self, name: str, node: str) -> dict[str, Any]:
        self._dag(name)
        if node != "n":
            raise UnknownDag(f"no node {node!r}")
        return {"dag": name, "node": node, "input": {"big": "x" * 10_000}, "output": {"v": b"\x01"}}

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

    def skipped(self) -> dict[str, Any]:
        return {"skipped": []}

    def metrics_text(self) -> bytes:
        return b"# HELP dagserver_up Up.\n# TYPE dagserver_up gauge\ndagserver_up 1\n"

    def dead_letters(self, name: str, limit: int) -> dict[str, Any]:
        self._dag(name)
        return {"dag": name, "dead_letter": None, "letters": []}

    def redrive(self, name: str, ids: list[str] | None) -> dict[str, Any]:
        self._dag(name)
        return {"dag": name, "redriven": 0, "by_subscriber": {}, "skipped": [], "unknown": list(ids or [])}

    def series(self, name: str | None) -> dict[str, Any]:
        if name is not None:
            self._dag(name)
        return {"interval": 1, "window_seconds": 900, "fields": [], "points": []}


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


def test_node_details_give_whole_values(client: FlaskClient) -> None:
    response = client.get("/api/dags/alpha/nodes/n")
    assert response.status_code == 200
    assert response.get_json()["input"] == {"big": "x" * 10_000}
    assert response.get_json()["output"] == {"v": "AQ=="}
    for path in ("/api/dags/alpha/nodes/nope", "/api/dags/nope/nodes/n"):
        assert client.get(path).status_code == 404


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
    body = response.get_json()
    assert body == {"error": "internal error", "ref": body["ref"]} and "boom" not in response.get_data(as_text=True)
    assert any(record.exc_info and body["ref"] in record.getMessage() for record in caplog.records)


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


# --- every response is valid JSON, whatever the records hold (SPEC §3 values, §7) ---------------

def reject_constant(token: str) -> Any:
    """``parse_constant`` for :func:`json.loads`: ``NaN`` / ``Infinity`` are not JSON."""
    raise ValueError(f"not JSON: {token}")


def strict_json(text: str) -> Any:
    """``text`` parsed as strict JSON (no ``NaN`` / ``Infinity`` / ``-Infinity`` tokens)."""
    return json.loads(text, parse_constant=reject_constant)


def expected_json(value: Any) -> Any:
    """What the API should send for a record value: bytes as base64, NaN/inf as null."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [expected_json(item) for item in value]
    if isinstance(value, dict):
        return {key: expected_json(item) for key, item in value.items()}
    return value


def same_json(actual: Any, expected: Any) -> bool:
    """Equal as JSON, types included (``1``, ``1.0`` and ``true`` differ; key order matters)."""
    return json.dumps(actual, allow_nan=False) == json.dumps(expected, allow_nan=False)


def hold(fake: FakeService, record: Any) -> None:
    """Put ``record`` wherever the API shows records: node input/output, last errors, summary."""
    fake.node_fields = {"input": record, "output": {"value": record}}
    fake.last_errors = [{"node": "n", "error": "ValueError: bad", "input": record}]
    fake.dags["alpha"]["last_record"] = record


def fetch_record_views(client: FlaskClient) -> tuple[str, str]:
    """The bodies of ``GET /api/dags/alpha`` and ``GET /api/dags``, after checking both are 200 JSON."""
    details = client.get("/api/dags/alpha")
    summary = client.get("/api/dags")
    for response in (details, summary):
        assert response.status_code == 200
        assert response.is_json
    return details.get_data(as_text=True), summary.get_data(as_text=True)


def check_record_views(details: str, summary: str, expected: Any) -> None:
    """Both bodies parse as strict JSON and show ``expected`` wherever :func:`hold` put the record."""
    body = strict_json(details)
    node = body["nodes"]["n"]
    assert node["computes"] == 3
    assert same_json(node["input"], expected)
    assert same_json(node["output"], {"value": expected})
    assert same_json(body["last_errors"], [{"node": "n", "error": "ValueError: bad", "input": expected}])
    assert same_json(body["last_record"], expected)
    dags = strict_json(summary)
    assert [dag["name"] for dag in dags] == ["alpha", "beta"]
    assert same_json(dags[0]["last_record"], expected)


def check_record_shown(client: FlaskClient, expected: Any) -> None:
    """Both ``GET /api/dags`` and ``GET /api/dags/alpha`` answer 200, strict JSON, ``expected``."""
    check_record_views(*fetch_record_views(client), expected)


def test_bytes_and_non_finite_floats_are_valid_json(client: FlaskClient, fake: FakeService) -> None:
    record = {"raw": b"\x00\xff", "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"),
              "nested": [b"", 1.5, {"deep": float("nan")}]}
    fake.node_fields = {"input": {"raw": b"\x00\xff"}, "output": {"nan": float("nan"), "inf": float("inf")}}
    response = client.get("/api/dags/alpha")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    for token in ("NaN", "Infinity"):
        assert token not in text
    node = strict_json(text)["nodes"]["n"]
    assert node["input"] == {"raw": "AP8="}
    assert node["output"] == {"nan": None, "inf": None}
    hold(fake, record)
    check_record_shown(client, {"raw": "AP8=", "nan": None, "inf": None, "ninf": None,
                                "nested": ["", 1.5, {"deep": None}]})


def test_odd_values_become_json_not_500(client: FlaskClient, fake: FakeService) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    fake.node_fields = {
        "input": {1: "int key", 2.5: "float key", False: "bool key", None: "none key", b"\x00": "bytes key"},
        "output": {"tuple": (1, b"\xff", (float("nan"),)), "bytearray": bytearray(b"ab"), "object": Opaque(),
                   "set": {3}, "inf key": {float("inf"): 1, float("-inf"): 2}},
    }
    response = client.get("/api/dags/alpha")
    assert response.status_code == 200
    node = strict_json(response.get_data(as_text=True))["nodes"]["n"]
    assert node["input"] == {"1": "int key", "2.5": "float key", "false": "bool key", "null": "none key",
                             "AA==": "bytes key"}
    assert node["output"] == {"tuple": [1, "/w==", [None]], "bytearray": "YWI=", "object": "<opaque>",
                              "set": "{3}", "inf key": {"Infinity": 1, "-Infinity": 2}}


def test_records_nested_as_deep_as_msgpack_allows(client: FlaskClient, fake: FakeService) -> None:
    # msgpack packs and unpacks up to 1023 nested containers; json.dumps recurses once per
    # level and hits Python's recursion limit (1000) well before that.
    record: Any = [b"\x01", float("nan")]
    expected: Any = ["AQ==", None]
    for _ in range(511):
        record, expected = {"k": [record]}, {"k": [expected]}
    held = msgpack.unpackb(msgpack.packb(record))
    with pytest.raises(ValueError):  # one level more is too deep for msgpack
        msgpack.unpackb(msgpack.packb({"k": [record]}))
    hold(fake, held)
    details, summary = fetch_record_views(client)  # served at Python's default recursion limit
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # only so that this test's json.loads/dumps can take that depth too
    try:
        check_record_views(details, summary, expected)
    finally:
        sys.setrecursionlimit(limit)


def test_error_responses_stay_json(client: FlaskClient, fake: FakeService) -> None:
    fake.fail_with = RuntimeError("bad \udcff bytes")
    response = client.get("/api/dags/alpha")
    assert response.status_code == 500
    assert strict_json(response.get_data(as_text=True))["error"] == "internal error"


MSGPACK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(record=st.dictionaries(st.text(), MSGPACK_VALUES, max_size=5) | MSGPACK_VALUES)
def test_any_msgpack_record_is_strict_json(record: Any) -> None:
    held = msgpack.unpackb(msgpack.packb(record))  # what a worker can actually send
    fake = FakeService()
    hold(fake, held)
    check_record_shown(create_app(fake).test_client(), expected_json(held))


@settings(max_examples=200, deadline=None)
@given(value=MSGPACK_VALUES | st.dictionaries(st.integers() | st.booleans() | st.none() | st.binary() | st.floats(),
                                              MSGPACK_VALUES, max_size=5),
       ensure_ascii=st.booleans(), sort_keys=st.booleans(), separators=st.sampled_from([(",", ":"), (", ", ": ")]))
def test_deep_writer_matches_the_recursive_one(value: Any, ensure_ascii: bool, sort_keys: bool,
                                               separators: tuple[str, str]) -> None:
    options: dict[str, Any] = {"ensure_ascii": ensure_ascii, "sort_keys": sort_keys, "separators": separators}
    fast = json.dumps(to_jsonable(value), allow_nan=False, **options)
    assert dumps_iteratively(value, **options) == fast
    strict_json(fast)


def test_circular_data_is_a_json_500_not_a_hang(client: FlaskClient, fake: FakeService) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    fake.node_fields = {"input": loop}
    response = client.get("/api/dags/alpha")
    assert response.status_code == 500
    assert strict_json(response.get_data(as_text=True))["error"] == "internal error"
