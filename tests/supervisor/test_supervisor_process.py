"""The supervisor with real worker processes and real signals (SPEC §4, §5).

Each test runs ``dagserver serve`` on small metronome DAGs writing JSON lines into
``tmp_path``, so the output of every DAG can be watched while workers are killed,
stopped, crash-looped or shut down.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.support.supervised import ROOT, SupervisedServer, group_members, line_count, metronome_dag, process_gone
from tests.support.waiting import wait_until

REPLACED_WITHIN = 3.0  # seconds from a worker's death to its replacement (the bound)


def two_dags(tmp_path: Path) -> dict[str, dict]:
    """``steady0`` pinned to worker 0 and ``steady1`` pinned to worker 1."""
    return {name: metronome_dag(name, tmp_path / f"{name}.jsonl", worker=int(name[-1]))
            for name in ("steady0", "steady1")}


def assert_replaced(server: SupervisedServer, worker_id: int, old_pid: int, restarts: int,
                    timeout: float) -> dict:
    """Wait until worker ``worker_id`` runs as a new, live process with ``restarts`` restarts."""
    def replaced() -> bool:
        info = server.worker(worker_id)
        return info["pid"] != old_pid and info["alive"] and info["restarts"] >= restarts

    assert wait_until(replaced, timeout=timeout, interval=0.05), (server.workers(), server.log()[-3000:])
    info = server.worker(worker_id)
    assert info["restarts"] == restarts
    assert not process_gone(info["pid"])
    return info


def test_a_killed_worker_is_replaced_and_its_dags_carry_on(tmp_path: Path) -> None:
    with SupervisedServer(tmp_path, two_dags(tmp_path)) as server:
        server.wait_dags("running")
        server.wait_lines(tmp_path / "steady0.jsonl", 3)
        victim, bystander = server.worker(0), server.worker(1)
        assert (victim["restarts"], victim["dags"]) == (0, ["steady0"])

        os.kill(victim["pid"], signal.SIGKILL)
        assert_replaced(server, 0, victim["pid"], restarts=1, timeout=REPLACED_WITHIN)
        assert wait_until(lambda: process_gone(victim["pid"]), timeout=5)

        server.wait_dags("running", ["steady0"])
        after_restart = line_count(tmp_path / "steady0.jsonl")
        server.wait_lines(tmp_path / "steady0.jsonl", after_restart + 2)
        assert server.worker(1) == bystander  # the other worker never noticed
        assert server.dag("steady1")["state"] == "running"


def test_a_stopped_worker_is_taken_for_hung_and_replaced(tmp_path: Path) -> None:
    with SupervisedServer(tmp_path, two_dags(tmp_path), heartbeat_timeout=1.5) as server:
        server.wait_dags("running")
        victim = server.worker(1)
        assert victim["restarts"] == 0
        os.kill(victim["pid"], signal.SIGSTOP)
        try:
            # The API answers while the worker is frozen, and the freeze is noticed.
            assert_replaced(server, 1, victim["pid"], restarts=1, timeout=1.5 + 10)
            assert wait_until(lambda: process_gone(victim["pid"]), timeout=5)
        finally:
            if not process_gone(victim["pid"]):
                os.kill(victim["pid"], signal.SIGCONT)
                os.kill(victim["pid"], signal.SIGKILL)
        server.wait_dags("running", ["steady1"])
        after_restart = line_count(tmp_path / "steady1.jsonl")
        server.wait_lines(tmp_path / "steady1.jsonl", after_restart + 2)
        assert server.worker(0)["restarts"] == 0
        assert "sent no heartbeat" in server.log()


SLOW_WORKER_START = """\
import sys
import time

if "--multiprocessing-fork" in sys.argv:  # a worker process, not the supervisor: start slowly
    time.sleep({seconds})
"""


def test_a_worker_slow_to_start_is_not_taken_for_hung(tmp_path: Path) -> None:
    """Each worker needs longer to start (an interpreter importing the server on a loaded machine)
    than heartbeat_timeout allows between two beats: before its first heartbeat it is given
    START_TIMEOUT, so neither is killed (both were, over and over, before)."""
    slow = tmp_path / "slow_start"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_WORKER_START.format(seconds=1.5 * 3))
    path = os.pathsep.join([str(slow), str(ROOT)])
    with SupervisedServer(tmp_path, two_dags(tmp_path), heartbeat_timeout=1.5, env={"PYTHONPATH": path}) as server:
        server.wait_dags("running")
        lines = line_count(tmp_path / "steady1.jsonl")
        server.wait_lines(tmp_path / "steady1.jsonl", lines + 3)
        assert [server.worker(i)["restarts"] for i in (0, 1)] == [0, 0]
        assert "heartbeat" not in server.log()


def test_a_stalled_supervisor_does_not_take_its_workers_for_hung(tmp_path: Path) -> None:
    """The supervisor itself frozen (SIGSTOP) longer than heartbeat_timeout: on waking, the silence
    it saw is its own, not the workers'; none is killed."""
    with SupervisedServer(tmp_path, two_dags(tmp_path), heartbeat_timeout=1.5) as server:
        server.wait_dags("running")
        before = [server.worker(i) for i in (0, 1)]
        os.kill(server.pid, signal.SIGSTOP)  # the supervisor alone, not its workers' process group
        try:
            time.sleep(1.5 * 2.5)  # the freeze itself must outlast heartbeat_timeout: a duration, not an event
        finally:
            os.kill(server.pid, signal.SIGCONT)
        lines = line_count(tmp_path / "steady1.jsonl")
        server.wait_lines(tmp_path / "steady1.jsonl", lines + 5)  # the supervisor looked again, several times
        assert [server.worker(i)["pid"] for i in (0, 1)] == [w["pid"] for w in before]
        assert [server.worker(i)["restarts"] for i in (0, 1)] == [0, 0]
        assert "sent no heartbeat" not in server.log()


def test_a_crash_loop_fails_that_workers_dags_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "steady.jsonl"
    dags = {
        "steady": metronome_dag("steady", out, worker=0),
        "crasher": metronome_dag("crasher", tmp_path / "crasher.jsonl", worker=1,
                                 calculator={"name": "bomb", "type": "tests.support.userclasses.ExitingCalculator",
                                             "config": {"code": 3}}),
    }
    with SupervisedServer(tmp_path, dags, max_restarts=2, within_seconds=120) as server:
        assert wait_until(lambda: server.states()["crasher"] == "failed", timeout=30, interval=0.05), \
            (server.states(), server.log()[-3000:])
        crasher = server.dag("crasher")
        assert "budget" in crasher["reason"]
        assert "exited with code 3" in crasher["reason"]

        failed_worker = server.worker(1)
        assert failed_worker["alive"] is False
        assert failed_worker["restarts"] == 2
        assert "budget" in failed_worker["failed"]
        assert process_gone(failed_worker["pid"])

        # The supervisor still serves, and says it is degraded.
        status, health = server.get("/healthz")
        assert status == 503
        assert (health["status"], health["workers_down"]) == ("degraded", [1])
        assert 'dagserver_dag_state{dag="crasher",worker="1",state="failed"} 1' in server.metrics()
        status, _ = server.post("/api/dags/crasher/resume")
        assert status == 409

        # The DAG on the healthy worker was never disturbed and keeps publishing.
        assert server.worker(0)["restarts"] == 0
        assert server.dag("steady")["state"] == "running"
        server.wait_lines(out, line_count(out) + 3)
        assert not (tmp_path / "crasher.jsonl").exists() or line_count(tmp_path / "crasher.jsonl") == 0

        # An operator's start gives the worker a fresh budget: it comes back (and crashes again).
        status, _ = server.post("/api/dags/crasher/start")
        assert status == 200
        assert wait_until(lambda: server.worker(1)["restarts"] > 2, timeout=10), server.workers()
        assert server.worker(1)["pid"] != failed_worker["pid"]
        assert wait_until(lambda: server.states()["crasher"] == "failed", timeout=30, interval=0.05)


def test_sigterm_drains_every_worker_and_exits_0(tmp_path: Path) -> None:
    shutdown_timeout = 8.0
    dags = two_dags(tmp_path)
    with SupervisedServer(tmp_path, dags, shutdown_timeout=shutdown_timeout) as server:
        server.wait_dags("running")
        # Replace worker 0 first: a restarted worker must shut down as cleanly as an original one.
        victim = server.worker(0)
        os.kill(victim["pid"], signal.SIGKILL)
        assert_replaced(server, 0, victim["pid"], restarts=1, timeout=REPLACED_WITHIN)
        server.wait_dags("running")
        for name in dags:
            server.wait_lines(tmp_path / f"{name}.jsonl", line_count(tmp_path / f"{name}.jsonl") + 3)
        worker_pids = {w["pid"] for w in server.workers()} | {victim["pid"]}

        code = server.terminate(timeout=shutdown_timeout)
        assert code == 0, server.log()[-3000:]
        log = server.log()
        assert "did not finish in time" not in log and "did not stop in time" not in log, log[-3000:]

        for name in dags:
            data = (tmp_path / f"{name}.jsonl").read_bytes()
            assert data.endswith(b"\n"), f"{name}: the last line is partial"
            records = [json.loads(line) for line in data.decode().splitlines()]
            assert len(records) > 3
            assert all(r["message"] == name and isinstance(r["tick"], int) for r in records)

        assert all(process_gone(pid) for pid in worker_pids)
        assert wait_until(lambda: group_members(server.pid) == [], timeout=5), group_members(server.pid)


def test_sigint_is_a_graceful_shutdown_too(tmp_path: Path) -> None:
    out = tmp_path / "only.jsonl"
    with SupervisedServer(tmp_path, {"only": metronome_dag("only", out)}, workers=1, shutdown_timeout=5) as server:
        server.wait_dags("running")
        server.wait_lines(out, 2)
        pids = [w["pid"] for w in server.workers()]
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(5) == 0
        assert out.read_bytes().endswith(b"\n")
        assert all(process_gone(pid) for pid in pids)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    with SupervisedServer(tmp_path, two_dags(tmp_path)) as server:
        server.wait_dags("running")
        worker_pids = [w["pid"] for w in server.workers()]
        os.kill(server.pid, signal.SIGKILL)  # no chance to shut anything down
        assert wait_until(lambda: all(process_gone(pid) for pid in worker_pids), timeout=10), worker_pids
