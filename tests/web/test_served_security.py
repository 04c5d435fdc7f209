"""Sessions, limits and states on a real ``dagserver serve`` (SPEC §7), as a browser or a thief sees them.

A session cookie copied before a logout, a ``dagserver user remove``, a password change or a
role change (the command line editing the users file while the server runs) stops working
at once. A body over the limit is 413, JSON nested too deep 400; a DAG just added says
``starting`` until its runtime reports, never ``restarting``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.supervised import DAGSERVER, SupervisedServer, metronome_dag
from tests.support.weblogin import FormClient, oversized_post_status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    tmp = tmp_path_factory.mktemp("served")
    with SupervisedServer(tmp, {"clock": metronome_dag("clock", tmp / "clock.jsonl", interval=0.2)},
                          workers=1) as running:
        running.wait_dags("running")
        yield running


def user_command(server: SupervisedServer, *args: str, password: str | None = None) -> None:
    """Run ``dagserver user ARGS --users FILE`` as an administrator would, while the server runs."""
    done = subprocess.run([str(DAGSERVER), "user", *args, "--users", str(server.users_path)], capture_output=True,
                          text=True, input=f"{password}\n" if password is not None else None, timeout=60)
    assert done.returncode == 0, done.stderr


def signed_in_with_a_copy(server: SupervisedServer, name: str, password: str) -> tuple[FormClient, FormClient]:
    """A client signed in as ``name``, and a thief holding a copy of its session cookie."""
    client = FormClient(server.base_url)
    assert client.login(name, password) == 302
    thief = FormClient(server.base_url, cookie=client.session_cookie())
    assert thief.request("GET", "/api/workers")[0] == 200
    return client, thief


def refused(client: FormClient) -> bool:
    """Whether the client is treated as signed out: 401 on the API, sent to /login from a page."""
    api, _, _ = client.request("GET", "/api/workers")
    page, headers, _ = client.request("GET", "/")
    return api == 401 and page == 302 and "/login" in headers["Location"]


def test_a_cookie_copied_before_logout_is_refused_after_it(server: SupervisedServer) -> None:
    client, thief = signed_in_with_a_copy(server, "operator", "pw-operator")
    csrf = client.csrf()
    assert client.request("POST", "/logout", {"csrf_token": csrf})[0] == 302
    assert refused(client) and refused(thief)
    status, _, _ = thief.request("POST", "/api/dags/clock/suspend", headers={"X-CSRF-Token": csrf})
    assert status == 401 and server.states()["clock"] == "running"


def test_user_remove_ends_that_users_sessions_at_once(server: SupervisedServer) -> None:
    user_command(server, "add", "eve", "--role", "viewer", password="pw-eve")
    client, thief = signed_in_with_a_copy(server, "eve", "pw-eve")
    other, _ = signed_in_with_a_copy(server, "viewer", "pw-viewer")
    user_command(server, "remove", "eve")
    assert refused(client) and refused(thief)
    assert other.request("GET", "/api/workers")[0] == 200  # nobody else is signed out
    assert FormClient(server.base_url).login("eve", "pw-eve") == 401


def test_a_password_change_ends_that_users_sessions(server: SupervisedServer) -> None:
    user_command(server, "add", "pat", "--role", "viewer", password="first-pw")
    client, thief = signed_in_with_a_copy(server, "pat", "first-pw")
    user_command(server, "add", "pat", "--role", "viewer", password="second-pw")
    assert refused(client) and refused(thief)
    assert FormClient(server.base_url).login("pat", "second-pw") == 302


def test_a_role_change_ends_that_users_sessions(server: SupervisedServer) -> None:
    user_command(server, "add", "rob", "--role", "operator", password="pw-rob")
    client, thief = signed_in_with_a_copy(server, "rob", "pw-rob")
    data = json.loads(server.users_path.read_text())
    data["rob"]["role"] = "viewer"  # edited by hand, the hash untouched
    server.users_path.write_text(json.dumps(data))
    assert refused(client) and refused(thief)


def test_a_body_over_the_limit_is_413(server: SupervisedServer) -> None:
    assert oversized_post_status(server, "/api/dags") == 413
    assert oversized_post_status(server, "/api/dags/clock/clone") == 413
    assert oversized_post_status(server, "/api/dags", chunked=True) == 413  # no Content-Length to go by
    assert server.get_ok("/healthz")["status"] == "ok"


def test_json_nested_too_deep_is_400(server: SupervisedServer) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/dags/clock/clone", "/api/dags"):
        status, body = raw_post(server, path, deep)
        assert status == 400 and "RecursionError" not in json.dumps(body), (path, status, body)


def raw_post(server: SupervisedServer, path: str, text: str) -> tuple[int, object]:
    """POST ``text`` as a JSON body with the admin's token; ``(status, parsed body)``."""
    request = urllib.request.Request(f"{server.base_url}{path}", data=text.encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {server.tokens['admin']}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def test_a_dag_just_added_is_starting_not_restarting(server: SupervisedServer) -> None:
    status, body = server.request("POST", "/api/dags", body=metronome_dag("fresh", server.tmp / "fresh.jsonl"))
    assert status == 201, body
    assert body["state"] in ("starting", "running") and "(re)starting" not in body["reason"], body
    server.wait_dags("running", ["fresh"])
    assert server.request("DELETE", "/api/dags/fresh")[0] == 200
