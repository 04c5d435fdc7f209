"""The web UI's pages (SPEC §7): login, dashboard, a DAG's details and live state, admin forms.

Thin views over the :class:`~web.service.SupervisorService`, rendered from ``web/templates``;
the live parts (dashboard rows, counts, node values) are filled by ``web/static/app.js``
from the JSON API. Every value is rendered as text (Jinja autoescapes, the script sets
``textContent``). Roles are checked by :mod:`web.auth` from the marks below.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web.accounts import MAX_NAME, Accounts
from web.api import service
from web.audit import refused
from web.auth import ACCOUNTS, current_user, login_csrf_ok, open_access, requires, sign_in, sign_out, throttle
from web.graph import layout
from web.insight import letters_for_page
from web.service import ServiceError

pages = Blueprint("pages", __name__)
MAX_UPLOAD = 1 << 20  # a DAG file larger than 1 MB is surely a mistake


def local_path(target: str | None) -> str | None:
    """``target`` when it is a plain path on this site, else None: it must start with one ``/`` and hold no
    scheme, host, backslash, whitespace or control character (a browser drops tabs and newlines, so
    ``/<TAB>/evil.com`` would become ``//evil.com``, another host).

    >>> local_path("/dags/a?x=1"), local_path("//evil.com"), local_path("/\t/evil.com"), local_path("http://e")
    ('/dags/a?x=1', None, None, None)
    """
    if not target or not target.startswith("/") or target.startswith("//") or len(target) > 2048:
        return None
    if any(c == "\\" or c.isspace() or not c.isprintable() for c in target):
        return None
    return target


def _local(target: str | None) -> str:
    """``target`` when it is a plain local path (:func:`local_path`), else the dashboard."""
    return local_path(target) or url_for("pages.dashboard")


# -- signing in and out --------------------------------------------------------------------------------
@pages.route("/login", methods=["GET", "POST"])
@open_access
def login() -> str | Response | tuple[str, int]:
    """The login form (CSRF-protected); after 5 failures of one name within a minute, or 20 from one client
    address, 429 for a minute. Names over 128 characters are refused before any hashing."""
    accounts: Accounts | None = current_app.extensions.get(ACCOUNTS)
    target = _local(request.values.get("next"))
    if request.method == "GET" or accounts is None:
        return render_template("login.html", next=target, error="")
    name, address = request.form.get("username", ""), request.remote_addr or ""

    def refuse(error: str, status: int) -> tuple[str, int]:
        return render_template("login.html", next=target, error=error, username=name[:MAX_NAME]), status

    if not login_csrf_ok():
        return refuse("This login form has expired or came from another site: log in again.", 403)
    wait = throttle().address_wait(address)
    if wait:
        return refuse(f"Too many failed logins from your address: try again in {wait:.0f} s.", 429)
    if len(name) > MAX_NAME:
        throttle().failed(None, address)
        return refuse(f"A user name has at most {MAX_NAME} characters.", 400)
    wait = throttle().wait_seconds(name, address)
    if wait:
        return refuse(f"Too many failed logins for this user: try again in {wait:.0f} s.", 429)
    user = accounts.login(name, request.form.get("password", ""))
    if user is None:
        throttle().failed(name, address)
        return refuse("Wrong user name or password.", 401)
    throttle().succeeded(name)
    sign_in(user)
    return redirect(target)


@pages.post("/logout")
@requires("viewer")
def logout() -> Response:
    """End the session on the server (a saved copy of the cookie no longer works)."""
    sign_out()
    return redirect(url_for("pages.login"))


# -- reading -----------------------------------------------------------------------------------------------
@pages.get("/")
def dashboard() -> str:
    """Every DAG and worker, refreshed live by the script."""
    return render_template("dashboard.html", dags=service().list_dags(), workers=service().workers())


def _details_or_404(name: str) -> dict[str, Any]:
    try:
        return service().dag_details(name)
    except ServiceError as exc:
        abort(exc.status, exc.message)


@pages.get("/dags/<name>")
def dag_page(name: str) -> str:
    """The graph, counts, config, endpoints and last errors of one DAG."""
    details = _details_or_404(name)
    errors = [{"node": node, **error} for node, info in (details.get("nodes") or {}).items()
              for error in info.get("last_errors") or ()]
    errors.sort(key=lambda e: e.get("time") or 0, reverse=True)
    return render_template("dag.html", dag=details, picture=layout(details.get("config") or {}), errors=errors[:20],
                           dead=letters_for_page(name))


@pages.get("/dags/<name>/state")
def dag_state(name: str) -> str:
    """Each node's current input and output, refreshed live by the script."""
    return render_template("state.html", dag=_details_or_404(name))


# -- admin -------------------------------------------------------------------------------------------------
@pages.route("/admin/add", methods=["GET", "POST"])
@requires("admin")
def add_dag() -> str | Response | tuple[str, int]:
    """Upload or paste a DAG file; the check's lines are shown when it is refused (nothing is saved)."""
    if request.method == "GET":
        return render_template("add.html", text="", problems=[], error="")
    upload = request.files.get("file")
    text, source = request.form.get("text", ""), "pasted text"
    if upload is not None and upload.filename:
        text, source = upload.read(MAX_UPLOAD + 1).decode("utf-8", errors="replace"), upload.filename
    if not text.strip():
        return render_template("add.html", text="", problems=[], error="Paste a DAG file or choose one."), 400
    try:
        summary = service().add_dag(text, source)
    except ServiceError as exc:
        return render_template("add.html", text=text, problems=exc.problems, error=exc.message), exc.status
    flash(f"DAG {summary['name']} added and started.")
    return redirect(url_for("pages.dag_page", name=summary["name"]))


@pages.route("/dags/<name>/clone", methods=["GET", "POST"])
@requires("admin")
def clone_dag(name: str) -> str | Response | tuple[str, int]:
    """A copy of the DAG under a new name, with its own daily window."""
    details = _details_or_404(name)
    form = {"name": request.form.get("name", f"{name}_copy"), "start_time": request.form.get("start_time", ""),
            "end_time": request.form.get("end_time", "")}
    if request.method == "GET":
        window = details.get("config", {})
        form.update(start_time=window.get("start_time") or "", end_time=window.get("end_time") or "")
        return render_template("clone.html", dag=details, form=form, problems=[], error="")
    try:
        summary = service().clone_dag(name, form["name"].strip(), form["start_time"].strip() or None,
                                      form["end_time"].strip() or None)
    except ServiceError as exc:
        return render_template("clone.html", dag=details, form=form, problems=exc.problems,
                               error=exc.message), exc.status
    flash(f"DAG {summary['name']} cloned from {name} and started.")
    return redirect(url_for("pages.dag_page", name=summary["name"]))


@pages.post("/dags/<name>/reload")
@requires("admin")
def reload_dag(name: str) -> Response:
    """Re-read the DAG's file and restart it; the outcome is flashed on its page."""
    try:
        service().reload_dag(name)
        flash(f"DAG {name} reloaded from its file.")
    except ServiceError as exc:
        _flash_refused("Reload", exc)
    return redirect(url_for("pages.dag_page", name=name))


@pages.post("/dags/<name>/delete")
@requires("admin")
def delete_dag(name: str) -> Response:
    """Stop the DAG, forget it and remove its file."""
    try:
        service().delete_dag(name)
        flash(f"DAG {name} deleted.")
    except ServiceError as exc:
        _flash_refused("Delete", exc)
        return redirect(url_for("pages.dag_page", name=name))
    return redirect(url_for("pages.dashboard"))


def _flash_refused(action: str, exc: ServiceError) -> None:
    """Why the service refused ``action``, and each of its problems, as error messages on the next page."""
    refused(exc.message)
    flash(f"{action} refused: {exc.message}", "error")
    for problem in exc.problems:
        flash(problem, "error")


@pages.app_context_processor
def page_globals() -> dict[str, Any]:
    """What every template may use: the user and whether they may act or administer."""
    user = current_user()
    return {"user": user, "may_operate": user.may("operator"), "may_admin": user.may("admin")}


@pages.app_template_filter("pretty")
def pretty(value: Any) -> str:
    """``value`` as indented JSON text (autoescaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
