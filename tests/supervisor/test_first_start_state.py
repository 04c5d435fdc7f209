"""A DAG started for the first time is ``starting`` until its runtime reports running (SPEC §7), not
``restarting``, which says something went wrong; on a real server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.supervised import SupervisedServer, metronome_dag
from tests.support.waiting import wait_until


def test_a_freshly_added_dag_is_starting_until_it_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    dag = metronome_dag("slow_open", tmp_path / "out.jsonl")
    dag["publishers"][0]["config"] = {"destination": "custom://tests.support.useradapters.GatedOpenSink",
                                      "gate": str(gate), "timeout": 20}
    with SupervisedServer(tmp_path, {}, workers=1) as server, ThreadPoolExecutor(1) as pool:
        added = pool.submit(server.request, "POST", "/api/dags", timeout=40, body=dag)  # answers once it runs
        assert wait_until(lambda: "slow_open" in server.states(), timeout=10)
        shown = server.dag("slow_open")
        assert shown["state"] == "starting" and "restart" not in shown["reason"], shown
        assert 'dagserver_dag_state{dag="slow_open",worker="0",state="starting"} 1' in server.metrics()
        gate.touch()
        status, body = added.result(timeout=40)
        assert status == 201, body
        server.wait_dags("running")
        assert server.dag("slow_open")["reason"] == ""


def test_a_dag_file_found_at_start_up_is_starting_too(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    dag = metronome_dag("slow_boot", tmp_path / "out.jsonl")
    dag["publishers"][0]["config"] = {"destination": "custom://tests.support.useradapters.GatedOpenSink",
                                      "gate": str(gate), "timeout": 20}
    with SupervisedServer(tmp_path, {"slow_boot": dag}, workers=1) as server:
        assert wait_until(lambda: server.states() == {"slow_boot": "starting"}, timeout=10), server.states()
        assert "restarting" not in str(server.dag("slow_boot")["reason"])
        gate.touch()
        server.wait_dags("running")
