"""The reference evaluator (SPEC §2), against publications worked out by hand.

Every expected publication below is written out literally: the reference is the oracle
the actor runtime is tested against, so it is itself checked only against arithmetic
done on paper. Each test builds a small DAG document with in-memory endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from graphs.loader import load_dag_dict
from graphs.model import DagModel
from graphs.reference import ReferenceEvaluator, evaluate

RAISING = "tests.support.userclasses.RaisingCalculator"
DROP_FILTER = "tests.support.userclasses.DropFilterCalculator"
UPPER_NAME = "tests.support.userclasses.UpperNameTransformer"

T1 = {"message": "tick", "current_timestamp": "20240101000000", "tick": 1}
T2 = {"message": "tick", "current_timestamp": "20240101010000", "tick": 2}
T3 = {"message": "tick", "current_timestamp": "20240101020000", "tick": 3}
T4 = {"message": "tick", "current_timestamp": "20240101030000", "tick": 4}


def make_dag(
    nodes: list[dict[str, Any]],
    edges: Sequence[tuple[str, ...]] = (),
    *,
    subscribers: tuple[str, ...] = ("in",),
    publishers: tuple[str, ...] = ("out",),
    calculators: dict[str, dict[str, Any]] | None = None,
    transformers: dict[str, dict[str, Any]] | None = None,
    **top: Any,
) -> DagModel:
    """A validated DAG; edges are ``(from, to)`` or ``(from, to, data_transformer)``."""
    data: dict[str, Any] = {
        "name": "t",
        "subscribers": [{"name": s, "config": {"source": f"mem://queue/{s}"}} for s in subscribers],
        "publishers": [{"name": p, "config": {"destination": f"mem://queue/{p}"}} for p in publishers],
        "calculators": [{"name": n, **spec} for n, spec in (calculators or {}).items()],
        "transformers": [{"name": n, **spec} for n, spec in (transformers or {}).items()],
        "nodes": nodes,
        "edges": [
            {"from_node": e[0], "to_node": e[1], **({"data_transformer": e[2]} if len(e) > 2 else {})}
            for e in edges
        ],
        **top,
    }
    return load_dag_dict(data)


def sub(name: str, subscriber: str = "in", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "SubscriptionNode", "subscriber": subscriber, **extra}


def pub(name: str, publishers: tuple[str, ...] = ("out",), **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "PublicationNode", "publishers": list(publishers), **extra}


def computes(ev: ReferenceEvaluator) -> dict[str, int]:
    return {name: state.computes for name, state in ev.state.items()}


# -- propagation through the graph -------------------------------------------------------------
def test_chain() -> None:
    dag = make_dag(
        [sub("ingest", "orders", calculator="drop_note"), {"name": "defaults", "calculator": "default_qty"},
         {"name": "value", "calculator": "line_value"}, pub("publish", ("values",))],
        [("ingest", "defaults"), ("defaults", "value"), ("value", "publish")],
        subscribers=("orders",), publishers=("values",),
        calculators={
            "drop_note": {"type": "AttributeFilterAwayCalculator", "config": {"filter_attributes": ["note"]}},
            "default_qty": {"type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
            "line_value": {"type": "MultiplicationCalculator",
                           "config": {"arguments": ["price", "qty"], "output_attribute": "value"}},
        },
    )
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("orders", {"price": 2.5, "qty": 4, "note": "x"}) == [("values", {"value": 10.0})]
    # 10 * 1 (defaulted) = 10.0 again: every node up to "value" computes, nothing is published
    assert ev.ingest("orders", {"price": 10, "note": "y"}) == []
    assert ev.state["defaults"].output == {"price": 10, "qty": 1}
    assert ev.ingest("orders", {"price": 3, "qty": 2}) == [("values", {"value": 6.0})]
    assert computes(ev) == {"ingest": 3, "defaults": 3, "value": 3, "publish": 2}
    assert ev.state["publish"].input == {"value": 6.0}
    assert ev.state["publish"].output == {"value": 6.0}


DIAMOND_CALCS = {
    "a_to_v": {"type": "AttributeNameChangeCalculator", "config": {"name_mapping": {"a": "v"}}},
    "b_to_v": {"type": "AttributeNameChangeCalculator", "config": {"name_mapping": {"b": "v"}}},
}


@pytest.mark.parametrize(
    ("join_edges", "first", "second"),
    [
        # left's output {"v": a, "b": b} first, then right's {"a": a, "v": b}: right's v wins
        ([("left", "join"), ("right", "join")],
         [("v", 2), ("b", 2), ("a", 1)], [("v", 3), ("b", 3), ("a", 1)]),
        # right's output first, then left's: left's v wins, keys in right's order first
        ([("right", "join"), ("left", "join")],
         [("a", 1), ("v", 1), ("b", 2)], [("a", 1), ("v", 1), ("b", 3)]),
    ],
    ids=["left-then-right", "right-then-left"],
)
def test_diamond_publishes_once_merging_in_edge_order(
    join_edges: list[tuple[str, str]], first: list[tuple[str, int]], second: list[tuple[str, int]]
) -> None:
    dag = make_dag(
        [sub("src"), {"name": "left", "calculator": "a_to_v"}, {"name": "right", "calculator": "b_to_v"},
         pub("join")],
        [("src", "left"), ("src", "right"), *join_edges],
        calculators=DIAMOND_CALCS,
    )
    ev = ReferenceEvaluator(dag)
    published = ev.ingest("in", {"a": 1, "b": 2})
    assert published == [("out", dict(first))]
    assert list(published[0][1].items()) == first  # dict-update order, not just the same keys
    published = ev.ingest("in", {"a": 1, "b": 3})
    assert published == [("out", dict(second))]
    assert list(published[0][1].items()) == second
    assert ev.ingest("in", {"a": 1, "b": 3}) == []  # the same record: src's output is unchanged
    assert computes(ev) == {"src": 3, "left": 2, "right": 2, "join": 2}


def test_uneven_diamond_computes_the_join_once_after_both_parents() -> None:
    # src -> join directly, and src -> mid -> join: join must wait for mid (no glitch)
    dag = make_dag(
        [sub("src"), {"name": "mid", "calculator": "x_to_y"}, pub("join")],
        [("src", "mid"), ("src", "join"), ("mid", "join")],
        calculators={"x_to_y": {"type": "AttributeNameChangeCalculator", "config": {"name_mapping": {"x": "y"}}}},
    )
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("in", {"x": 1}) == [("out", {"x": 1, "y": 1})]
    assert ev.ingest("in", {"x": 2}) == [("out", {"x": 2, "y": 2})]
    assert computes(ev) == {"src": 2, "mid": 2, "join": 2}


def test_two_subscribers_joined_by_latest_value() -> None:
    dag = make_dag(
        [sub("p", "prices"), sub("q", "qtys"), pub("value", calculator="mult")],
        [("p", "value"), ("q", "value")],
        subscribers=("prices", "qtys"),
        calculators={"mult": {"type": "MultiplicationCalculator",
                              "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}},
    )
    events = [
        ("record", "prices", {"price": 2}),   # qty not seen yet: the product of what is there
        ("record", "qtys", {"qty": 3}),       # 2 * 3
        ("record", "prices", {"price": 4}),   # 4 * 3
        ("record", "qtys", {"qty": 3}),       # q's output unchanged: value is not even dirty
        ("record", "qtys", {"qty": 1.5}),     # 4 * 1.5
    ]
    assert evaluate(dag, events) == [
        ("out", {"value": 2.0}), ("out", {"value": 6.0}), ("out", {"value": 12.0}), ("out", {"value": 6.0}),
    ]
    ev = ReferenceEvaluator(dag)
    for _, subscriber, record in events:
        ev.ingest(subscriber, record)
    assert ev.state["value"].input == {"price": 4, "qty": 1.5}
    assert computes(ev) == {"p": 2, "q": 3, "value": 4}


def test_edge_data_transformers_apply_to_their_edge_only() -> None:
    dag = make_dag(
        [sub("src"), {"name": "mid", "calculator": "add"}, pub("pub")],
        [("src", "mid"), ("src", "pub", "no_b"), ("mid", "pub", "sum_to_total")],
        calculators={"add": {"type": "AdditionCalculator", "config": {"arguments": ["a", "b"],
                                                                     "output_attribute": "sum"}}},
        transformers={
            "no_b": {"type": "AttributeFilterAwayDataTransformer", "config": {"filter_attributes": ["b", "z"]}},
            "sum_to_total": {"type": "AttributeNameChangeDataTransformer",
                             "config": {"name_mapping": {"sum": "total"}}},
        },
    )
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("in", {"a": 1, "b": 2}) == [("out", {"a": 1, "total": 3.0})]
    assert ev.state["mid"].input == {"a": 1, "b": 2}  # the untransformed edge
    assert ev.ingest("in", {"a": 1, "b": 5}) == [("out", {"a": 1, "total": 6.0})]
    # src changes (z), mid recomputes to the same sum, pub's transformed input is unchanged
    assert ev.ingest("in", {"a": 1, "b": 5, "z": 1}) == []
    assert ev.state["src"].output == {"a": 1, "b": 5, "z": 1}
    assert computes(ev) == {"src": 3, "mid": 3, "pub": 2}


def test_input_and_output_transformers() -> None:
    dag = make_dag(
        [sub("ingest", input_transformers=["upper"]),
         pub("pub", input_transformers=["a_to_x", "y_default"], calculator="add",
             output_transformers=["s_to_sum", "unit"])],
        [("ingest", "pub")],
        calculators={"add": {"type": "AdditionCalculator", "config": {"arguments": ["x", "y"],
                                                                     "output_attribute": "s"}}},
        transformers={
            "upper": {"type": UPPER_NAME},
            "a_to_x": {"type": "AttributeNameChangeDataTransformer", "config": {"name_mapping": {"a": "x"}}},
            "y_default": {"type": "ApplyDefaultsDataTransformer", "config": {"defaults": {"y": 0}}},
            "s_to_sum": {"type": "AttributeNameChangeDataTransformer", "config": {"name_mapping": {"s": "sum"}}},
            "unit": {"type": "ApplyDefaultsDataTransformer", "config": {"defaults": {"unit": "u"}}},
        },
    )
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("in", {"name": "abc", "a": 2}) == [("out", {"sum": 2.0, "unit": "u"})]
    assert ev.state["ingest"].input == {"name": "ABC", "a": 2}
    assert ev.state["pub"].input == {"name": "ABC", "x": 2, "y": 0}
    # upper-cased, this is the record before: the subscription node's output is unchanged
    assert ev.ingest("in", {"name": "ABC", "a": 2}) == []
    assert ev.ingest("in", {"name": "abc", "a": 2, "y": 3}) == [("out", {"sum": 5.0, "unit": "u"})]
    assert ev.state["pub"].input == {"name": "ABC", "x": 2, "y": 3}
    assert computes(ev) == {"ingest": 3, "pub": 2}


def test_consecutive_identical_inputs_are_not_republished() -> None:
    dag = make_dag([sub("src"), pub("pub")], [("src", "pub")])
    ev = ReferenceEvaluator(dag)
    results = [ev.ingest("in", r) for r in ({"v": 1}, {"v": 1}, {"v": 1}, {"v": 2}, {"v": 1}, {"v": 1})]
    assert results == [[("out", {"v": 1})], [], [], [("out", {"v": 2})], [("out", {"v": 1})], []]
    assert computes(ev) == {"src": 6, "pub": 3}  # a subscription node computes every record


# -- a merged input that becomes {} (SPEC §2: only the input comparison decides) -----------------
KEEP_A = {"keep_a": {"type": "AttributeFilterCalculator", "config": {"keep_attributes": ["a"]}}}
KEEP_A_EDGE = {"keep_a": {"type": "AttributeFilterDataTransformer", "config": {"keep_attributes": ["a"]}}}
DEFAULT_A = {"default_a": {"type": "ApplyDefaultsDataTransformer", "config": {"defaults": {"a": 0}}}}


@pytest.mark.parametrize("emptied_by", ["a filtering parent", "an edge data_transformer"])
def test_a_node_whose_merged_input_becomes_empty_computes_on_it(emptied_by: str) -> None:
    """{"a": 1}, then a record without "a": the parent's output, or the edge's view of it, is {}."""
    if emptied_by == "a filtering parent":
        dag = make_dag([sub("src", calculator="keep_a"), pub("pub", input_transformers=["default_a"])],
                       [("src", "pub")], calculators=KEEP_A, transformers=DEFAULT_A)
    else:
        dag = make_dag([sub("src"), pub("pub", input_transformers=["default_a"])],
                       [("src", "pub", "keep_a")], transformers={**KEEP_A_EDGE, **DEFAULT_A})
    ev = ReferenceEvaluator(dag)
    results = [ev.ingest("in", r) for r in ({"a": 1, "b": 1}, {"b": 2}, {"b": 3}, {"a": 1, "b": 4})]
    # {"b": 2} empties pub's merged input: it computes on in_transforms({}) = {"a": 0} and publishes
    # that; {"b": 3} leaves it {} (unchanged input); {"a": 1} is then a change again, published again
    assert results == [[("out", {"a": 1})], [("out", {"a": 0})], [], [("out", {"a": 1})]]
    assert ev.state["pub"].input == {"a": 1}
    assert computes(ev)["pub"] == 3


def test_a_join_whose_parents_all_empty_computes_on_the_empty_merge() -> None:
    dag = make_dag(
        [sub("left", "l", calculator="keep_a"), sub("right", "r", calculator="keep_a"),
         {"name": "join"}, pub("pub")],
        [("left", "join"), ("right", "join"), ("join", "pub")],
        subscribers=("l", "r"), calculators=KEEP_A,
    )
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("l", {"a": 1}) == [("out", {"a": 1})]
    assert ev.ingest("l", {"b": 1}) == []  # join's merged input is {}: it computes, {} is not published
    assert ev.state["join"].input == {} and ev.state["join"].output == {}
    assert ev.state["pub"].output == {}
    assert ev.ingest("r", {"a": 1}) == [("out", {"a": 1})]  # a change again: published again
    assert computes(ev) == {"left": 2, "right": 1, "join": 3, "pub": 3}


# -- filters and errors -------------------------------------------------------------------------
def test_a_filter_returning_none_emits_nothing() -> None:
    dag = make_dag([sub("src"), {"name": "filt", "calculator": "drop"}, pub("pub")],
                   [("src", "filt"), ("filt", "pub")], calculators={"drop": {"type": DROP_FILTER}})
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("in", {"v": 1}) == [("out", {"v": 1})]
    assert ev.ingest("in", {"v": 2, "drop": True}) == []
    assert ev.state["filt"].input == {"v": 2, "drop": True}  # the new input is kept...
    assert ev.state["filt"].output == {"v": 1}  # ...and the old output too
    assert ev.ingest("in", {"v": 1}) == []  # computes {"v": 1}: the output it already has
    assert ev.ingest("in", {"v": 3}) == [("out", {"v": 3})]
    assert computes(ev) == {"src": 4, "filt": 4, "pub": 2}


def test_a_filtering_subscription_node_stops_the_record_at_the_root() -> None:
    dag = make_dag([sub("src", calculator="drop"), pub("pub")], [("src", "pub")],
                   calculators={"drop": {"type": DROP_FILTER}})
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("in", {"v": 1, "drop": 1}) == []
    assert ev.ingest("in", {"v": 1}) == [("out", {"v": 1})]
    assert ev.ingest("in", {"v": 2, "drop": "yes"}) == []
    assert computes(ev) == {"src": 3, "pub": 1}
    assert ev.state["pub"].output == {"v": 1}


def raising_dag(**top: Any) -> DagModel:
    return make_dag([sub("src"), {"name": "risky", "calculator": "explode"}, pub("pub")],
                    [("src", "risky"), ("risky", "pub")], calculators={"explode": {"type": RAISING}}, **top)


def test_a_raising_calculator_is_counted_kept_and_dead_lettered() -> None:
    ev = ReferenceEvaluator(raising_dag(dead_letter="mem://queue/dead"), clock=lambda: 123.5)
    assert ev.ingest("in", {"v": 1}) == [("out", {"v": 1})]
    assert ev.ingest("in", {"v": 2, "boom": True}) == []
    risky = ev.state["risky"]
    assert risky.errors == 1
    error = risky.last_errors[-1]
    assert (error.time, error.message, error.input) == (123.5, "ValueError: boom in explode", {"v": 2, "boom": True})
    assert risky.input == {"v": 2, "boom": True}
    assert risky.output == {"v": 1}
    assert ev.dead_letters == [
        {"dag": "t", "node": "risky", "error": "ValueError: boom in explode", "input": {"v": 2, "boom": True}},
    ]
    # processing goes on with the next record
    assert ev.ingest("in", {"v": 3}) == [("out", {"v": 3})]
    assert computes(ev) == {"src": 3, "risky": 3, "pub": 2}


def test_only_the_last_ten_errors_are_kept() -> None:
    ev = ReferenceEvaluator(raising_dag(dead_letter="mem://queue/dead"))
    for v in range(10, 22):
        assert ev.ingest("in", {"v": v, "boom": True}) == []
    risky = ev.state["risky"]
    assert risky.errors == 12
    assert [e.input for e in risky.last_errors] == [{"v": v, "boom": True} for v in range(12, 22)]
    assert len(ev.dead_letters) == 12
    # the failed input was kept: the same record again stops at the input comparison
    assert ev.ingest("in", {"v": 21, "boom": True}) == []
    assert risky.errors == 12
    assert ev.ingest("in", {"v": 22}) == [("out", {"v": 22})]
    assert computes(ev) == {"src": 14, "risky": 13, "pub": 1}


def test_errors_without_a_dead_letter_destination_are_still_counted() -> None:
    ev = ReferenceEvaluator(raising_dag())
    assert ev.ingest("in", {"boom": 1}) == []
    assert ev.state["risky"].errors == 1
    assert ev.dead_letters == []


def test_a_raising_subscription_node_fails_on_every_record() -> None:
    dag = make_dag([sub("src", calculator="explode"), pub("pub")], [("src", "pub")],
                   calculators={"explode": {"type": RAISING}})
    ev = ReferenceEvaluator(dag)
    assert ev.ingest("in", {"boom": True}) == []
    assert ev.ingest("in", {"boom": True}) == []  # roots take every record: no input comparison
    assert ev.ingest("in", {"v": 1}) == [("out", {"v": 1})]
    assert ev.state["src"].errors == 2
    assert computes(ev) == {"src": 3, "pub": 1}


# -- propagate: always ------------------------------------------------------------------------------
def three_times(dag: DagModel) -> tuple[list[list[tuple[str, dict]]], dict[str, int]]:
    ev = ReferenceEvaluator(dag)
    results = [ev.ingest("in", {"v": 1}) for _ in range(3)]
    return results, computes(ev)


def test_propagate_always_at_dag_level() -> None:
    results, counts = three_times(make_dag([sub("src"), pub("pub")], [("src", "pub")], propagate="always"))
    assert results == [[("out", {"v": 1})]] * 3
    assert counts == {"src": 3, "pub": 3}


def test_a_node_level_propagate_overrides_the_dag_level() -> None:
    dag = make_dag([sub("src"), pub("pub", propagate="changes")], [("src", "pub")], propagate="always")
    results, counts = three_times(dag)
    assert results == [[("out", {"v": 1})], [], []]
    assert counts == {"src": 3, "pub": 1}  # dirty every time, but its input is unchanged


@pytest.mark.parametrize(
    ("src_propagate", "pub_propagate", "published", "pub_computes"),
    [
        ("always", "always", 3, 3),
        ("always", None, 1, 1),   # src pushes its unchanged output; pub's input is unchanged
        (None, "always", 1, 1),   # src's output never changes: pub is not even dirty
    ],
)
def test_propagate_always_at_node_level(
    src_propagate: str | None, pub_propagate: str | None, published: int, pub_computes: int
) -> None:
    src_extra = {"propagate": src_propagate} if src_propagate else {}
    pub_extra = {"propagate": pub_propagate} if pub_propagate else {}
    results, counts = three_times(make_dag([sub("src", **src_extra), pub("pub", **pub_extra)], [("src", "pub")]))
    assert [r for r in results if r] == [[("out", {"v": 1})]] * published
    assert counts == {"src": 3, "pub": pub_computes}


# -- metronome ------------------------------------------------------------------------------------
def test_a_metronome_tick_computes_on_the_tick_record_and_publishes_unconditionally() -> None:
    dag = make_dag(
        [{"name": "clock", "type": "MetronomeNode", "config": {"interval": 3600}, "publishers": ["beats"],
          "calculator": "message_only"}, pub("echo")],
        [("clock", "echo")], subscribers=(), publishers=("beats", "out"),
        calculators={"message_only": {"type": "AttributeFilterCalculator", "config": {"keep_attributes": ["message"]}}},
    )
    ev = ReferenceEvaluator(dag)
    assert ev.tick("clock", T1) == [("beats", {"message": "tick"}), ("out", {"message": "tick"})]
    # the same output again: the metronome still publishes and pushes, echo's input is unchanged
    assert ev.tick("clock", T2) == [("beats", {"message": "tick"})]
    assert computes(ev) == {"clock": 2, "echo": 1}


def test_a_metronome_tick_without_a_calculator_passes_the_tick_record_on() -> None:
    dag = make_dag(
        [{"name": "clock", "type": "MetronomeNode", "config": {"interval": 3600}, "publishers": ["beats"]},
         pub("echo")],
        [("clock", "echo")], subscribers=(), publishers=("beats", "out"),
    )
    assert evaluate(dag, [("tick", "clock", T1), ("tick", "clock", T2)]) == [
        ("beats", {"message": "tick", "current_timestamp": "20240101000000", "tick": 1}),
        ("out", {"message": "tick", "current_timestamp": "20240101000000", "tick": 1}),
        ("beats", {"message": "tick", "current_timestamp": "20240101010000", "tick": 2}),
        ("out", {"message": "tick", "current_timestamp": "20240101010000", "tick": 2}),
    ]


def test_a_metronome_tick_computes_on_its_subscribers_latest_record() -> None:
    dag = make_dag(
        [{"name": "clock", "type": "MetronomeNode", "config": {"interval": 3600}, "subscriber": "feed",
          "publishers": ["beats"]}, pub("echo")],
        [("clock", "echo")], subscribers=("feed",), publishers=("beats", "out"),
    )
    ev = ReferenceEvaluator(dag)
    assert ev.tick("clock", T1) == [("beats", T1), ("out", T1)]  # nothing received yet: the tick itself
    assert ev.ingest("feed", {"price": 5}) == []  # a record only waits for the next tick
    assert computes(ev) == {"clock": 1, "echo": 1}
    assert ev.tick("clock", T2) == [("beats", {"price": 5}), ("out", {"price": 5})]
    assert ev.tick("clock", T3) == [("beats", {"price": 5})]
    assert ev.ingest("feed", {"price": 6}) == []
    assert ev.ingest("feed", {"price": 7}) == []
    assert ev.tick("clock", T4) == [("beats", {"price": 7}), ("out", {"price": 7})]
    assert computes(ev) == {"clock": 4, "echo": 3}


# -- ingress ----------------------------------------------------------------------------------------
def test_a_record_that_is_not_a_map_is_rejected_and_counted() -> None:
    dag = make_dag([sub("src"), pub("pub")], [("src", "pub")], dead_letter="mem://queue/dead")
    ev = ReferenceEvaluator(dag)
    for bad in ([1, 2], "text", 7, None, {1: "not a string key"}):
        assert ev.ingest("in", bad) == []
    assert ev.rejected == 5
    assert computes(ev) == {"src": 0, "pub": 0}
    assert len(ev.dead_letters) == 5
    letter = ev.dead_letters[0]
    assert (letter["dag"], letter["subscriber"]) == ("t", "in")
    assert "not a map" in letter["error"]
    assert ev.ingest("in", {"v": 1}) == [("out", {"v": 1})]  # and the DAG goes on
    assert ev.rejected == 5


def test_rejected_records_without_a_dead_letter_destination_are_only_counted() -> None:
    ev = ReferenceEvaluator(make_dag([sub("src"), pub("pub")], [("src", "pub")]))
    assert ev.ingest("in", ["not", "a", "map"]) == []
    assert ev.rejected == 1
    assert ev.dead_letters == []
