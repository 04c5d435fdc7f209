"""Authenticated API on a real ``dagserver serve`` (SPEC §7): tokens, roles, admin DAG changes, headers.

One server for the module: the checks below change only DAGs they add themselves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.supervised import DAGSERVER, SupervisedServer, free_port, line_count, metronome_dag
from tests.support.waiting import wait_until
from tests.support.weblogin import FormClient
from web.accounts import TOKEN_PREFIX, UsersFile, hash_password


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    tmp = tmp_path_factory.mktemp("auth")
    with SupervisedServer(tmp, {"clock": metronome_dag("clock", tmp / "clock.jsonl", interval=0.1)},
                          workers=1) as running:
        running.wait_dags("running")
        yield running


def test_no_token_is_401_and_health_and_metrics_stay_open(server: SupervisedServer) -> None:
    status, body = server.request("GET", "/api/dags", auth=None)
    assert status == 401 and "error" in body
    assert server.request("GET", "/healthz", auth=None)[0] == 200
    assert server.request("GET", "/metrics", auth=None)[0] == 200
    assert server.request("POST", "/api/dags/clock/stop", auth=None)[0] == 401


def test_viewer_reads_but_may_not_act(server: SupervisedServer) -> None:
    assert server.request("GET", "/api/dags/clock", auth="viewer")[0] == 200
    status, body = server.request("POST", "/api/dags/clock/suspend", auth="viewer")
    assert status == 403 and "operator" in body["error"]
    assert server.states()["clock"] == "running"


def test_operator_stops_and_starts_but_may_not_administer(server: SupervisedServer) -> None:
    assert server.request("POST", "/api/dags/clock/stop", auth="operator")[0] == 200
    server.wait_dags("stopped", ["clock"])
    assert server.request("POST", "/api/dags/clock/start", auth="operator")[0] == 200
    server.wait_dags("running", ["clock"])
    assert server.request("DELETE", "/api/dags/clock", auth="operator")[0] == 403


def test_tampered_token_is_401(server: SupervisedServer) -> None:
    token = server.tokens["admin"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert server.request("GET", "/api/dags", token=tampered)[0] == 401
    assert server.request("GET", "/api/dags", token="")[0] == 401


def test_revoked_token_is_401_at_once(server: SupervisedServer) -> None:
    new = subprocess.run([str(DAGSERVER), "user", "token", "viewer", "--users", str(server.users_path)],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    assert server.request("GET", "/api/dags", token=new)[0] == 200
    subprocess.run([str(DAGSERVER), "user", "revoke", "viewer", "--token", new, "--users", str(server.users_path)],
                   check=True, capture_output=True)
    assert server.request("GET", "/api/dags", token=new)[0] == 401
    assert server.request("GET", "/api/dags", auth="viewer")[0] == 200  # the other token still works


def test_admin_adds_a_dag_that_runs_then_reloads_clones_and_deletes_it(server: SupervisedServer) -> None:
    out = server.tmp / "added.jsonl"
    status, body = server.request("POST", "/api/dags", body=metronome_dag("added", out, interval=0.05))
    assert status == 201, body
    server.wait_dags("running", ["added"])
    server.wait_lines(out, 0)
    assert (server.dag_dir / "added.json").exists()

    def computes() -> int:
        return int(server.dag("added")["nodes"]["tick"]["computes"])

    assert wait_until(lambda: computes() >= 3, timeout=10)
    before = computes()
    assert server.request("POST", "/api/dags/added/reload")[0] == 200
    server.wait_dags("running", ["added"])
    assert computes() >= before  # SPEC §8: a reload carries the counters on, they never go down
    status, body = server.request("POST", "/api/dags/added/clone",
                                  body={"name": "added_night", "start_time": "2200", "end_time": "0600"})
    assert status == 201, body
    assert json.loads((server.dag_dir / "added_night.json").read_text())["start_time"] == "2200"
    for name in ("added", "added_night"):
        assert server.request("DELETE", f"/api/dags/{name}")[0] == 200
        assert not (server.dag_dir / f"{name}.json").exists()
    assert "added" not in server.states()
    count = line_count(out)
    assert not wait_until(lambda: line_count(out) > count + 2, timeout=0.5)  # it stopped writing


def test_an_invalid_dag_is_400_with_check_lines_and_nothing_saved(server: SupervisedServer) -> None:
    broken = {**metronome_dag("broken", server.tmp / "b.jsonl"), "edges": [{"from_node": "tick", "to_node": "nope"}]}
    status, body = server.request("POST", "/api/dags", body=broken)
    assert status == 400 and any("edges[0].to_node" in line for line in body["problems"]), body
    assert not (server.dag_dir / "broken.json").exists() and "broken" not in server.states()
    assert server.request("POST", "/api/dags", body={"name": "clock"}, auth="admin")[0] == 400


def test_security_headers_on_every_response(server: SupervisedServer) -> None:
    for path in ("/healthz", "/login", "/api/dags"):
        try:
            response = urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10)
            headers = response.headers
        except urllib.error.HTTPError as error:
            headers = error.headers
        assert "script-src 'self'" in headers["Content-Security-Policy"] and "unsafe-inline" not in \
            headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"]
        assert "waitress" in headers.get("Server", "") or headers.get("Server") == "dagserver"
    assert "development server" not in server.log()


def test_user_commands(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    run = [str(DAGSERVER), "user"]
    added = subprocess.run([*run, "add", "ana", "--role", "operator", "--users", str(users)], input="s3cret\n",
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    data = json.loads(users.read_text())
    assert data["ana"]["role"] == "operator" and "s3cret" not in users.read_text()
    assert users.stat().st_mode & 0o777 == 0o600
    plain = tmp_path / "seed.json"
    plain.write_text(json.dumps({"bob": {"password": "pw", "role": "user"}}))
    config = tmp_path / "sup.toml"
    config.write_text(f'users = "{plain}"\nbind = "127.0.0.1:1"\nstate_dir = "{tmp_path / "state"}"\n')
    refused = subprocess.run([str(DAGSERVER), "serve", "-c", str(config)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "dagserver user hash" in refused.stderr
    assert subprocess.run([*run, "hash", str(plain)], capture_output=True).returncode == 0
    assert json.loads(plain.read_text())["bob"]["role"] == "viewer"
    token = subprocess.run([*run, "token", "bob", "-c", str(config)], capture_output=True, text=True)
    assert token.returncode == 0 and len(token.stdout.strip().splitlines()[-1]) >= 32
    assert subprocess.run([*run, "token", "nobody", "--users", str(users)], capture_output=True).returncode == 2


def login(server: SupervisedServer, name: str, password: str) -> int:
    """The status of a login form POST, its CSRF token included (302 when signed in)."""
    return FormClient(f"http://127.0.0.1:{server.port}").login(name, password)


def test_five_failed_logins_block_that_user_for_a_minute(server: SupervisedServer) -> None:
    assert [login(server, "admin", "wrong") for _ in range(5)] == [401] * 5
    assert login(server, "admin", "pw-admin") == 429  # even the right password, for a minute
    assert login(server, "operator", "pw-operator") == 302  # other users are not affected


def test_first_start_creates_an_admin_and_logs_its_password_once(tmp_path: Path) -> None:
    port = free_port()
    users = tmp_path / "var" / "users.json"
    (tmp_path / "dags").mkdir()
    config = tmp_path / "sup.toml"
    config.write_text(f'workers = 1\ndags = ["{tmp_path / "dags"}"]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'bind = "127.0.0.1:{port}"\nusers = "{users}"\n')
    log = tmp_path / "log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(DAGSERVER), "serve", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        assert wait_until(lambda: "log in at" in log.read_text() and "serving" in log.read_text(), timeout=30), \
            log.read_text()
        text = log.read_text()
        password = re.search(r"user 'admin', password (\S+) ", text).group(1)  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}/login" in text and "development server" not in text
        assert users.stat().st_mode & 0o777 == 0o600 and password not in users.read_text()
        fake = SupervisedServer.__new__(SupervisedServer)
        fake.port = port
        assert login(fake, "admin", password) == 302
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_tokens_never_look_like_command_line_options(tmp_path: Path) -> None:
    """`dagserver user revoke NAME --token TOKEN` must take any token: none may start with "-"."""
    users = UsersFile(tmp_path / "users.json")
    users.write({"ana": {"password_hash": hash_password("pw"), "role": "viewer", "tokens": []}})
    tokens = [users.new_token("ana") for _ in range(50)]
    assert all(t.startswith(TOKEN_PREFIX) for t in tokens)
    assert len(set(tokens)) == 50


def test_a_server_with_a_users_file_says_how_to_set_a_password(tmp_path: Path) -> None:
    with SupervisedServer(tmp_path, {}, workers=1) as server:
        log = server.log()
    assert f"dagserver user add admin --role admin --users {server.users_path}" in log, log
