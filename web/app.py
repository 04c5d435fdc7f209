"""The Flask application factory: the API and page blueprints, accounts, JSON error handling.

The supervisor builds the app with :func:`create_app` around its
:class:`~web.service.SupervisorService` and its :class:`~web.accounts.Accounts`; the views
find the service in ``app.extensions["dagserver"]``. Without accounts (in-process tests)
nobody needs to log in.

Errors are JSON ``{"error": ...}``: a body over ``max_body`` bytes is 413 (on every server, the
app checks it itself), JSON nested too deep 400, and any unexpected exception a 500 saying only
``{"error": "internal error", "ref": ID}``; the traceback is logged under that ``ref``.

Usage::

    app = create_app(service, Accounts(UsersFile("var/users.json")), secure=False, session_hours=12)
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from web.accounts import Accounts
from web.api import api
from web.audit import AuditLog
from web.audit import install as install_audit
from web.auth import install
from web.insight import insight
from web.jsonsafe import SafeJSONProvider
from web.observe import observe
from web.pages import pages
from web.service import ServiceError, SupervisorService
from web.sessions import DEFAULT_SESSION_HOURS, SessionStore

EXTENSION = "dagserver"
MAX_BODY = 4 << 20  # bytes a request body may have (a DAG file upload is far smaller)
log = logging.getLogger(__name__)


def create_app(service: SupervisorService, accounts: Accounts | None = None, secure: bool = False, *,
               session_hours: float = DEFAULT_SESSION_HOURS, max_body: int = MAX_BODY,
               sessions: SessionStore | None = None, audit: AuditLog | None = None) -> Flask:
    """A Flask app serving the pages, the JSON API, ``/healthz`` and ``/metrics`` over ``service``;
    ``secure``: served over TLS (the session cookie is then Secure); ``session_hours``: how long a
    login lasts; ``sessions``: a ready session store instead (tests give one with their own clock); ``audit``:
    where every POST and DELETE is recorded (SPEC §13)."""
    app = Flask(__name__)
    app.json = SafeJSONProvider(app)  # bytes as base64, NaN/inf as null: always valid JSON (SPEC §7)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = max_body  # 413 before the body is read, whichever server runs the app
    app.extensions[EXTENSION] = service
    install(app, accounts, secure, sessions if sessions is not None else SessionStore(lifetime=session_hours * 3600))
    app.register_blueprint(api)
    app.register_blueprint(observe)
    app.register_blueprint(pages)
    app.register_blueprint(insight)
    install_audit(app, audit)
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


def error_response(message: str, status: int, **extra: object) -> tuple[Response, int]:
    """The API's error shape: ``{"error": message, ...}`` with ``status``."""
    return jsonify({"error": message, **extra}), status


def service_error(error: ServiceError) -> tuple[Response, int]:
    """A :class:`ServiceError` (unknown DAG, wrong state, ...) as JSON with its own status."""
    extra = {"problems": error.problems} if error.problems else {}
    return error_response(error.message, error.status, **extra)


def http_error(error: HTTPException) -> HTTPException | tuple[Response, int]:
    """404/405/... as JSON under ``/api``; elsewhere Werkzeug's own response."""
    if not wants_json():
        return error
    status = error.code or 500
    return error_response(error.description or error.name, status)


def unexpected_error(error: Exception) -> tuple[Response, int]:
    """Any other exception: logged with its traceback under a new ``ref``; the answer says only that ref
    (an exception's text may hold paths, values or secrets)."""
    ref = secrets.token_hex(6)
    log.error("internal error ref=%s on %s %s: %s: %s", ref, request.method, request.path, type(error).__name__,
              error, exc_info=error)
    return error_response("internal error", 500, ref=ref)


def wants_json() -> bool:
    """Whether the request is for the JSON API (so errors must be JSON too)."""
    path = request.path
    return path == "/api" or path.startswith("/api/")
