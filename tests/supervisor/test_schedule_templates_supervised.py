"""On a real server (SPEC §14): a DAG file with ``${DB_HOST:-localhost}`` and ``${file:...}`` passes ``check``,
runs, and its views (the API's config and details, the DAG page) show ``***`` where the templates were; a DAG
whose schedule is closed waits suspended, and the API and the DAG page give its next start and stop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from graphs.schedule import DAY_NAMES
from supervision.check import run_check
from tests.support.supervised import SupervisedServer, metronome_dag, read_jsonl

SECRET = "pa55-Wörd-from-a-file"


def templated_dag(out_dir: Path, secret_file: Path) -> dict:
    dag = metronome_dag("tpl", out_dir / "tpl.jsonl",
                        calculator={"name": "stamp", "type": "ApplyDefaultsCalculator",
                                    "config": {"defaults": {"host": "${DB_HOST:-localhost}",
                                                            "token": f"${{file:{secret_file}}}",
                                                            "price": "$$5 is $5"}}})
    dag["publishers"][0]["config"]["destination"] = "file://${TPL_OUT}/tpl.jsonl"
    return dag


def test_templated_and_scheduled_dags_on_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    doc = templated_dag(out_dir, secret_file)
    monkeypatch.delenv("DB_HOST", raising=False)
    monkeypatch.setenv("TPL_OUT", str(out_dir))
    checked = tmp_path / "tpl.json"
    checked.write_text(json.dumps(doc))
    assert run_check([str(checked)]) == 0

    env = {"TPL_OUT": str(out_dir)}
    later = datetime.now(UTC) + timedelta(days=2)  # a day whose whole-day window is not open now
    waiting = metronome_dag("waiting", out_dir / "waiting.jsonl",
                            schedule={"timezone": "UTC", "days": [DAY_NAMES[later.weekday()]]})
    with SupervisedServer(tmp_path / "server", {"tpl": doc, "waiting": waiting}, env=env, shutdown_timeout=5) as server:
        server.wait_dags("running", ["tpl"])
        server.wait_dags("suspended", ["waiting"])
        summary = {d["name"]: d for d in server.get_ok("/api/dags")}["waiting"]
        start, stop = (datetime.fromisoformat(summary[k]) for k in ("next_start", "next_stop"))
        assert start == datetime(later.year, later.month, later.day, tzinfo=UTC) and stop == start + timedelta(days=1)
        assert summary["next_start"].endswith("+00:00")
        details = server.get_ok("/api/dags/waiting")
        assert (details["next_start"], details["next_stop"]) == (summary["next_start"], summary["next_stop"])
        assert details["reason"].startswith("outside its time window")
        assert read_jsonl(out_dir / "waiting.jsonl") == []  # built, never read
        status, page = server.request("GET", "/dags/waiting")
        assert status == 200 and f"next start {summary['next_start']}" in page
        assert {d["name"]: d for d in server.get_ok("/api/dags")}["tpl"]["next_start"] is None
        server.wait_lines(out_dir / "tpl.jsonl", 1)
        record = read_jsonl(out_dir / "tpl.jsonl")[0]
        assert (record["host"], record["token"], record["price"]) == ("localhost", SECRET, "$$5 is $5")

        status, details = server.get("/api/dags/tpl")
        assert status == 200
        defaults = details["config"]["calculators"][0]["config"]["defaults"]
        assert defaults == {"host": "***", "token": "***", "price": "$$5 is $5"}
        assert details["config"]["publishers"][0]["config"]["destination"] == "file://***/tpl.jsonl"
        assert details["publishers"]["sink"]["destination"] == "file://***/tpl.jsonl"
        assert SECRET not in json.dumps(details) and str(out_dir) not in json.dumps(details)

        status, page = server.request("GET", "/dags/tpl")
        assert status == 200 and isinstance(page, str)
        assert "***" in page and SECRET not in page and str(out_dir) not in page
