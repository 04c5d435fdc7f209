"""Error paths found by review: failures that must never be lost, stops that must commit,
suspensions that must hold, sinks that must not hang a stop (SPEC §2 rule 4, §4).

* a source whose reads and close both fail still restarts its DAG;
* ``sys.exit()`` in a calculator is a compute error: its DAG and its neighbours run on;
* a dead-letter sink that hangs fails the DAG after ``publish_timeout`` and never holds a stop;
* a clean stop commits what its last checkpoint covers (a mem queue gets nothing back);
* an operator's suspend holds across a restart;
* a failure that races a stop starts no new incarnation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors.restart import RestartPolicy
from actors.runtime import RUNNING, STOPPED, SUSPENDED, DagRuntime
from adapters.builtin.mem import get_queue, mem_drain, mem_put, mem_size, reset_mem_broker
from graphs.loader import load_dag_dict
from tests.support.useradapters import BrokenConnectionSource, HangingSink
from tests.support.waiting import wait_until


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_mem_broker()
    HangingSink.release.clear()
    yield
    HangingSink.release.set()
    reset_mem_broker()


def chain(name: str = "rev", source: str = "mem://queue/in", destination: str = "mem://queue/out",
          calculator: dict[str, Any] | None = None, source_config: dict[str, Any] | None = None,
          publisher_config: dict[str, Any] | None = None, **extra: Any) -> Any:
    ingest: dict[str, Any] = {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"}
    if calculator:
        ingest["calculator"] = calculator["name"]
    return load_dag_dict({
        "name": name,
        "subscribers": [{"name": "in", "config": {"source": source, **(source_config or {})}}],
        "publishers": [{"name": "out", "config": {"destination": destination, **(publisher_config or {})}}],
        "calculators": [calculator] if calculator else [],
        "nodes": [ingest, {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
        **extra,
    })


def test_a_source_failing_to_read_and_to_close_still_restarts_its_dag() -> None:
    BrokenConnectionSource.opened = 0
    runtime = DagRuntime(chain(source="custom://tests.support.useradapters.BrokenConnectionSource"),
                         restart=RestartPolicy(max_restarts=100, base_delay=0.01))
    runtime.start()
    assert wait_until(lambda: runtime.stats.actor_restarts >= 2 and BrokenConnectionSource.opened >= 3)
    runtime.stop(timeout=5)


def test_sys_exit_in_a_calculator_is_an_error_and_nobody_stops() -> None:
    exiting = {"name": "bye", "type": "tests.support.userclasses.SysExitCalculator"}
    culprit = DagRuntime(chain("culprit", "mem://queue/c_in", "mem://queue/c_out", exiting))
    neighbour = DagRuntime(chain("neighbour", "mem://queue/n_in", "mem://queue/n_out"))
    culprit.start()
    neighbour.start()
    mem_put("c_in", [{"n": 1, "exit": True}, {"n": 2}])
    assert get_queue("c_out").wait_for(lambda q: len(q) == 1, timeout=10)
    assert mem_drain("c_out") == [{"n": 2}]
    assert culprit.stats.nodes["ingest"].errors == 1
    assert "SystemExit" in culprit.stats.nodes["ingest"].last_errors[0]["message"]
    mem_put("n_in", [{"m": 1}])
    assert get_queue("n_out").wait_for(lambda q: len(q) == 1, timeout=10)
    assert (culprit.state, neighbour.state, culprit.stats.actor_restarts) == (RUNNING, RUNNING, 0)
    assert culprit.stop(timeout=5) and neighbour.stop(timeout=5)


def test_a_hanging_dead_letter_sink_fails_the_dag_and_never_holds_a_stop() -> None:
    dag = chain(dead_letter="custom://tests.support.useradapters.HangingSink",
                publisher_config={"publish_timeout": 0.5}, checkpoint={"every_epochs": 1})
    runtime = DagRuntime(dag, restart=RestartPolicy(max_restarts=100, base_delay=1.0, jitter=0))
    runtime.start()
    mem_put("in", [[1, 2], {"n": 1}])  # the list is rejected: a dead letter, flushed at the checkpoint
    assert wait_until(lambda: "coordinator failed: PublishTimeout" in runtime.reason, timeout=10), runtime.reason
    started = time.monotonic()
    runtime.stop(timeout=1.0)
    took = time.monotonic() - started
    assert took < 1.0 + 3.0, took  # the deadline, plus the teardown's grace per group (and a loaded machine)
    assert runtime.state == STOPPED


@pytest.mark.parametrize("round_", range(10))
def test_a_clean_stop_commits_what_its_last_checkpoint_covers(round_: int) -> None:
    runtime = DagRuntime(chain(checkpoint={"every_epochs": 3}))
    runtime.start()
    mem_put("in", [{"n": i} for i in range(37)])
    assert get_queue("out").wait_for(lambda q: len(q) == 37, timeout=10)
    assert runtime.stop(timeout=10)
    assert runtime.reason == "stopped cleanly"
    assert mem_size("in") == 0  # nothing read was given back to the queue to be read again


def test_an_operators_suspend_holds_across_a_restart() -> None:
    runtime = DagRuntime(chain(), restart=RestartPolicy(base_delay=0.01))
    runtime.start()
    runtime.suspend()
    assert runtime.state == SUSPENDED
    ctx = runtime._ctx
    assert ctx is not None
    ctx.fail("publisher:out", RuntimeError("injected"))
    assert wait_until(lambda: runtime.stats.actor_restarts == 1 and runtime.state == SUSPENDED)
    assert runtime.reason == "suspended by request"
    mem_put("in", [{"n": 1}])
    assert not get_queue("out").wait_for(lambda q: len(q) > 0, timeout=0.3)
    runtime.resume()
    assert get_queue("out").wait_for(lambda q: len(q) == 1, timeout=10)
    assert runtime.stop(timeout=5)


def test_a_dag_started_suspended_reads_nothing_until_resumed() -> None:
    runtime = DagRuntime(chain())
    mem_put("in", [{"n": 1}])
    runtime.start(suspended=True)
    assert (runtime.state, runtime.reason) == (SUSPENDED, "suspended by request")
    assert not get_queue("out").wait_for(lambda q: len(q) > 0, timeout=0.3)
    runtime.resume()
    assert get_queue("out").wait_for(lambda q: len(q) == 1, timeout=10)
    assert runtime.stop(timeout=5)


def test_a_failure_racing_a_stop_starts_nothing_new() -> None:
    runtime = DagRuntime(chain(), restart=RestartPolicy(base_delay=0.01))
    runtime.start()
    ctx = runtime._ctx
    assert ctx is not None
    ctx.stopping.set()  # as stop() does first
    ctx.fail("publisher:out", RuntimeError("injected while stopping"))
    assert ctx.drained.is_set()  # the stop's wait ends at once
    assert (runtime.state, runtime.stats.actor_restarts) == (RUNNING, 0)
    assert runtime._restarter is None
    runtime.stop(timeout=5)
    assert runtime.state == STOPPED and runtime._ctx is None


def test_an_output_msgpack_cannot_carry_is_one_error_however_many_receivers() -> None:
    odd = {"name": "odd", "type": "tests.support.userclasses.OddOutputCalculator"}
    doc = dict(chain(calculator=odd).raw)
    doc["nodes"] = [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                    {"name": "publish", "type": "PublicationNode", "publishers": ["out"], "calculator": "odd"},
                    {"name": "after"}]
    doc["edges"] = [{"from_node": "ingest", "to_node": "publish"}, {"from_node": "publish", "to_node": "after"}]
    runtime = DagRuntime(load_dag_dict(doc))
    runtime.start()
    mem_put("in", [{"a": 1}, {"a": 0}, {"a": 9}, {"a": 2}])  # one epoch: a copy, {}, too big, a copy
    assert get_queue("out").wait_for(lambda q: len(q) == 2, timeout=10)
    assert mem_drain("out") == [{"a": 1}, {"a": 2}]
    assert runtime.stats.nodes["publish"].errors == 1  # not once per receiver (child and publisher)
    assert runtime.stats.dead_letters == 1
    assert runtime.stop(timeout=5)
