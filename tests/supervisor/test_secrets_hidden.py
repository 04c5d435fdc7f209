"""Secrets stay out of views, and the files the server writes stay private (SPEC §7), on a real server.

A DAG whose config holds a password, a token, a nested Kafka-style ``sasl_plain_password`` and
a URI with ``user:password@`` is shown to a viewer (API, DAG page) with each of those as
``***``; keys that only hold ``key`` (``key``, ``key_attribute``) are not secrets. The DAG
file the API saves and the checkpoints are mode 0600, in folders 0700 the server made.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervised import SupervisedServer, free_port, metronome_dag
from tests.support.waiting import wait_until

SECRETS = ("hunter2-SECRET", "tok-SECRET", "sasl-SECRET", "uri-SECRET", "apikey-SECRET")
SINK_CONFIG = {
    "destination": "custom://tests.support.useradapters.CollectingSink",
    "password": "hunter2-SECRET", "token": "tok-SECRET", "apiKey": "apikey-SECRET",
    "producer_config": {"sasl_plain_password": "sasl-SECRET", "security_protocol": "SASL_SSL"},
    "upstream": "sql://app:uri-SECRET@db.example:5432/orders",
    "key": "order_id", "key_attribute": "id",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leaky_dag(name: str, out: Path) -> dict[str, Any]:
    dag = metronome_dag(name, out)
    dag["publishers"].append({"name": "vault", "config": dict(SINK_CONFIG)})
    dag["nodes"][1]["publishers"] = ["sink", "vault"]
    return dag


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    root = tmp_path_factory.mktemp("secrets")
    unreachable = metronome_dag("unreachable", root / "unused.jsonl")
    unreachable["publishers"][0]["config"]["destination"] = f"redis://list/out?host=127.0.0.1&port={free_port()}" \
                                                            "&password=uri-SECRET"
    dags = {"leaky": leaky_dag("leaky", root / "leaky.jsonl"), "unreachable": unreachable}
    with SupervisedServer(root, dags, workers=1) as running:
        running.wait_dags("running", ["leaky"])
        yield running


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text[:3000])


def test_the_api_masks_secrets_for_a_viewer(server: SupervisedServer) -> None:
    status, body = server.request("GET", "/api/dags/leaky", auth="viewer")
    assert status == 200
    assert_no_secret(json.dumps(body))
    vault = body["config"]["publishers"][1]["config"]
    assert (vault["password"], vault["token"], vault["apiKey"]) == ("***", "***", "***")
    assert vault["producer_config"] == {"sasl_plain_password": "***", "security_protocol": "SASL_SSL"}
    assert vault["upstream"] == "sql://app:***@db.example:5432/orders"
    assert (vault["key"], vault["key_attribute"]) == ("order_id", "id")  # fields, not credentials
    assert_no_secret(json.dumps(server.request("GET", "/api/dags", auth="viewer")[1]))


def test_the_dag_page_masks_secrets(server: SupervisedServer) -> None:
    status, page = server.request("GET", "/dags/leaky", auth="viewer")
    assert status == 200 and "vault" in page
    assert_no_secret(page)


def test_a_clone_keeps_the_real_config(server: SupervisedServer) -> None:
    status, body = server.request("POST", "/api/dags/leaky/clone", body={"name": "leaky_copy"})
    assert status == 201, body
    saved = json.loads((server.dag_dir / "leaky_copy.json").read_text())
    assert saved["publishers"][1]["config"]["password"] == "hunter2-SECRET"  # masking is for eyes, not for files
    assert_no_secret(json.dumps(server.dag("leaky_copy")))
    server.request("DELETE", "/api/dags/leaky_copy")


def test_a_dag_added_through_the_api_is_a_private_file(server: SupervisedServer) -> None:
    status, body = server.request("POST", "/api/dags", body=leaky_dag("added", server.tmp / "added.jsonl"))
    assert status == 201, body
    assert mode(server.dag_dir / "added.json") == 0o600
    server.request("DELETE", "/api/dags/added")


def test_checkpoints_are_private_files_in_private_folders(server: SupervisedServer) -> None:
    checkpoint = server.state_dir / "leaky.ckpt"
    assert wait_until(checkpoint.exists, timeout=15), sorted(server.state_dir.rglob("*"))
    assert mode(checkpoint) == 0o600
    assert mode(server.state_dir) == 0o700  # the server made it


def test_the_log_and_the_reasons_mask_uri_passwords(server: SupervisedServer) -> None:
    assert wait_until(lambda: "list/out" in server.log(), timeout=30), server.log()[-2000:]
    assert "password=***" in server.log()
    assert_no_secret(server.log())
    assert_no_secret(json.dumps(server.request("GET", "/api/dags/unreachable", auth="viewer")[1]))


def test_the_users_file_and_the_folder_made_for_it_are_private(tmp_path: Path) -> None:
    users = tmp_path / "accounts" / "users.json"  # serve makes the folder and the file with its first admin
    server = SupervisedServer(tmp_path, {}, workers=1)
    server.users_path = users
    with server as running:
        assert "admin" in json.loads(users.read_text())
        assert "password" in running.log()
    assert (mode(users), mode(users.parent)) == (0o600, 0o700)
