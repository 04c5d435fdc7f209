"""The Flask application factory: the API blueprint plus JSON error handling.

The supervisor builds the app with :func:`create_app` around its
:class:`~web.service.SupervisorService`; the views find it in
``app.extensions["dagserver"]``.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from web.api import api
from web.jsonsafe import SafeJSONProvider
from web.service import ServiceError, SupervisorService

EXTENSION = "dagserver"
log = logging.getLogger(__name__)


def create_app(service: SupervisorService) -> Flask:
    """A Flask app serving the JSON API, ``/healthz`` and ``/metrics`` over ``service``."""
    app = Flask(__name__)
    app.json = SafeJSONProvider(app)  # bytes as base64, NaN/inf as null: always valid JSON (SPEC §7)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = service
    app.register_blueprint(api)
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


def error_response(message: str, status: int, **extra: object) -> tuple[Response, int]:
    """The API's error shape: ``{"error": message, ...}`` with ``status``."""
    return jsonify({"error": message, **extra}), status


def service_error(error: ServiceError) -> tuple[Response, int]:
    """A :class:`ServiceError` (unknown DAG, wrong state, ...) as JSON with its own status."""
    return error_response(error.message, error.status)


def http_error(error: HTTPException) -> HTTPException | tuple[Response, int]:
    """404/405/... as JSON under ``/api``; elsewhere Werkzeug's own response."""
    if not wants_json():
        return error
    status = error.code or 500
    return error_response(error.description or error.name, status)


def unexpected_error(error: Exception) -> tuple[Response, int]:
    """Any other exception: logged with its traceback, answered as a 500 JSON error."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(f"internal error: {type(error).__name__}: {error}", 500)


def wants_json() -> bool:
    """Whether the request is for the JSON API (so errors must be JSON too)."""
    path = request.path
    return path == "/api" or path.startswith("/api/")
