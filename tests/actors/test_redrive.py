"""Dead letters in a worker (SPEC §13): each names the ingress record that led to it, they are read back
from the ``dead_letter`` destination with stable ids, and a redrive injects their records again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.injection import InjectionError, inject_at_subscriber
from actors.redrive import list_dead_letters, redrive
from actors.runtime import DagRuntime
from adapters.builtin.mem import get_queue, mem_put, reset_mem_broker
from graphs.loader import load_dag_dict
from tests.support.waiting import wait_until

ENVELOPE = {"dag", "node", "error", "input", "subscriber", "record", "time"}


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_mem_broker()
    yield
    reset_mem_broker()


def deep_error_dag(name: str, dead_letter: str) -> Any:
    """in → fill (adds qty) → check (raises on boom) → out; a second subscriber feeds a join first."""
    return load_dag_dict({
        "name": name, "dead_letter": dead_letter, "checkpoint": {"every_epochs": 1},
        "subscribers": [{"name": "in", "config": {"source": f"mem://queue/{name}_in"}},
                        {"name": "side", "config": {"source": f"mem://queue/{name}_side"}}],
        "publishers": [{"name": "out", "config": {"destination": f"mem://queue/{name}_out"}}],
        "calculators": [{"name": "fill", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
                        {"name": "check", "type": "tests.support.userclasses.RaisingCalculator"}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "fill"},
                  {"name": "other", "type": "SubscriptionNode", "subscriber": "side"},
                  {"name": "join"},
                  {"name": "check", "calculator": "check"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "join"}, {"from_node": "other", "to_node": "join"},
                  {"from_node": "join", "to_node": "check"}, {"from_node": "check", "to_node": "publish"}],
    })


def test_a_deep_error_names_the_ingress_record_and_its_subscriber(tmp_path: Path) -> None:
    runtime = DagRuntime(deep_error_dag("deep", f"file://{tmp_path}/dead.jsonl"))
    runtime.start()
    try:
        mem_put("deep_in", [{"id": 1}, {"id": 2, "boom": True}, {"id": 3}])
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 1, timeout=20)
        [letter] = list_dead_letters(runtime)
        assert set(letter) >= ENVELOPE
        assert letter["id"] == "0" and letter["node"] == "check" and letter["subscriber"] == "in"
        assert letter["record"] == {"id": 2, "boom": True}  # what was read, not what the node got
        assert letter["input"] == {"id": 2, "boom": True, "qty": 1}
        assert "boom in check" in letter["error"] and isinstance(letter["time"], float)
    finally:
        runtime.stop(timeout=10)


def test_redrive_injects_the_records_again_and_counts_them() -> None:
    runtime = DagRuntime(deep_error_dag("again", "mem://queue/again_dead"))
    runtime.start()
    out: list[dict] = []
    try:
        mem_put("again_in", [{"id": 1, "boom": True}, {"id": 2}, {"id": 3, "boom": True}])
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 2, timeout=20)
        assert [letter["id"] for letter in list_dead_letters(runtime)] == ["0", "1"]  # read back, not consumed
        result = redrive(runtime, ids=["0", "7"])
        assert result == {"redriven": 1, "by_subscriber": {"in": 1}, "skipped": [], "unknown": ["7"]}
        assert runtime.stats.subscribers["in"].redriven == 1
        # still raising: the redriven record is dead-lettered once more, under a new id (a record equal to
        # the latest one read would change nothing: SPEC §2, a node computes only when its input changes)
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 3, timeout=20)
        assert list_dead_letters(runtime)[2]["record"] == {"id": 1, "boom": True}
        assert redrive(runtime)["redriven"] == 3
        assert runtime.stats.subscribers["in"].redriven == 4
        assert wait_until(lambda: out.extend(get_queue("again_out").get(10, 0.01)) or [r["id"] for r in out] == [2],
                          timeout=10)
    finally:
        runtime.stop(timeout=10)


def test_injection_refuses_an_unknown_subscriber_a_non_map_and_a_stopped_dag() -> None:
    runtime = DagRuntime(deep_error_dag("refuse", "mem://queue/refuse_dead"))
    with pytest.raises(InjectionError, match="not running"):
        inject_at_subscriber(runtime, "in", [{"a": 1}])
    runtime.start()
    try:
        with pytest.raises(InjectionError, match="no subscriber 'nope'"):
            inject_at_subscriber(runtime, "nope", [{"a": 1}])
        with pytest.raises(InjectionError, match=r"records\[1\]: record is not a map but list"):
            inject_at_subscriber(runtime, "in", [{"a": 1}, [1]])
        assert inject_at_subscriber(runtime, "in", [{"id": i} for i in range(250)]) == 250
        got: list[dict] = []
        assert wait_until(lambda: got.extend(get_queue("refuse_out").get(500, 0.01)) or len(got) == 250, timeout=20)
        assert runtime.stats.subscribers["in"].records == 250
    finally:
        runtime.stop(timeout=10)


def test_a_dag_without_a_readable_dead_letter_store_says_so() -> None:
    runtime = DagRuntime(deep_error_dag("topic", "mem://topic/nowhere"))
    with pytest.raises(InjectionError, match="topic, which keeps no records"):
        list_dead_letters(runtime)



def test_a_store_shared_by_two_dags_lists_each_only_its_own(tmp_path: Path) -> None:
    shared = f"file://{tmp_path}/shared-dead.jsonl"
    first, second = DagRuntime(deep_error_dag("first", shared)), DagRuntime(deep_error_dag("second", shared))
    first.start()
    second.start()
    try:
        mem_put("first_in", [{"id": 1, "boom": True}])
        assert wait_until(lambda: len(list_dead_letters(first)) == 1, timeout=20)
        mem_put("second_in", [{"id": 2, "boom": True}])
        assert wait_until(lambda: len(list_dead_letters(second)) == 1, timeout=20)
        assert [(d["id"], d["record"]["id"]) for d in list_dead_letters(first)] == [("0", 1)]
        assert [(d["id"], d["record"]["id"]) for d in list_dead_letters(second)] == [("1", 2)]
        assert redrive(second, ids=["0"])["unknown"] == ["0"]  # the other DAG's letter is not this one's
    finally:
        first.stop(timeout=10)
        second.stop(timeout=10)


def test_a_store_that_cannot_be_reached_is_a_refusal_naming_the_cause() -> None:
    runtime = DagRuntime(deep_error_dag("unreachable", "redis://127.0.0.1:1/list/dead"))
    with pytest.raises(InjectionError, match="dead_letter destination of dag 'unreachable' could not be read"):
        list_dead_letters(runtime)
