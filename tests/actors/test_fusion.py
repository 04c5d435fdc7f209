"""Chains of nodes run in one actor (``actors/fusion.py``) and nothing outside can tell (SPEC §3).

Covered: which nodes form chains (a line, fan-out, fan-in, several roots); which hops inside a
chain pass objects as they are (built-ins only, with configs msgpack carries); a linear DAG runs
as one node actor; a user calculator changing its input in place inside a chain never alters
what the node before it holds (its change detection still sees the original); an output msgpack
cannot carry in the middle of a chain is an error there and the chain runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from actors.fusion import node_chains, shares_outputs
from actors.runtime import DagRuntime
from adapters.builtin.mem import get_queue, mem_drain, mem_put, reset_mem_broker
from graphs.loader import load_dag_dict
from graphs.model import DagModel
from graphs.reference import ReferenceEvaluator
from tests.support.waiting import wait_until

MARKING = {"name": "mark", "type": "tests.support.userclasses.MarkingCalculator"}
ODD = {"name": "odd", "type": "tests.support.userclasses.OddOutputCalculator"}
PASS = {"name": "same", "type": "PassthruCalculator"}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_mem_broker()
    yield
    reset_mem_broker()


def dag_of(edges: list[tuple[str, str]], calculators: dict[str, dict[str, Any]] | None = None,
           extra_calculators: list[dict[str, Any]] | None = None, **extra: Any) -> DagModel:
    """The first root reads ``in``, others ``in_NAME``; nodes without children publish to ``out``;
    ``calculators``: node -> spec."""
    calculators = calculators or {}
    names = list(dict.fromkeys(n for edge in edges for n in edge))
    targets = {b for _, b in edges}
    sources = {a for a, _ in edges}
    roots = [n for n in names if n not in targets]
    subscribers = {n: "in" if i == 0 else f"in_{n}" for i, n in enumerate(roots)}
    nodes = []
    for name in names:
        node: dict[str, Any] = {"name": name}
        if name in subscribers:
            node.update(type="SubscriptionNode", subscriber=subscribers[name])
        elif name not in sources:
            node.update(type="PublicationNode", publishers=["out"])
        if name in calculators:
            node["calculator"] = calculators[name]["name"]
        nodes.append(node)
    specs = {spec["name"]: spec for spec in [*calculators.values(), *(extra_calculators or [])]}
    return load_dag_dict({
        "name": "fused",
        "subscribers": [{"name": sub, "config": {"source": f"mem://queue/{sub}"}} for sub in subscribers.values()],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "calculators": list(specs.values()),
        "nodes": nodes,
        "edges": [{"from_node": a, "to_node": b} for a, b in edges],
        **extra,
    })


@pytest.mark.parametrize(("edges", "chains"), [
    ([("a", "b"), ("b", "c"), ("c", "d")], [["a", "b", "c", "d"]]),
    ([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")], [["a"], ["b"], ["c"], ["d"]]),  # a diamond
    ([("a", "b"), ("b", "c"), ("b", "d"), ("d", "e")], [["a", "b"], ["c"], ["d", "e"]]),  # fan-out
    ([("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")], [["a"], ["b"], ["c", "d", "e"]]),  # fan-in
])
def test_nodes_form_chains_where_a_node_is_its_parents_only_child(edges: list, chains: list) -> None:
    dag = dag_of(edges)
    assert sorted(node_chains(dag)) == sorted(chains)
    assert sorted(n for chain in node_chains(dag) for n in chain) == sorted(dag.nodes)


def test_only_built_ins_with_configs_msgpack_carries_share_their_outputs() -> None:
    big = {"name": "big", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"n": 2**70}}}
    dag = dag_of([("a", "b"), ("b", "c"), ("c", "d")], {"a": PASS, "b": MARKING, "c": big})
    assert not shares_outputs(dag, "a", "b")  # b is a user class: it may change what it is given
    assert not shares_outputs(dag, "c", "d")  # c's default cannot travel
    built_in = dag_of([("a", "b"), ("b", "c")], {"a": PASS, "b": {"name": "copy", "type": "NullCalculator"}})
    assert all(shares_outputs(built_in, x, y) for x, y in pairwise(["a", "b", "c"]))


def test_a_linear_dag_runs_as_one_node_actor_and_publishes_as_the_reference_does() -> None:
    dag = dag_of([("a", "b"), ("b", "c")], {"a": PASS})
    runtime = DagRuntime(dag)
    runtime.start()
    try:
        assert runtime._ctx is not None
        assert sorted(runtime._ctx.refs) == ["coordinator", "node:a", "publisher:out", "subscriber:in"]
        records = [{"x": i % 3} for i in range(30)] + [{"x": 2}, {"x": 2}, {}]
        mem_put("in", records)
        reference = ReferenceEvaluator(dag)
        expected = [pub for r in records for pub in reference.ingest("in", r)]
        assert get_queue("out").wait_for(lambda q: len(q) >= len(expected), timeout=10)
        assert mem_drain("out") == [record for _, record in expected]
        # repeats: no compute; the final {} is a change (computed on, never published)
        assert runtime.stats.nodes["b"].computes == runtime.stats.nodes["c"].computes == 31
        assert {n: s.computes for n, s in reference.state.items()} == {"a": 33, "b": 31, "c": 31}
    finally:
        assert runtime.stop(timeout=5)


def test_a_calculator_changing_its_input_never_changes_what_the_node_before_it_holds() -> None:
    dag = dag_of([("a", "b"), ("b", "c")], {"a": PASS, "b": MARKING})
    runtime = DagRuntime(dag)
    runtime.start()
    try:
        mem_put("in", [{"x": 1}])
        assert get_queue("out").wait_for(lambda q: len(q) == 1, timeout=10)
        mem_put("in", [{"x": 1}, {"x": 2}])  # the same record again: a's output has not changed
        assert get_queue("out").wait_for(lambda q: len(q) == 2, timeout=10)
        assert mem_drain("out") == [{"x": 1, "seen": True}, {"x": 2, "seen": True}]
        assert runtime.stats.nodes["a"].output == {"x": 2}  # never marked by b
        assert runtime.stats.nodes["b"].computes == 2
    finally:
        assert runtime.stop(timeout=5)


def test_an_output_msgpack_cannot_carry_inside_a_chain_is_an_error_of_its_node() -> None:
    dag = dag_of([("a", "b"), ("b", "c")], {"b": ODD})
    runtime = DagRuntime(dag)
    runtime.start()
    try:
        mem_put("in", [{"a": 1}, {"a": 9}, {"a": 2}])  # a copy, a number too big for msgpack, a copy
        assert get_queue("out").wait_for(lambda q: len(q) == 2, timeout=10)
        assert mem_drain("out") == [{"a": 1}, {"a": 2}]
        assert (runtime.stats.nodes["b"].errors, runtime.stats.nodes["c"].errors) == (1, 0)
        assert runtime.stats.nodes["c"].computes == 2
    finally:
        assert runtime.stop(timeout=5)


@pytest.mark.parametrize("fused", [True, False], ids=["in one actor", "across actors"])
@pytest.mark.parametrize("epochs", [1, 3], ids=["one epoch", "an epoch each"])
def test_a_child_never_takes_a_parents_output_for_new_after_one_was_dropped(fused: bool, epochs: int) -> None:
    """a's outputs: {a: 1}, then one msgpack cannot carry (dropped, an error), then {a: 1} again. a
    sends that last one on (it differs from the dropped one a holds), but b holds {a: 1} already:
    b must compare it, not publish it twice."""
    edges = [("a", "b")] if fused else [("a", "b"), ("a", "c")]
    dag = dag_of(edges, {"a": ODD}, epochs={"max_records": 3 // epochs})
    runtime = DagRuntime(dag)
    runtime.start()
    try:
        mem_put("in", [{"a": 1}, {"a": 9}, {"a": 1}])
        assert wait_until(lambda: runtime.stats.subscribers["in"].records == 3 and runtime.stats.ingress_backlog == 0
                          and runtime.stats.epochs_open == 0)
        assert runtime.stats.nodes["a"].errors == 1
        leaves = ["b"] if fused else ["b", "c"]  # each publishes {a: 1} once
        assert mem_drain("out") == [{"a": 1}] * len(leaves)
        assert [runtime.stats.nodes[n].computes for n in leaves] == [1] * len(leaves)
    finally:
        assert runtime.stop(timeout=5)
