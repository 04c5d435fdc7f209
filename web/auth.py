"""Who is asking, and may they (SPEC §7): tokens, sessions, CSRF, roles, login throttling, headers.

Every request passes :func:`guard` before its view runs:

* views marked :func:`open_access` (``/healthz``, ``/metrics``, ``/login``, static files) need nothing;
* ``Authorization: Bearer TOKEN`` picks the token's user; a wrong, tampered or revoked token is 401;
* otherwise the session cookie's id, looked up in the server's :class:`~web.sessions.SessionStore`
  and checked against the users file (a logout, a password or role change, a removed user, the
  lifetime or the idle timeout end it); none: 401 under ``/api``, a redirect to ``/login`` elsewhere;
* a session's POST/DELETE must carry its CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``), else 403 — token clients are not cookie-driven, so they need none;
* the view's role (:func:`requires`; reads: ``viewer``) above the user's: 403.

Usage::

    @api.post("/api/dags/<name>/<action>")
    @requires("operator")
    def control(name, action): ...

    current_user()          # the User of this request

The login form carries its own CSRF token, kept in the (signed) cookie before anyone signs
in (:func:`login_csrf_token`, :func:`login_csrf_ok`): a page of another site cannot sign a
visitor in under the attacker's name.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for

from web.accounts import Accounts, User
from web.sessions import Session, SessionStore
from web.throttle import LoginThrottle

ACCOUNTS = "dagserver.accounts"
SESSIONS = "dagserver.sessions"
THROTTLE = "dagserver.throttle"
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


def sessions() -> SessionStore:
    """The app's server-side session store."""
    return cast(SessionStore, current_app.extensions[SESSIONS])


def throttle() -> LoginThrottle:
    """The app's login throttle."""
    return cast(LoginThrottle, current_app.extensions[THROTTLE])


def csrf_token() -> str:
    """This session's CSRF token; pages put it in forms and in ``data-csrf``."""
    record: Session | None = getattr(g, "session", None)
    return record.csrf if record is not None else login_csrf_token()


def login_csrf_token() -> str:
    """The login form's CSRF token, kept in the signed cookie before anyone signs in (made on first use)."""
    if not isinstance(session.get("login_csrf"), str):
        session["login_csrf"] = secrets.token_urlsafe(24)
    return str(session["login_csrf"])


def login_csrf_ok() -> bool:
    """Whether the login POST carries the token its form was given (a cross-site form cannot know it,
    and a SameSite=Lax cookie is not even sent with it)."""
    sent, expected = request.form.get("csrf_token", ""), session.get("login_csrf")
    return bool(sent) and isinstance(expected, str) and same_text(sent, expected)


def same_text(sent: str, expected: str) -> bool:
    """``sent == expected`` in constant time, whatever characters ``sent`` holds (compare_digest refuses
    non-ASCII text, which would have been a 500)."""
    return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())


def sign_in(user: User) -> None:
    """Start a fresh server-side session for ``user`` (a new id and CSRF token); the cookie gets its id."""
    if user.rehashed_from:
        sessions().carry_over(user.name, user.rehashed_from, user.fingerprint)
    sign_out()
    sid, record = sessions().create(user)
    session.permanent = True  # the cookie lasts as long as the session may (session_hours)
    session["sid"] = sid
    g.session = record
    g.user = user  # who this request now is (the audit log names who signed in)


def sign_out() -> None:
    """End this request's session on the server and clear the cookie."""
    sid = session.get("sid")
    if isinstance(sid, str):
        sessions().end(sid)
    session.clear()
    g.session = None


def is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _session_user(accounts: Accounts) -> User | None:
    """The user of the cookie's live session; None (the session ended) when the account was removed or its
    role or password changed since it signed in."""
    sid = session.get("sid")
    record = sessions().get(sid) if isinstance(sid, str) else None
    if record is None:
        session.pop("sid", None)  # ended: the browser may forget the id too
        return None
    user = accounts.user(record.user)
    if user is None or not hmac.compare_digest(user.fingerprint, record.fingerprint):
        sessions().end_user(record.user, keep_fingerprint=user.fingerprint if user else None)
        return None
    g.session = record
    return user


def article(word: str) -> str:
    """``word`` with its indefinite article: ``an operator``, ``a viewer``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


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
            if not sent or not same_text(sent, g.session.csrf):
                abort(403, "missing or wrong CSRF token: reload the page and try again")
    g.user = user
    needed = getattr(view, "required_role", "viewer" if request.method in SAFE_METHODS else "admin")
    if not user.may(needed):
        abort(403, f"user {user.name!r} is {article(user.role)}; this needs the {needed} role")
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


def install(app: Flask, accounts: Accounts | None, secure: bool = False,
            store: SessionStore | None = None) -> None:
    """Add the guard, the headers and the session settings to ``app``; without ``accounts`` nobody logs in.
    ``store``: the sessions (default: 12 h lifetime, 1 h idle)."""
    if accounts is not None:
        app.extensions[ACCOUNTS] = accounts
    store = store if store is not None else SessionStore()
    app.extensions[SESSIONS] = store
    app.extensions[THROTTLE] = LoginThrottle()
    app.secret_key = secrets.token_bytes(32)  # signs the cookie; made anew at each start, like the session store
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure,
                      SESSION_COOKIE_NAME="dagserver_session",
                      PERMANENT_SESSION_LIFETIME=timedelta(seconds=store.lifetime))
    app.before_request(guard)
    app.after_request(security_headers)
    app.jinja_env.globals.update(csrf_token=csrf_token, login_csrf_token=login_csrf_token, current_user=current_user)
