"""Who is asking, and may they (SPEC §7): tokens, sessions, CSRF, roles, login throttling, headers.

Every request passes :func:`guard` before its view runs:

* views marked :func:`open_access` (``/healthz``, ``/metrics``, ``/login``, static files) need nothing;
* ``Authorization: Bearer TOKEN`` picks the token's user; a wrong, tampered or revoked token is 401;
* otherwise the session cookie's user; none: 401 under ``/api``, a redirect to ``/login`` elsewhere;
* a session's POST/DELETE must carry its CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``), else 403 — token clients are not cookie-driven, so they need none;
* the view's role (:func:`requires`; reads: ``viewer``) above the user's: 403.

Usage::

    @api.post("/api/dags/<name>/<action>")
    @requires("operator")
    def control(name, action): ...

    current_user()          # the User of this request
"""

from __future__ import annotations

import collections
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for

from web.accounts import Accounts, User

ACCOUNTS = "dagserver.accounts"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
NOBODY_NEEDED = User("anonymous", "admin")  # an app built without accounts (in-process tests) trusts everyone
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
View = TypeVar("View", bound=Callable[..., Any])


def requires(role: str) -> Callable[[View], View]:
    """Mark a view as needing ``role`` (``viewer``, ``operator`` or ``admin``)."""
    def mark(view: View) -> View:
        view.required_role = role  # type: ignore[attr-defined]
        return view
    return mark


def open_access(view: View) -> View:
    """Mark a view as needing no login (health, metrics, the login page)."""
    view.open_access = True  # type: ignore[attr-defined]
    return view


def current_user() -> User:
    """The user of the current request (set by :func:`guard`)."""
    return getattr(g, "user", NOBODY_NEEDED)


def csrf_token() -> str:
    """This session's CSRF token (made on first use); pages put it in forms and in ``data-csrf``."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def sign_in(user: User) -> None:
    """Start a fresh session for ``user`` (a new CSRF token too)."""
    session.clear()
    session.update(user=user.name, fp=user.fingerprint, csrf=secrets.token_urlsafe(24))


def is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _session_user(accounts: Accounts) -> User | None:
    name = session.get("user")
    user = accounts.user(name) if isinstance(name, str) else None
    if user is None or not hmac.compare_digest(user.fingerprint, str(session.get("fp", ""))):
        return None  # removed, or the password changed since this session signed in
    return user


def guard() -> Response | None:
    """The before-request hook: authenticate, check CSRF and role; a response when refused."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or request.endpoint == "static" or getattr(view, "open_access", False):
        return None
    accounts: Accounts | None = current_app.extensions.get(ACCOUNTS)
    if accounts is None:
        g.user = NOBODY_NEEDED
        return None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        user = accounts.by_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if user is None:
            abort(401, "invalid API token: it is unknown, altered or revoked")
    else:
        user = _session_user(accounts)
        if user is None:
            if is_api() or request.method not in SAFE_METHODS:
                abort(401, "not authenticated: send Authorization: Bearer TOKEN (dagserver user token NAME) "
                           "or log in at /login")
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
            if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
                abort(403, "missing or wrong CSRF token: reload the page and try again")
    g.user = user
    needed = getattr(view, "required_role", "viewer" if request.method in SAFE_METHODS else "admin")
    if not user.may(needed):
        abort(403, f"user {user.name!r} is a {user.role}; this needs the {needed} role")
    return None


def security_headers(response: Response) -> Response:
    """The after-request hook: CSP without inline script, no framing, no sniffing, no referrer; no caching."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def install(app: Flask, accounts: Accounts | None, secure: bool = False) -> None:
    """Add the guard, the headers and the session settings to ``app``; without ``accounts`` nobody logs in."""
    if accounts is not None:
        app.extensions[ACCOUNTS] = accounts
    app.extensions["dagserver.throttle"] = LoginThrottle()
    app.secret_key = secrets.token_bytes(32)  # sessions end with the process (a restart signs everyone out)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure,
                      SESSION_COOKIE_NAME="dagserver_session")
    app.before_request(guard)
    app.after_request(security_headers)
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user)


class LoginThrottle:
    """After ``limit`` failed logins of one user name within ``window`` seconds, refuse that name for
    ``window`` seconds (SPEC §7: 5 within a minute, then 429 for a minute).

    >>> t = LoginThrottle(limit=2, window=60); t.failed("ana", now=0); t.failed("ana", now=1)
    >>> t.wait_seconds("ana", now=2) > 0
    True
    """

    def __init__(self, limit: int = 5, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, collections.deque[float]] = {}
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, name: str, now: float | None = None) -> float:
        """How long ``name`` must wait before another attempt (0: go ahead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(0.0, self._blocked.get(name, 0.0) - now)

    def failed(self, name: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 10_000:  # names tried once long ago: forget them
                self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - self.window}
            recent = self._failures.setdefault(name, collections.deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) >= self.limit:
                self._blocked[name] = now + self.window
                recent.clear()

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
