"""Placement of DAGs on workers (SPEC §5): pins, mem:// co-location, least loaded. No processes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from graphs.loader import load_dag_dict
from graphs.model import DagModel
from supervision.placement import linked_groups, mem_endpoints, place_dags


def dag(name: str, *, reads: tuple[str, ...] = (), writes: tuple[str, ...] = (), worker: int | None = None,
        dead_letter: str | None = None, replicas: int | None = None) -> DagModel:
    """A valid DAG reading ``reads`` (a metronome when empty) and publishing to ``writes``."""
    subscribers = [{"name": f"in{i}", "config": {"source": uri}} for i, uri in enumerate(reads)]
    subscribers = subscribers or [{"name": "clock", "config": {"source": "metronome"}}]
    publishers = [{"name": f"out{i}", "config": {"destination": uri}} for i, uri in enumerate(writes)]
    nodes: list[dict[str, Any]] = [{"name": f"n_{s['name']}", "type": "SubscriptionNode", "subscriber": s["name"]}
                                   for s in subscribers]
    edges = []
    if publishers:
        edges = [{"from_node": n["name"], "to_node": "publish"} for n in nodes]
        nodes.append({"name": "publish", "type": "PublicationNode", "publishers": [p["name"] for p in publishers]})
    doc: dict[str, Any] = {"name": name, "subscribers": subscribers, "publishers": publishers,
                           "nodes": nodes, "edges": edges}
    if worker is not None:
        doc["worker"] = worker
    if dead_letter is not None:
        doc["dead_letter"] = dead_letter
    if replicas is not None:
        doc["replicas"] = replicas
    return load_dag_dict(doc)


def test_nothing_to_place() -> None:
    plan = place_dags([], 3)
    assert plan.assignment == {}
    assert plan.problems == []


def test_a_pin_is_honoured_even_against_the_load() -> None:
    dags = [dag("a", worker=1), dag("b", worker=1), dag("c", worker=1)]
    assert place_dags(dags, 2).assignment == {"a": 1, "b": 1, "c": 1}


def test_unpinned_dags_go_to_the_least_loaded_worker_lowest_id_first() -> None:
    plan = place_dags([dag(n) for n in "abcd"], 3)
    assert plan.problems == []
    assert plan.assignment == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_pins_count_as_load_for_the_others() -> None:
    dags = [dag("p1", worker=0), dag("p2", worker=0), dag("x"), dag("y")]
    assert place_dags(dags, 2).assignment == {"p1": 0, "p2": 0, "x": 1, "y": 1}


def test_one_worker_takes_everything() -> None:
    dags = [dag("a"), dag("b", writes=("mem://queue/q",)), dag("c", reads=("mem://queue/q",), worker=0)]
    assert place_dags(dags, 1).assignment == {"a": 0, "b": 0, "c": 0}


def test_a_mem_queue_writer_and_reader_share_a_worker() -> None:
    dags = [dag("filler"), dag("writer", writes=("mem://queue/orders",)), dag("reader", reads=("mem://queue/orders",))]
    plan = place_dags(dags, 2)
    assert plan.problems == []
    assert plan.assignment["writer"] == plan.assignment["reader"]
    assert plan.assignment["filler"] != plan.assignment["writer"]  # the pair is the bigger group: placed first


def test_mem_links_are_transitive() -> None:
    dags = [
        dag("a", writes=("mem://queue/q1",)),
        dag("b", reads=("mem://queue/q1",), writes=("mem://topic/t2",)),
        dag("c", reads=("mem://topic/t2",)),
        dag("d", reads=("mem://topic/t2",), writes=("file:///tmp/d.jsonl",)),
        dag("lone1"), dag("lone2"), dag("lone3"), dag("lone4"),
    ]
    plan = place_dags(dags, 2)
    group = {plan.assignment[n] for n in "abcd"}
    assert len(group) == 1
    assert Counter(plan.assignment.values()) == Counter({0: 4, 1: 4})  # the 4 singles balance the group


def test_a_dead_letter_queue_links_like_any_mem_endpoint() -> None:
    dags = [dag("pad"), dag("producer", dead_letter="mem://queue/dlq"), dag("triage", reads=("mem://queue/dlq",))]
    plan = place_dags(dags, 3)
    assert plan.assignment["producer"] == plan.assignment["triage"]


def test_uri_options_do_not_matter_but_queue_and_topic_are_different_endpoints() -> None:
    sized = dag("sized", writes=("mem://queue/x?max_size=5",))
    plain = dag("plain", reads=("mem://queue/x",))
    topic = dag("topic", reads=("mem://topic/x",))
    assert mem_endpoints(sized) == {"queue/x"}
    assert mem_endpoints(topic) == {"topic/x"}
    groups = [[d.name for d in g] for g in linked_groups([sized, plain, topic])]
    assert groups == [["sized", "plain"], ["topic"]]


def test_non_mem_endpoints_never_link() -> None:
    dags = [dag("a", writes=("file:///tmp/shared.jsonl",)), dag("b", reads=("file:///tmp/shared.jsonl",))]
    assert place_dags(dags, 2).assignment == {"a": 0, "b": 1}


def test_a_pin_moves_its_whole_linked_group() -> None:
    dags = [dag("free", writes=("mem://queue/q",)), dag("pinned", reads=("mem://queue/q",), worker=2),
            dag("also", reads=("mem://queue/q",), worker=2)]
    assert place_dags(dags, 3).assignment == {"free": 2, "pinned": 2, "also": 2}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pin_beyond_the_workers_is_a_problem_and_that_dag_is_not_placed(workers: int) -> None:
    plan = place_dags([dag("ok"), dag("far", worker=2)], workers)
    assert plan.assignment == {"ok": 0}
    assert len(plan.problems) == 1
    problem = plan.problems[0]
    assert "'far'" in problem and "worker 2" in problem and f"{workers} workers" in problem


def test_dags_linked_to_an_unplaceable_dag_are_reported_not_silently_dropped() -> None:
    dags = [dag("far", writes=("mem://queue/q",), worker=9), dag("reader", reads=("mem://queue/q",)), dag("ok")]
    plan = place_dags(dags, 2)
    assert plan.assignment == {"ok": 0}
    assert any("'far'" in p and "worker 9" in p for p in plan.problems)
    assert any("'reader'" in p and "'far'" in p for p in plan.problems)


def test_linked_dags_pinned_to_different_workers_are_a_problem_and_none_is_placed() -> None:
    dags = [dag("a", writes=("mem://queue/q",), worker=0), dag("b", reads=("mem://queue/q",), worker=1),
            dag("c", reads=("mem://queue/q",)), dag("ok")]
    plan = place_dags(dags, 2)
    assert plan.assignment == {"ok": 0}
    assert len(plan.problems) == 1
    problem = plan.problems[0]
    for name in ("'a'", "'b'", "'c'"):
        assert name in problem
    assert "mem://" in problem


def test_placement_is_deterministic() -> None:
    dags = [dag(f"d{i}", writes=(f"mem://queue/q{i // 3}",)) for i in range(9)] + [dag(f"s{i}") for i in range(5)]
    first = place_dags(dags, 4)
    assert all(place_dags(dags, 4).assignment == first.assignment for _ in range(3))
    assert set(first.assignment) == {d.name for d in dags}


# -- replicas ---------------------------------------------------------------------------------------------
KAFKA = "kafka://topic/orders"  # a source replicas can share across processes


def test_replicas_go_to_distinct_workers() -> None:
    plan = place_dags([dag("orders", reads=(KAFKA,), replicas=3)], 3)
    assert sorted(plan.replicas["orders"]) == [0, 1, 2]
    assert plan.assignment["orders"] == plan.replicas["orders"][0]


def test_more_replicas_than_workers_spread_as_evenly_as_they_can() -> None:
    plan = place_dags([dag("orders", reads=(KAFKA,), replicas=5)], 2)
    assert Counter(plan.replicas["orders"]) == {0: 3, 1: 2}


def test_a_pin_places_the_first_replica_and_the_others_avoid_it() -> None:
    plan = place_dags([dag("orders", reads=(KAFKA,), replicas=2, worker=1)], 3)
    assert plan.replicas["orders"][0] == 1 and plan.replicas["orders"][1] != 1


def test_replicas_of_a_dag_on_a_mem_queue_share_its_worker() -> None:
    jobs, feed = dag("jobs", reads=("mem://queue/jobs",), replicas=3), dag("feed", writes=("mem://queue/jobs",))
    plan = place_dags([jobs, feed], 3)
    assert plan.replicas["jobs"] == [plan.assignment["feed"]] * 3  # the in-process broker is in one process


def test_replicas_count_in_the_load() -> None:
    plan = place_dags([dag("big", reads=(KAFKA,), replicas=2), dag("small")], 2)
    assert sorted(plan.replicas["big"]) == [0, 1]
    assert plan.replicas["small"] in ([0], [1])
