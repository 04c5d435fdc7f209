"""A DAG file with ``${DB_HOST:-localhost}`` and ``${file:...}`` passes ``check``, runs on a real server, and
its views (the API's config and details, the DAG page) show ``***`` where the templates were (SPEC §14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_a_templated_dag_checks_runs_and_is_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    with SupervisedServer(tmp_path / "server", {"tpl": doc}, env=env, shutdown_timeout=5) as server:
        server.wait_dags("running")
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
