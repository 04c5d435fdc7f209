"""Signing in and out over HTTP (SPEC §7), on the app with real accounts and a clock the test moves.

Sessions live on the server: logout ends a copied cookie too; a session ends after
``session_hours`` and after an hour idle. The login form is CSRF-protected, its ``next`` is
followed only when it is a plain local path, and the throttle is bounded per name and per
client address; names over 128 characters cost no hash.
"""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.supervised import password_hash
from tests.web.test_api import FakeService
from web import accounts as accounts_module
from web.accounts import ROLES, Accounts, UsersFile
from web.app import create_app
from web.sessions import SessionStore
from web.throttle import LoginThrottle

COOKIE = "dagserver_session"
HOUR = 3600.0


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Flask:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({role: {"password_hash": password_hash(f"pw-{role}"), "role": role, "tokens": []}
                                 for role in ROLES}))
    return create_app(FakeService(), Accounts(UsersFile(users)), sessions=SessionStore(clock=clock))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def form_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def login(client: FlaskClient, name: str, password: str, address: str = "127.0.0.1", **form: str) -> int:
    sent = {"csrf_token": form_token(client), "username": name, "password": password, **form}
    return client.post("/login", data=sent, environ_base={"REMOTE_ADDR": address}).status_code


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another client holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie.value)
    return thief


# -- sessions ----------------------------------------------------------------------------------------------
def test_a_copied_cookie_stops_working_after_logout(app: Flask, client: FlaskClient) -> None:
    assert login(client, "operator", "pw-operator") == 302
    thief = copy_of(app, client)
    assert thief.get("/api/workers").status_code == 200
    csrf = re.search(r'data-csrf="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert thief.get("/api/workers").status_code == 401
    assert thief.post("/api/dags/alpha/suspend", headers={"X-CSRF-Token": csrf}).status_code == 401
    assert thief.get("/").status_code == 302 and "/login" in thief.get("/").headers["Location"]


def test_a_session_ends_after_an_hour_idle(client: FlaskClient, clock: Clock) -> None:
    assert login(client, "viewer", "pw-viewer") == 302
    for _ in range(3):  # in use: it lives on past an hour
        clock.now += 0.9 * HOUR
        assert client.get("/api/workers").status_code == 200
    clock.now += HOUR + 1
    assert client.get("/api/workers").status_code == 401


def test_a_session_ends_after_session_hours_however_busy(tmp_path: Path, clock: Clock) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ana": {"password_hash": password_hash("pw-viewer"), "role": "viewer"}}))
    app = create_app(FakeService(), Accounts(UsersFile(users)), session_hours=2,
                     sessions=SessionStore(lifetime=2 * HOUR, clock=clock))
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 2 * HOUR  # the cookie's own expiry
    client = app.test_client()
    assert login(client, "ana", "pw-viewer") == 302
    while clock.now < 1000 + 2 * HOUR - 600:
        assert client.get("/api/workers").status_code == 200
        clock.now += 500
    clock.now = 1000 + 2 * HOUR
    assert client.get("/api/workers").status_code == 401


def test_session_hours_default_to_twelve() -> None:
    assert SessionStore().lifetime == 12 * HOUR and SessionStore().idle == HOUR


def test_the_store_keeps_only_a_hash_of_the_session_id(app: Flask, client: FlaskClient) -> None:
    assert login(client, "viewer", "pw-viewer") == 302
    sid = json.dumps(list(app.extensions["dagserver.sessions"]._sessions))
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    raw = app.session_interface.get_signing_serializer(app).loads(cookie.value)["sid"]  # type: ignore[union-attr]
    assert raw not in sid and len(app.extensions["dagserver.sessions"]) == 1


# -- the login form: CSRF and next ----------------------------------------------------------------------------
def test_a_login_post_without_its_form_token_signs_nobody_in(client: FlaskClient) -> None:
    answer = client.post("/login", data={"username": "admin", "password": "pw-admin"})
    assert answer.status_code == 403 and client.get("/api/workers").status_code == 401
    form_token(client)  # a session with a token, but the post carries another one
    answer = client.post("/login", data={"username": "admin", "password": "pw-admin", "csrf_token": "forged"})
    assert answer.status_code == 403 and client.get("/api/workers").status_code == 401
    answer = client.post("/login", data={"username": "admin", "password": "pw-admin", "csrf_token": "é€"})
    assert answer.status_code == 403  # not a 500: the comparison takes any text
    assert login(client, "admin", "pw-admin") == 302 and client.get("/api/workers").status_code == 200
    assert client.post("/api/dags/alpha/suspend", headers={"X-CSRF-Token": "é€"}).status_code == 403


NASTY_NEXT = ["//evil.com", "/\t/evil.com", "/\n/evil.com", "/\r\n/x", "/\\evil.com", "\\\\evil.com",
              "http://evil.com", "https:evil.com", "javascript:alert(1)", " //evil.com", "/\x00/x", "/\x7f/x",
              "evil.com", "/\u2028/x", "/ /evil.com"]


@pytest.mark.parametrize("target", NASTY_NEXT)
def test_a_nasty_next_sends_to_the_dashboard(client: FlaskClient, target: str) -> None:
    sent = {"csrf_token": form_token(client), "username": "viewer", "password": "pw-viewer", "next": target}
    answer = client.post("/login", data=sent)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert answer.headers["Location"] == "/"


def test_a_nasty_next_is_not_planted_in_the_form(client: FlaskClient) -> None:
    page = client.get("/login?next=/%09/evil.com").get_data(as_text=True)
    assert 'name="next" value="/"' in page


def test_a_plain_local_next_is_followed(client: FlaskClient) -> None:
    sent = {"csrf_token": form_token(client), "username": "viewer", "password": "pw-viewer",
            "next": "/dags/alpha?tab=state"}
    assert client.post("/login", data=sent).headers["Location"] == "/dags/alpha?tab=state"


# -- throttling -----------------------------------------------------------------------------------------------
def test_a_long_name_costs_no_hash_and_is_not_remembered(client: FlaskClient, app: Flask,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    token = form_token(client)
    calls: list[int] = []
    real_scrypt = accounts_module.hashlib.scrypt

    def counted(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real_scrypt(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(accounts_module.hashlib, "scrypt", counted)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(40):  # each from its own address: the per-address limit is not what stops them
            answer = client.post("/login", data={"csrf_token": token, "username": f"{i}" + "n" * 100_000,
                                                 "password": "x"}, environ_base={"REMOTE_ADDR": f"10.1.0.{i}"})
            assert answer.status_code == 400 and "128" in answer.get_data(as_text=True)
        gc.collect()  # what requests left in reference cycles is not what the server keeps
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert calls == []
    assert grown < 1_000_000, grown  # 40 names of 100 KB were 4 MB kept for good


def test_too_many_failures_from_one_address_are_429_whatever_the_name(client: FlaskClient) -> None:
    token = form_token(client)
    for i in range(20):  # names over 128 characters: refused without hashing, counted for the address
        data = {"csrf_token": token, "username": "x" * 200 + str(i), "password": "x"}
        assert client.post("/login", data=data, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 400
    assert login(client, "admin", "pw-admin", address="10.9.9.9") == 429  # even the right password
    assert login(client, "admin", "pw-admin", address="10.9.9.8") == 302  # another address is not affected


def test_the_throttle_counts_distinct_names_per_address() -> None:
    throttle = LoginThrottle(limit=5, window=60, address_limit=20)
    for i in range(20):
        assert throttle.wait_seconds(f"user{i}", "10.0.0.1", now=i) == 0
        throttle.failed(f"user{i}", "10.0.0.1", now=i)
    assert throttle.wait_seconds("someone", "10.0.0.1", now=21) > 0
    assert throttle.wait_seconds("someone", "10.0.0.2", now=21) == 0
    assert throttle.wait_seconds("someone", "10.0.0.1", now=19 + 61) == 0  # a minute after the last


def test_what_the_throttle_remembers_stays_bounded_however_many_names() -> None:
    throttle = LoginThrottle(max_entries=1000)
    tracemalloc.start()
    try:
        for i in range(50_000):  # all within one window, so nothing has expired yet
            throttle.failed(f"{i:0128d}", now=i / 1000)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 2_000_000, held
    assert throttle.tracked()[0] <= 1000
    throttle.failed("late", now=1000.0)  # long after: every old entry expired
    assert throttle.tracked()[0] == 1


def test_blocked_names_are_still_blocked_when_other_names_fail(client: FlaskClient) -> None:
    for _ in range(5):
        assert login(client, "admin", "wrong", address="10.2.0.1") == 401
    assert login(client, "admin", "pw-admin", address="10.2.0.2") == 429  # blocked for every address


def test_a_role_too_low_says_an_operator(client: FlaskClient) -> None:
    assert login(client, "operator", "pw-operator") == 302
    token = form_token(client, "/")
    answer = client.delete("/api/dags/alpha", headers={"X-CSRF-Token": token})
    assert answer.status_code == 403
    assert "is an operator" in answer.get_json()["error"]
