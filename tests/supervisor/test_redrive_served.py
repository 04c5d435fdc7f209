"""Dead letters, redrive and the audit log through a real ``dagserver serve`` (SPEC §13).

A calculator raises for some records; their dead letters are listed by the API; the DAG file is
fixed and reloaded; a redrive publishes each of them once more and ``redriven_total`` says how many.
Every change is in the audit log with who made it and how it went; a viewer may not read it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervised import DAGSERVER, ROOT, SupervisedServer, read_jsonl
from tests.support.waiting import wait_until

RECORDS = [{"id": 1}, {"id": 2, "boom": True}, {"id": 3}, {"id": 4, "boom": True}, {"id": 5}]


def raising_dag(tmp: Path, calculator: str = "tests.support.userclasses.RaisingCalculator") -> dict[str, Any]:
    return {
        "name": "fixme", "dead_letter": f"file://{tmp}/dead.jsonl", "checkpoint": {"every_epochs": 1},
        "subscribers": [{"name": "in", "config": {"source": f"file://{tmp}/in.jsonl"}}],
        "publishers": [{"name": "out", "config": {"destination": f"file://{tmp}/out.jsonl"}}],
        "calculators": [{"name": "check", "type": calculator}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "check", "calculator": "check"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "check"}, {"from_node": "check", "to_node": "publish"}],
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    tmp = tmp_path_factory.mktemp("redrive")
    (tmp / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    with SupervisedServer(tmp, {"fixme": raising_dag(tmp)}, workers=1) as running:
        running.wait_dags("running")
        yield running


def letters(server: SupervisedServer) -> list[dict[str, Any]]:
    status, body = server.get("/api/dags/fixme/deadletters")
    assert status == 200, body
    return body["letters"]


def redriven_total(server: SupervisedServer) -> float:
    found = re.search(r'^dagserver_redriven_total\{dag="fixme",subscriber="in"[^}]*\} (\S+)$', server.metrics(),
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_dead_letters_are_listed_then_redriven_once_the_calculator_is_fixed(server: SupervisedServer) -> None:
    tmp = server.tmp
    assert wait_until(lambda: len(letters(server)) == 2, timeout=20), server.log()[-2000:]
    found = letters(server)
    assert [(d["id"], d["node"], d["subscriber"], d["record"]) for d in found] == [
        ("0", "check", "in", {"id": 2, "boom": True}), ("1", "check", "in", {"id": 4, "boom": True})]
    assert all("boom in check" in d["error"] and d["dag"] == "fixme" and d["time"] for d in found)
    server.wait_lines(tmp / "out.jsonl", 2)
    assert [r["id"] for r in read_jsonl(tmp / "out.jsonl")] == [1, 3, 5]

    # the wrong bodies and roles first: nothing is redriven by them
    assert server.request("POST", "/api/dags/fixme/deadletters/redrive", body={"all": True}, auth="operator")[0] == 403
    assert server.request("POST", "/api/dags/fixme/deadletters/redrive", body={"ids": []})[0] == 400
    assert server.request("POST", "/api/dags/nope/deadletters/redrive", body={"all": True})[0] == 404

    # fix the calculator in the DAG file, reload the DAG
    dag_file = server.dag_dir / "fixme.json"
    dag_file.write_text(json.dumps(raising_dag(tmp, "tests.support.userclasses.DropFilterCalculator")))
    status, body = server.post("/api/dags/fixme/reload")
    assert status == 200, body
    server.wait_dags("running", ["fixme"])

    status, body = server.request("POST", "/api/dags/fixme/deadletters/redrive", body={"all": True})
    assert status == 200, body
    assert (body["redriven"], body["by_subscriber"], body["skipped"]) == (2, {"in": 2}, [])
    server.wait_lines(tmp / "out.jsonl", 4)
    assert sorted(r["id"] for r in read_jsonl(tmp / "out.jsonl")) == [1, 2, 3, 4, 5]  # each redriven once more
    assert wait_until(lambda: redriven_total(server) == 2, timeout=10), server.metrics()
    assert len(letters(server)) == 2  # nothing new failed; the store is left as it was

    status, body = server.request("POST", "/api/dags/fixme/deadletters/redrive", body={"ids": ["1", "9"]})
    assert status == 200 and (body["redriven"], body["unknown"]) == (1, ["9"]), body
    assert wait_until(lambda: redriven_total(server) == 3, timeout=10)


def test_changes_are_audited_and_only_admins_read_the_log(server: SupervisedServer) -> None:
    assert server.request("POST", "/api/dags/fixme/suspend", auth="operator")[0] == 200
    assert server.request("POST", "/api/dags/fixme/resume", auth="operator")[0] == 200
    assert server.request("POST", "/api/dags/fixme/stop", auth="viewer")[0] == 403
    status, body = server.request("GET", "/api/audit", auth="viewer")
    assert status == 403, body
    assert server.request("GET", "/api/audit", auth="operator")[0] == 403
    status, body = server.get("/api/audit")
    assert status == 200, body
    seen = [(e["user"], e["role"], e["action"], e["target"], e["outcome"]) for e in body["entries"]]
    assert ("operator", "operator", "POST /api/dags/fixme/suspend", "fixme", "ok") in seen
    assert ("operator", "operator", "POST /api/dags/fixme/resume", "fixme", "ok") in seen
    assert any(s[:4] == ("viewer", "viewer", "POST /api/dags/fixme/stop", "fixme") and s[4].startswith("refused")
               for s in seen), seen
    assert all({"time", "user", "role", "action", "target", "outcome"} <= set(e) for e in body["entries"])
    path = server.state_dir / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert all(token not in text for token in server.tokens.values()) and "pw-" not in text


def test_user_commands_are_audited_without_their_password(server: SupervisedServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(DAGSERVER), "user", "add", "carol", "--role", "viewer", "-c", str(server.config_path)],
                          input="s3cret-pass\n", text=True, capture_output=True, env=env, cwd=server.tmp, timeout=60)
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in (server.state_dir / "audit.jsonl").read_text().splitlines()]
    last = entries[-1]
    assert (last["action"], last["target"], last["outcome"], last["role"]) == ("user add", "carol", "ok", "cli")
    assert "s3cret-pass" not in (server.state_dir / "audit.jsonl").read_text()


def test_the_cli_shows_and_redrives_through_the_api(server: SupervisedServer) -> None:
    def cli(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DAGSERVER_TOKEN", None)
        if token is not None:
            env["DAGSERVER_TOKEN"] = token
        return subprocess.run([str(DAGSERVER), "deadletters", *args, "-c", str(server.config_path)], text=True,
                              capture_output=True, env=env, cwd=server.tmp, timeout=60)

    shown = cli("show", "fixme", token=server.tokens["viewer"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["0", "node check"], ["1", "node check"]]
    assert json.loads(lines[0].split("\t")[3]) == {"id": 2, "boom": True}
    refused = cli("redrive", "fixme", "--all", token=server.tokens["viewer"])
    assert refused.returncode == 1 and "403" in refused.stderr, refused.stderr
    before = redriven_total(server)
    done = cli("redrive", "fixme", "--ids", "0", token=server.tokens["admin"])
    assert done.returncode == 0 and json.loads(done.stdout)["redriven"] == 1, done.stderr
    assert wait_until(lambda: redriven_total(server) == before + 1, timeout=10)
    missing = cli("show", "fixme", token=None)
    assert missing.returncode == 2 and "DAGSERVER_TOKEN" in missing.stderr
    assert cli("show", "nope", token=server.tokens["viewer"]).returncode == 1
