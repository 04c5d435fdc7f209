"""A DAG on an XNYS schedule in one process: at the window's end it is stopped like an operator's stop
(drained, checkpointed, torn down) and left suspended; at the next session's start it is built again
from that checkpoint. The clock is the ``now`` given to each check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from actors.checkpoint import checkpoint_path, read_checkpoint
from actors.runtime import RUNNING, STOPPED, SUSPENDED, DagRuntime
from adapters.builtin.mem import get_queue, mem_drain, mem_put, mem_size, reset_mem_broker
from graphs.schedule import DAY_NAMES
from tests.actors.test_engine_rules import ENGINES, chain, replay
from tests.actors.test_runtime_lifecycle import passthru_dag

NY = ZoneInfo("America/New_York")
MARKET = {"timezone": "America/New_York", "calendar": "XNYS", "windows": [{"start": "0930", "end": "1600"}]}


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_mem_broker()
    yield
    reset_mem_broker()


def ny(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NY)


def test_closed_at_the_window_end_and_rebuilt_from_its_checkpoint_at_the_next_session(tmp_path: Path) -> None:
    runtime = DagRuntime(passthru_dag("mem://queue/a", "mem://queue/b", schedule=MARKET), state_dir=tmp_path)
    runtime.start(now=ny(11, 25, 12))                            # Wednesday, in session
    assert runtime.state == RUNNING
    assert runtime.next_times(ny(11, 25, 12)) == (ny(11, 27, 9, 30), ny(11, 25, 16))
    mem_put("a", [{"n": 1}])
    assert get_queue("b").wait_for(lambda q: len(q) >= 1, timeout=10)
    first = runtime._ctx

    runtime.check_window(ny(11, 25, 16))                         # the close: a stop, with its checkpoint
    assert runtime.state == SUSPENDED and runtime._ctx is None
    assert runtime.reason.startswith("outside its time window until 2026-11-27T09:30:00-05:00")
    saved = read_checkpoint(checkpoint_path(tmp_path, "life"))
    assert saved is not None

    mem_put("a", [{"n": 1}, {"n": 2}])
    for closed in (ny(11, 25, 20), ny(11, 26, 12), ny(11, 27, 9, 29)):  # the night, Thanksgiving, before the bell
        runtime.check_window(closed)
        assert runtime.state == SUSPENDED and runtime._ctx is None
    assert mem_size("a") == 2                                    # nothing read while closed

    runtime.check_window(ny(11, 27, 9, 30))                      # Friday's session opens
    assert runtime.state == RUNNING and runtime._ctx is not None and runtime._ctx is not first
    assert get_queue("b").wait_for(lambda q: len(q) >= 2, timeout=10)
    # {"n": 1} equals the output restored from the checkpoint, so it is not published again (records are
    # published in order: without the restore, the second record in "b" would be {"n": 1})
    assert mem_drain("b") == [{"n": 1}, {"n": 2}]
    assert runtime.stats.nodes["ingest"].computes == 3

    runtime.suspend()                                            # an operator's suspend outlasts the window
    runtime.check_window(ny(11, 27, 16))
    runtime.check_window(ny(11, 30, 10))
    assert runtime.state == SUSPENDED and "by request" in runtime.reason
    assert runtime.stop(timeout=10)
    runtime.check_window(ny(12, 1, 10))                          # and a stopped DAG stays stopped
    assert runtime.state == STOPPED


def test_started_outside_its_schedule_it_waits_then_runs(tmp_path: Path) -> None:
    runtime = DagRuntime(passthru_dag("mem://queue/a", "mem://queue/b", schedule=MARKET), state_dir=tmp_path)
    runtime.start(now=ny(11, 28, 12))                            # Saturday
    assert runtime.state == SUSPENDED
    mem_put("a", [{"n": 5}])
    runtime.check_window(ny(11, 29, 23))
    assert runtime.state == SUSPENDED and mem_size("a") == 1
    runtime.check_window(ny(11, 30, 9, 30))
    assert runtime.state == RUNNING
    assert get_queue("b").wait_for(lambda q: len(q) >= 1, timeout=10)
    assert runtime.stop(timeout=10)


def test_replay_ignores_the_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    later = datetime.now(UTC) + timedelta(days=2)  # a weekday whose whole day is not now
    dag = chain([], [])
    dag["schedule"] = {"timezone": "UTC", "days": [DAY_NAMES[later.weekday()]]}
    events = [{"subscriber": "s", "record": {"a": 1}}]
    for engine in ENGINES:
        assert replay(tmp_path, dag, events, engine, capsys) == [{"publisher": "out", "record": {"a": 1}}], engine
