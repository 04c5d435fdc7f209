"""A DAG's trouble stays its own (SPEC §4 Isolation), in one process.

* a stop draining a hung sink never blocks ``details()`` or the window check (what the
  worker's heartbeat and window threads call), and ends by its deadline, ``stopped``;
* a DAG whose actors cannot be built is ``restarting`` then ``failed`` with the reason,
  never ``running``, and leaves no thread behind;
* a publisher stuck in one write longer than ``publish_timeout`` fails, and the DAG
  restarts from its checkpoint with nothing lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.restart import RestartPolicy
from actors.runtime import FAILED, RESTARTING, RUNNING, STOPPED, DagRuntime
from adapters.builtin.mem import mem_put, reset_mem_broker
from graphs.loader import load_dag_dict
from tests.support.useradapters import HangOnceSink
from tests.support.waiting import wait_until


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_mem_broker()
    HangOnceSink.reset()
    yield
    HangOnceSink.release.set()  # let an abandoned write end
    reset_mem_broker()


def dag(source: str = "mem://queue/in", sink: str = "custom://tests.support.useradapters.HangOnceSink",
        sink_config: dict[str, Any] | None = None, **extra: Any) -> Any:
    return load_dag_dict({
        "name": "iso",
        "subscribers": [{"name": "in", "config": {"source": source}}],
        "publishers": [{"name": "out", "config": {"destination": sink, **(sink_config or {})}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
        **extra,
    })


def returns_within(call: Callable[[], Any], seconds: float) -> bool:
    """Whether ``call()`` returns within ``seconds`` (it runs on a thread of its own)."""
    done = threading.Event()
    threading.Thread(target=lambda: (call(), done.set()), daemon=True).start()
    return done.wait(seconds)


def live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def test_a_stop_draining_a_hung_sink_blocks_neither_details_nor_window_checks() -> None:
    runtime = DagRuntime(dag())
    runtime.start()
    mem_put("in", [{"n": i} for i in range(5)])
    assert HangOnceSink.hanging.wait(10)
    result: list[bool] = []
    stopper = threading.Thread(target=lambda: result.append(runtime.stop(timeout=1.5)), daemon=True)
    started = time.monotonic()
    stopper.start()
    assert wait_until(lambda: runtime._ctx is not None and runtime._ctx.stopping.is_set(), timeout=5)
    # what the heartbeat and window threads call answers while the stop waits on the sink
    assert returns_within(runtime.details, 0.5)
    assert returns_within(runtime.check_window, 0.5)
    stopper.join(10)
    assert not stopper.is_alive()
    assert time.monotonic() - started < 1.5 + 1.0  # the deadline, plus the teardown's grace
    assert result == [False]
    assert runtime.state == STOPPED
    assert "without finishing" in runtime.reason and "publisher:out" in runtime.reason


def test_a_clean_stop_says_so() -> None:
    runtime = DagRuntime(dag(sink="mem://queue/out"))
    runtime.start()
    assert runtime.stop(timeout=5)
    assert (runtime.state, runtime.reason) == (STOPPED, "stopped cleanly")


@pytest.mark.parametrize(("source", "sink", "reason"), [
    ("custom://tests.support.useradapters.ExplodingSource", "mem://queue/out", "no broker here"),
    ("mem://queue/in", "custom://tests.support.useradapters.FailingOpenSink", "connection refused"),
], ids=["source constructor raises", "sink open raises"])
def test_actors_that_cannot_be_built_end_failed_with_nothing_left(source: str, sink: str, reason: str) -> None:
    before = live_threads()
    doc = dag(source, sink)
    if "Exploding" in source:
        doc = load_dag_dict({**doc.raw, "subscribers": [
            {"name": "in", "config": {"source": source, "message": "no broker here"}}]})
    seen: set[str] = set()
    runtime = DagRuntime(doc, restart=RestartPolicy(max_restarts=2, within_seconds=60, base_delay=0.01))
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            seen.add(runtime.state)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    runtime.start()
    assert runtime.state in (RESTARTING, FAILED)  # never running with some of its actors
    assert wait_until(lambda: runtime.state == FAILED, timeout=20)
    watching.set()
    watcher.join()
    assert RUNNING not in seen
    assert "restart budget" in runtime.reason and reason in runtime.reason
    assert runtime.stats.actor_restarts == 2
    assert wait_until(lambda: live_threads() <= before, timeout=10), live_threads() - before


def test_a_publisher_stuck_longer_than_publish_timeout_fails_and_the_dag_recovers() -> None:
    runtime = DagRuntime(dag(sink_config={"publish_timeout": 0.5}, checkpoint={"every_epochs": 1}),
                         restart=RestartPolicy(base_delay=0.01))
    runtime.start()
    records = [{"n": i} for i in range(20)]
    mem_put("in", records)
    assert HangOnceSink.hanging.wait(10)
    assert wait_until(lambda: runtime.stats.actor_restarts == 1, timeout=10)
    assert wait_until(lambda: {r["n"] for r in HangOnceSink.written} == set(range(20)), timeout=10)
    assert runtime.state == RUNNING
    assert runtime.stats.publishers["out"].errors == 0  # it hung, it did not raise
    assert runtime.stop(timeout=5)
