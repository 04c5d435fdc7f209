"""Seeing what a DAG did (SPEC §13): dead letters and their redrive, the audit log, the live series.

API (thin views over the :class:`~web.service.SupervisorService`)::

    GET  /api/dags/NAME/deadletters            viewer   {"dag", "dead_letter", "letters": [{"id", ...envelope}]}
    POST /api/dags/NAME/deadletters/redrive    admin    {"all": true} or {"ids": [...]}
    GET  /api/audit?limit=N                    admin    {"entries": [...]}, oldest first
    GET  /api/series, /api/dags/NAME/series    viewer   the last 15 minutes, one point a second

Pages: the redrive form of the DAG page (``POST /dags/NAME/deadletters/redrive``, admin) and
``/admin/audit``. The dead-letter list itself is part of the DAG page (``web/pages.py``).
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for

from web.audit import EXTENSION as AUDIT
from web.audit import AuditLog, refused
from web.auth import requires
from web.service import Invalid, ServiceError, SupervisorService

insight = Blueprint("insight", __name__)
MAX_AUDIT = 5000
MAX_LISTED = 1000


def service() -> SupervisorService:
    return cast(SupervisorService, current_app.extensions["dagserver"])


def _limit(default: int, most: int) -> int:
    raw = request.args.get("limit", str(default))
    if not raw.isdigit():
        raise Invalid(f"limit must be a whole number from 0 to {most} (got {raw!r})")
    return min(int(raw), most)


# -- dead letters ---------------------------------------------------------------------------------------------
@insight.get("/api/dags/<name>/deadletters")
def dead_letters(name: str) -> Response:
    """The DAG's dead letters read back from its ``dead_letter`` destination, oldest first, each with its ``id``."""
    return jsonify(service().dead_letters(name, _limit(MAX_LISTED, MAX_LISTED)))


def redrive_ids(body: Any) -> list[str] | None:
    """The ids a redrive body asks for (None: all); Invalid unless ``{"all": true}`` or ``{"ids": [...]}``."""
    if isinstance(body, dict) and body.get("all") is True and "ids" not in body:
        return None
    ids = body.get("ids") if isinstance(body, dict) and "all" not in body else None
    if isinstance(ids, list) and ids and all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
        return [str(i) for i in ids]
    raise Invalid('the body must be {"all": true} or {"ids": [ID, ...]} with the ids of '
                  "GET /api/dags/NAME/deadletters")


@insight.post("/api/dags/<name>/deadletters/redrive")
@requires("admin")
def redrive(name: str) -> Response:
    """Inject the chosen dead letters' records again at their subscribers; counts per subscriber."""
    return jsonify(service().redrive(name, redrive_ids(request.get_json(silent=True))))


@insight.post("/dags/<name>/deadletters/redrive")
@requires("admin")
def redrive_page(name: str) -> Response:
    """The DAG page's form: the ticked letters (``ids``), or all of them (``all``)."""
    ids = None if request.form.get("all") else request.form.getlist("ids")
    if ids is not None and not ids:
        refused("no dead letter was chosen")
        flash("Redrive refused: tick the dead letters to redrive, or use Redrive all.", "error")
    else:
        try:
            done = service().redrive(name, ids)
            skipped = len(done.get("skipped") or ())
            flash(f"{done.get('redriven', 0)} dead letter(s) redriven" + (f", {skipped} skipped." if skipped else "."))
        except ServiceError as exc:
            refused(exc.message)
            flash(f"Redrive refused: {exc.message}", "error")
    return redirect(url_for("pages.dag_page", name=name) + "#dead-letters")


def letters_for_page(name: str) -> dict[str, Any]:
    """What the DAG page shows of its dead letters: ``letters`` (newest first, at most 200), or why there are none."""
    try:
        found = service().dead_letters(name, MAX_LISTED)
    except ServiceError as exc:
        return {"letters": [], "why": exc.message}
    return {"letters": list(reversed(found.get("letters") or []))[:200], "why": "",
            "total": len(found.get("letters") or [])}


# -- audit ----------------------------------------------------------------------------------------------------------
def audit_entries(limit: int) -> list[dict[str, Any]]:
    audit: AuditLog | None = current_app.extensions.get(AUDIT)
    return audit.tail(limit) if audit is not None else []


@insight.get("/api/audit")
@requires("admin")
def audit_log() -> Response:
    """The newest entries of the audit log (``?limit=N``, default 1000), oldest first."""
    return jsonify({"entries": audit_entries(_limit(1000, MAX_AUDIT))})


@insight.get("/admin/audit")
@requires("admin")
def audit_page() -> str:
    """The audit log, newest first."""
    return render_template("audit.html", entries=list(reversed(audit_entries(500))))


# -- live series -------------------------------------------------------------------------------------------------------
@insight.get("/api/series")
def server_series() -> Response:
    """The whole server's records/s in and out, errors/s and epoch latency p99, one point a second."""
    return jsonify(service().series(None))


@insight.get("/api/dags/<name>/series")
def dag_series(name: str) -> Response:
    """One DAG's points (404 when unknown)."""
    return jsonify(service().series(name))
