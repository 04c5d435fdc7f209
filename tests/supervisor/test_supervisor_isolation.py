"""One DAG's trouble never reaches another, with real processes (SPEC §4 Isolation, §7, §8).

* stopping a DAG whose sink takes 8 s per write, on the worker that also runs a metronome
  DAG: the stop answers within ``shutdown_timeout`` (``stopped``, the reason says it was not
  clean), the worker is not taken for hung (same pid, no restart) and the metronome DAG's
  output keeps growing; the stopped DAG stays stopped;
* the supervisor keeps the newest snapshot of a DAG: a late heartbeat from before a stop's
  reply, or anything from a dead worker's connection, never overwrites it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import multiprocess

from actors.control import HEARTBEAT, REPLY, pack
from supervision.config import ServerConfig
from supervision.workers import WorkerHandle, WorkerPool
from tests.support.supervised import SupervisedServer, line_count, metronome_dag
from tests.support.waiting import wait_until

SHUTDOWN_TIMEOUT = 3.0


def slow_dag(name: str) -> dict:
    dag = metronome_dag(name, Path("/dev/null"), worker=0)
    dag["publishers"] = [{"name": "sink", "config": {"destination": "custom://tests.support.useradapters.SlowSink",
                                                     "delay": 8}}]
    return dag


def test_stopping_a_dag_stuck_in_a_slow_sink_touches_nothing_else(tmp_path: Path) -> None:
    clock_out = tmp_path / "clock.jsonl"
    dags = {"slow": slow_dag("slow"), "clock": metronome_dag("clock", clock_out, worker=0)}
    with SupervisedServer(tmp_path, dags, workers=1, heartbeat_timeout=1.0,
                          shutdown_timeout=SHUTDOWN_TIMEOUT) as server:
        server.wait_dags("running")
        server.wait_lines(clock_out, 3)
        assert wait_until(lambda: server.dag("slow")["publishers"]["sink"]["status"] == "connected")
        pid = server.worker(0)["pid"]

        started = time.monotonic()
        status, body = server.post("/api/dags/slow/stop")
        answered = time.monotonic() - started
        assert status == 200, body
        assert answered < SHUTDOWN_TIMEOUT + 2.0, answered  # the deadline plus the teardown's grace
        assert body["state"] == "stopped"
        assert "without finishing" in body["reason"], body

        # several heartbeat timeouts later the worker is the same and the clock still ticks
        for _ in range(3):
            server.wait_lines(clock_out, line_count(clock_out) + 10)
        worker = server.worker(0)
        assert (worker["pid"], worker["restarts"], worker["alive"]) == (pid, 0, True)
        assert server.states() == {"slow": "stopped", "clock": "running"}
        assert "hung" not in server.log()


def test_the_newest_snapshot_of_a_dag_wins_whatever_arrives_last() -> None:
    pool = WorkerPool(ServerConfig(workers=1))
    ours, theirs = multiprocess.Pipe(duplex=True)
    handle = WorkerHandle(0, conn=ours)
    thread = threading.Thread(target=pool._read, args=(handle, ours, handle.pending), daemon=True)
    thread.start()
    future = pool.request_async(handle, "stop", {"name": "d"})
    request_id = next(iter(handle.pending))
    theirs.recv_bytes()  # the request
    # the stop's reply (snapshot 11) overtakes a heartbeat taken before it (snapshot 10)
    theirs.send_bytes(pack([REPLY, request_id, True, {"state": "stopped"}, 11]))
    theirs.send_bytes(pack([HEARTBEAT, 10, {"d": {"state": "running"}}]))
    ok, payload, seq, conn = future.result(5)
    assert (ok, seq, conn is ours) == (True, 11, True)
    with pool.lock:
        assert pool.store(handle, conn, "d", payload, seq)
    theirs.send_bytes(pack([HEARTBEAT, 12, {"e": {"state": "running"}}]))  # a marker: everything before is read
    assert wait_until(lambda: "e" in handle.details)
    assert handle.details["d"] == {"state": "stopped"}
    # a reply that comes from a connection that is no longer the worker's is dropped
    with pool.lock:
        assert not pool.store(handle, theirs, "d", {"state": "running"}, 99)
    assert handle.details["d"] == {"state": "stopped"}
    theirs.close()
    thread.join(5)
