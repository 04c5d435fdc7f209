"""The JSON API, ``/healthz`` and ``/metrics`` (SPEC §7): thin views over the service.

Each view asks the :class:`~web.service.SupervisorService` stored in
``current_app.extensions["dagserver"]`` and returns its answer; service errors are turned
into JSON by the handlers in ``web/app.py``. Reads need the ``viewer`` role, start/stop/
suspend/resume ``operator``, adding, reloading, cloning and deleting DAGs ``admin``
(:mod:`web.auth` checks them); ``/healthz`` and ``/metrics`` are open.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, request

from web.auth import open_access, requires
from web.metrics import CONTENT_TYPE
from web.service import ACTIONS, Invalid, ServiceError, SupervisorService

api = Blueprint("api", __name__)


def service() -> SupervisorService:
    """The supervisor service the app was created with."""
    return cast(SupervisorService, current_app.extensions["dagserver"])


@api.get("/api/dags")
def list_dags() -> Response:
    """Every DAG's summary; with ``?details=1`` also its window, records in/out, errors and last
    activity (what the dashboard shows)."""
    dags = service().list_dags()
    if request.args.get("details"):
        dags = [{**dag, **figures(dag["name"])} for dag in dags]
    return jsonify(dags)


def figures(name: str) -> dict[str, Any]:
    """A DAG's dashboard figures from its details (empty when it went away meanwhile)."""
    try:
        details = service().dag_details(name)
    except ServiceError:
        return {}
    subscribers, publishers = details.get("subscribers") or {}, details.get("publishers") or {}
    nodes = details.get("nodes") or {}
    times = [e.get("last_activity") for e in (*subscribers.values(), *publishers.values())]
    times += [n.get("last_compute") for n in nodes.values()]
    return {"window": details.get("window"),
            "records_in": sum(e.get("records") or 0 for e in subscribers.values()),
            "records_out": sum(e.get("records") or 0 for e in publishers.values()),
            "errors": sum(n.get("errors") or 0 for n in nodes.values())
            + sum(e.get("errors") or 0 for e in (*subscribers.values(), *publishers.values())),
            "last_activity": max((t for t in times if isinstance(t, int | float)), default=None)}


@api.get("/api/dags/<name>")
def dag_details(name: str) -> Response:
    """One DAG's config, state and per-node details (404 when unknown)."""
    return jsonify(service().dag_details(name))


@api.get("/api/dags/<name>/nodes/<node>")
def node_details(name: str, node: str) -> Response:
    """One node's whole current input and output (``GET /api/dags/NAME`` shows previews)."""
    return jsonify(service().node_details(name, node))


@api.post("/api/dags/<name>/<action>")
@requires("operator")
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


@api.get("/api/skipped")
def skipped() -> Response:
    """The ``check`` lines of the DAG files skipped at start-up (``/healthz`` only counts them)."""
    return jsonify(service().skipped())


@api.get("/healthz")
@open_access
def healthz() -> tuple[Response, int]:
    """The service's health; 200 when ``status`` is ``ok``, 503 otherwise. Open to all, so it carries counts
    and roles only (SPEC §7)."""
    health = service().health()
    return jsonify(health), 200 if health.get("status") == "ok" else 503


@api.get("/metrics")
@open_access
def metrics() -> Response:
    """The Prometheus text exposition."""
    return Response(service().metrics_text(), content_type=CONTENT_TYPE)


# -- admin ----------------------------------------------------------------------------------------------
@api.post("/api/dags")
@requires("admin")
def add_dag() -> tuple[Response, int]:
    """A DAG file as the JSON body: validated, saved, placed and started (400 with the check lines)."""
    text = request.get_data(as_text=True)
    return jsonify(service().add_dag(text, "request body")), 201


@api.post("/api/dags/<name>/reload")
@requires("admin")
def reload_dag(name: str) -> Response:
    """Re-read the DAG's file; restart only that DAG."""
    return jsonify(service().reload_dag(name))


@api.post("/api/dags/<name>/clone")
@requires("admin")
def clone_dag(name: str) -> tuple[Response, int]:
    """``{"name", "start_time", "end_time"}``: a copy with a new name and window, started."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise Invalid('the body must be JSON {"name": NEW_NAME, "start_time": "HHMM"|null, "end_time": "HHMM"|null}')
    window = [body.get(k) for k in ("start_time", "end_time")]
    if not all(w is None or isinstance(w, str) for w in window):
        raise Invalid('start_time and end_time must be "HHMM" strings or null')
    return jsonify(service().clone_dag(name, body["name"], window[0], window[1])), 201


@api.delete("/api/dags/<name>")
@requires("admin")
def delete_dag(name: str) -> Response:
    """Stop the DAG, forget it and remove its file."""
    return jsonify(service().delete_dag(name))
