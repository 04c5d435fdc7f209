"""Exactly-once file output under kill -9 (SPEC §12): the worker dies 5 times, the file holds each line once.

The DAG of :mod:`tests.supervisor.test_state_kill9` (a file source, a counting calculator publishing
one line per record to a file sink, an aggregate publishing per-name sums) runs under a real
``dagserver serve``; worker 0 is SIGKILLed five times, each just after a checkpoint landed. The
checkpoint records each file sink's length at the epoch it covers, and a restarted sink cuts its
file back to that length before the replay writes on, so both files end equal, byte for byte, to
what the run without crashes (the reference evaluator) writes.

Size: ``FILE_SINK_KILL_RECORDS`` records (default 200,000, the size of the state test).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adapters.builtin.file import dumps_line
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.supervisor.test_state_kill9 import KILLS, SLOW, kill_after_a_checkpoint, node_output, record, state_dag
from tests.support.supervised import SupervisedServer, line_count
from tests.support.waiting import wait_until

N = int(os.environ.get("FILE_SINK_KILL_RECORDS", "200000"))


def test_file_sink_writes_each_line_once_across_five_kill_9s(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    with open(source, "w") as fh:
        fh.writelines(json.dumps(record(i)) + "\n" for i in range(N))
    counts, sums = tmp_path / "counts.jsonl", tmp_path / "sums.jsonl"
    dag = state_dag({"source": f"file://{source}"}, counts, sums)
    reference = ReferenceEvaluator(load_dag_dict(dag))  # the run without crashes
    expected: dict[str, list[str]] = {"counts": [], "sums": []}
    for i in range(N):
        for publisher, out in reference.ingest("in", record(i)):
            expected[publisher].append(dumps_line(out))
    with SupervisedServer(tmp_path, {"exactly": dag}, workers=2, shutdown_timeout=30, max_restarts=20,
                          within_seconds=600, heartbeat_timeout=10) as server:
        for _kill in range(KILLS):
            kill_after_a_checkpoint(server, N)
        assert wait_until(lambda: node_output(server, "ingest").get("id") == N - 1, timeout=3 * SLOW,
                          interval=0.1), server.log()[-3000:]
        assert wait_until(lambda: line_count(counts) >= N and line_count(sums) >= N, timeout=SLOW,
                          interval=0.1), (line_count(counts), line_count(sums), server.log()[-2000:])
        server.wait_dags("running", ["exactly"], timeout=SLOW)
        restarts = server.worker(0)["restarts"]
    assert restarts == KILLS
    assert line_count(counts) == N, f"{line_count(counts)} lines for {N} records"
    assert counts.read_text() == "".join(expected["counts"])
    assert sums.read_text() == "".join(expected["sums"])
