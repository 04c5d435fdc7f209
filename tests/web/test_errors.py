"""Error answers that say nothing they should not, and pages that survive odd DAGs (SPEC §7).

A 500 says ``{"error": "internal error", "ref": ID}``, the details only in the log under that
ref; JSON nested too deep is 400; a body over the limit is 413; a DAG page draws a 1,100-node
chain (the layout is not recursive).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.web.test_api import FakeService
from web.app import create_app
from web.graph import layout


def chain(length: int) -> dict[str, Any]:
    """A DAG file of ``length`` nodes in one line: clock -> n0 -> n1 -> ... -> sink."""
    nodes: list[dict[str, Any]] = [{"name": f"n{i}"} for i in range(length)]
    nodes[0].update(type="SubscriptionNode", subscriber="clock")
    nodes[-1].update(type="PublicationNode", publishers=["sink"])
    return {"name": "alpha", "subscribers": [{"name": "clock", "config": {"source": "metronome"}}],
            "publishers": [{"name": "sink", "config": {"destination": "mem://out"}}], "nodes": nodes,
            "edges": [{"from_node": f"n{i}", "to_node": f"n{i + 1}"} for i in range(length - 1)]}


class ChainService(FakeService):
    def dag_details(self, name: str) -> dict[str, Any]:
        return {**super().dag_details(name), "config": chain(1100)}


def test_a_500_names_only_a_ref_and_the_log_has_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeService()
    fake.fail_with = RuntimeError("/srv/secret/path password=hunter2")
    client = create_app(fake).test_client()
    with caplog.at_level(logging.ERROR, logger="web.app"):
        response = client.get("/api/dags/alpha")
    assert response.status_code == 500
    body = response.get_json()
    assert set(body) == {"error", "ref"} and body["error"] == "internal error"
    assert "hunter2" not in response.get_data(as_text=True) and "RuntimeError" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if body["ref"] in r.getMessage()]
    assert logged and "hunter2" in logged[0].getMessage() and logged[0].exc_info


def test_json_nested_too_deep_is_400_not_500() -> None:
    client = create_app(FakeService()).test_client()
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/dags/alpha/clone", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deep" in response.get_json()["error"]
    nested_object = '{"a":' * 50_000 + "1" + "}" * 50_000
    response = client.post("/api/dags/alpha/clone", data=nested_object, content_type="application/json")
    assert response.status_code == 400


def test_a_body_over_the_limit_is_413_from_the_app_itself() -> None:
    client: FlaskClient = create_app(FakeService(), max_body=1000).test_client()
    response = client.post("/api/dags/alpha/clone", data="x" * 1001, content_type="application/json")
    assert response.status_code == 413 and "error" in response.get_json()
    response = client.post("/api/dags", data="x" * 1001, content_type="application/json")
    assert response.status_code == 413


def test_a_1100_node_chain_is_laid_out_and_its_page_drawn() -> None:
    picture = layout(chain(1100))
    xs = sorted({box.x for box in picture.boxes if box.kind == "node"})
    assert len(xs) == 1100  # one layer per node
    response = create_app(ChainService()).test_client().get("/dags/alpha")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "data-key=\"node:n1099\"" in page


def test_a_cycle_is_cut_not_followed_forever() -> None:
    config = chain(3)
    config["edges"].append({"from_node": "n2", "to_node": "n0"})
    picture = layout(config)
    assert len({box.layer for box in picture.boxes if box.kind == "node"}) == 3
