"""The JSON API, ``/healthz`` and ``/metrics`` (SPEC §7): thin views over the service.

Each view asks the :class:`~web.service.SupervisorService` stored in
``current_app.extensions["dagserver"]`` and returns its answer; service errors are turned
into JSON by the handlers in ``web/app.py``.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify

from web.metrics import CONTENT_TYPE
from web.service import ACTIONS, SupervisorService

api = Blueprint("api", __name__)


def service() -> SupervisorService:
    """The supervisor service the app was created with."""
    return cast(SupervisorService, current_app.extensions["dagserver"])


@api.get("/api/dags")
def list_dags() -> Response:
    """Every DAG's summary."""
    return jsonify(service().list_dags())


@api.get("/api/dags/<name>")
def dag_details(name: str) -> Response:
    """One DAG's config, state and per-node details (404 when unknown)."""
    return jsonify(service().dag_details(name))


@api.get("/api/dags/<name>/nodes/<node>")
def node_details(name: str, node: str) -> Response:
    """One node's whole current input and output (``GET /api/dags/NAME`` shows previews)."""
    return jsonify(service().node_details(name, node))


@api.post("/api/dags/<name>/<action>")
def control(name: str, action: str) -> Response | tuple[Response, int]:
    """Start, stop, suspend or resume a DAG; its summary afterwards (404 / 409 on errors)."""
    if action not in ACTIONS:
        valid = ", ".join(ACTIONS)
        body: dict[str, Any] = {"error": f"unknown action {action!r}; valid actions: {valid}",
                                "actions": list(ACTIONS)}
        return jsonify(body), 404
    return jsonify(service().control(name, action))


@api.get("/api/workers")
def workers() -> Response:
    """``[{id, pid, alive, restarts, dags}]``."""
    return jsonify(service().workers())


@api.get("/healthz")
def healthz() -> tuple[Response, int]:
    """The service's health; 200 when ``status`` is ``ok``, 503 otherwise."""
    health = service().health()
    return jsonify(health), 200 if health.get("status") == "ok" else 503


@api.get("/metrics")
def metrics() -> Response:
    """The Prometheus text exposition."""
    return Response(service().metrics_text(), content_type=CONTENT_TYPE)
