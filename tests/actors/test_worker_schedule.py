"""The worker's periodic schedule check, with the worker's clock under the test's control: a DAG on an
XNYS schedule deployed and started as the supervisor does it, closed at 16:00 on its lane and opened from
its checkpoint on the next session (over a weekend and the clocks going back)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from actors.runtime import RUNNING, SUSPENDED
from actors.worker import Worker
from adapters.builtin.mem import get_queue, mem_drain, mem_put, mem_size, reset_mem_broker
from tests.actors.test_runtime_lifecycle import passthru_dag

NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_mem_broker()
    yield
    reset_mem_broker()


def checked(worker: Worker) -> None:
    """Run one round of schedule checks and wait until each DAG's lane has done it."""
    worker.check_windows()
    for pending in list(worker._window_checks.values()):
        pending.result(timeout=30)


def test_the_worker_closes_and_opens_a_dag_on_its_clock(tmp_path: Path) -> None:
    now = [datetime(2026, 10, 30, 15, 0, tzinfo=NY)]             # Friday before the clocks go back
    frames: list[Any] = []
    worker = Worker(0, str(tmp_path), 5, 60.0, frames.append, clock=lambda: now[0])
    dag = passthru_dag("mem://queue/a", "mem://queue/b", schedule={
        "timezone": "America/New_York", "calendar": "XNYS", "windows": [{"start": "0930", "end": "1600"}]})
    try:
        worker.handle("deploy", {"raw": dict(dag.raw), "path": "life.json"})
        worker.handle("start", {"name": "life"})
        runtime = worker.runtimes["life"]
        assert runtime.state == RUNNING
        mem_put("a", [{"n": 1}])
        assert get_queue("b").wait_for(lambda q: len(q) >= 1, timeout=10)

        now[0] = datetime(2026, 10, 30, 16, 0, tzinfo=NY)
        checked(worker)
        assert runtime.state == SUSPENDED and runtime._ctx is None
        assert runtime.reason == "outside its time window until 2026-11-02T09:30:00-05:00"  # Monday, standard time
        mem_put("a", [{"n": 1}, {"n": 2}])
        now[0] = datetime(2026, 11, 1, 12, 0, tzinfo=NY)           # Sunday
        checked(worker)
        assert runtime.state == SUSPENDED and mem_size("a") == 2

        now[0] = datetime(2026, 11, 2, 9, 30, tzinfo=NY)
        checked(worker)
        assert runtime.state == RUNNING
        assert get_queue("b").wait_for(lambda q: len(q) >= 2, timeout=10)
        assert mem_drain("b") == [{"n": 1}, {"n": 2}]              # {"n": 1} is the checkpointed output
    finally:
        worker.shutdown(10)
