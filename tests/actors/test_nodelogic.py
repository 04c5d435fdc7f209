"""One node's share of an epoch, driven directly (``actors/nodelogic.py``, SPEC §2 rules).

No actors and no encoding beyond the records of a root's runs: each test builds a small
DAG, the node's components (``node_components``) and a :class:`NodeLogic`, hands it
epochs made by hand and checks the changes and publications it answers. Covered: change
detection on roots and inner nodes, ``propagate: always``; merging several parents in edge
order, once per ``seq`` when several change at the same ``seq``; an empty merged input does
not compute; ``{}`` is propagated but never published; a calculator returning a non-map and
an edge transformer failing are errors (counted, kept, dead-lettered, the output kept);
input transformers filtering or failing; MetronomeNode ticks; ``snapshot``/``restore``;
the per-compute histogram and the node's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from actors.incarnation import node_components
from actors.messages import RUN_RECORDS, RUN_TICK, encode_records
from actors.nodelogic import NodeLogic
from actors.stats import NodeStats
from graphs.loader import load_dag_dict
from graphs.model import DagModel

NOW = 1_700_000_000.0
JUNK = "tests.support.userclasses.JunkCalculator"  # a == 1: a list, 2: a string, 3: a number
JUNK_TRANSFORMER = "tests.support.userclasses.JunkTransformer"  # the same, keyed on b
KEEP_A = {"name": "keep_a", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["a"]}}
Errors = list[tuple[str, str, Any]]


def chain_dag(calculator: dict[str, Any] | None = None, *, inner: dict[str, Any] | None = None,
              transformers: list[dict[str, Any]] | None = None, **root: Any) -> DagModel:
    """s -> ``src`` (SubscriptionNode) [-> ``inner``] -> ``pub`` (PublicationNode) -> out."""
    nodes: list[dict[str, Any]] = [{"name": "src", "type": "SubscriptionNode", "subscriber": "s", **root}]
    if inner is not None:
        nodes.append({"name": "mid", **inner})
    nodes.append({"name": "pub", "type": "PublicationNode", "publishers": ["out"],
                  **({"calculator": calculator["name"]} if calculator and inner is None else {})})
    names = [n["name"] for n in nodes]
    return load_dag_dict({
        "name": "logic",
        "subscribers": [{"name": "s", "config": {"source": "mem://queue/s"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "calculators": [calculator] if calculator else [],
        "transformers": transformers or [],
        "nodes": nodes,
        "edges": [{"from_node": a, "to_node": b} for a, b in pairwise(names)],
    })


def join_dag(edge_order: tuple[str, str] = ("p1", "p2"), transformer: str | None = None) -> DagModel:
    """Two roots ``p1`` and ``p2`` -> ``join`` (calculator ``rec``, a NullCalculator unless replaced).

    Edges are declared in ``edge_order``; with ``transformer`` (a type, "" for the default),
    p1's edge has the data_transformer ``edge``.
    """
    typed = {"type": transformer} if transformer else {}
    edge_transformers = [] if transformer is None else [{"name": "edge", **typed}]
    edges = [{"from_node": p, "to_node": "join",
              **({"data_transformer": "edge"} if transformer is not None and p == "p1" else {})}
             for p in edge_order]
    return load_dag_dict({
        "name": "join",
        "subscribers": [{"name": "a", "config": {"source": "mem://queue/a"}},
                        {"name": "b", "config": {"source": "mem://queue/b"}}],
        "calculators": [{"name": "rec"}],
        "transformers": edge_transformers,
        "nodes": [{"name": "p1", "type": "SubscriptionNode", "subscriber": "a"},
                  {"name": "p2", "type": "SubscriptionNode", "subscriber": "b"},
                  {"name": "join", "calculator": "rec"}],
        "edges": edges,
    })


def metronome_dag(calculator: dict[str, Any] | None = None) -> DagModel:
    """A MetronomeNode ``clock`` fed by subscriber ``s``, publishing to ``audit``."""
    clock: dict[str, Any] = {"name": "clock", "type": "MetronomeNode", "subscriber": "s",
                             "config": {"interval": 5}, "publishers": ["audit"]}
    if calculator:
        clock["calculator"] = calculator["name"]
    return load_dag_dict({
        "name": "metronome",
        "subscribers": [{"name": "s", "config": {"source": "mem://queue/s"}}],
        "publishers": [{"name": "audit", "config": {"destination": "mem://queue/audit"}}],
        "calculators": [calculator] if calculator else [],
        "nodes": [clock],
    })


def make(dag: DagModel, name: str, errors: Errors | None = None,
         calculators: dict[str, Callable] | None = None, transformers: dict[str, Callable] | None = None) -> NodeLogic:
    """``name``'s logic with its own components (``calculators``/``transformers`` replace some by
    name), fresh stats, a fixed clock, and errors appended to ``errors`` when given."""
    calcs, trans = node_components(dag, name)
    on_error = None if errors is None else (lambda node, message, value, seq: errors.append((node, message, value)))
    return NodeLogic(dag, name, {**calcs, **(calculators or {})}, {**trans, **(transformers or {})},
                     NodeStats(), on_error, lambda: NOW)


def records(first: int, *batch: dict[str, Any]) -> list[Any]:
    """A root's run of records, as the coordinator sends it."""
    return [first, RUN_RECORDS, encode_records(list(batch))]


class Recorder:
    """A calculator that remembers every input it is given and returns a copy."""

    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        self.inputs.append(dict(record))
        return dict(record)


# -- change detection -------------------------------------------------------------------------------
def test_a_root_computes_every_record_and_propagates_only_changed_outputs() -> None:
    logic = make(chain_dag(), "src")
    ones, twos = {"a": 1}, {"a": 2}
    changes, publications = logic.run_root([records(10, ones, ones, twos), records(13, twos, ones)])
    assert changes == [[10, 12, 14], [ones, twos, ones]]
    assert publications == [[], []]  # a SubscriptionNode does not publish
    assert logic.stats.computes == 5
    assert (logic.input, logic.output) == (ones, ones)


def test_a_root_that_propagates_always_sends_every_output() -> None:
    logic = make(chain_dag(propagate="always"), "src")
    changes, _ = logic.run_root([records(0, {"a": 1}, {"a": 1}, {"a": 1})])
    assert changes == [[0, 1, 2], [{"a": 1}] * 3]


def test_the_first_record_equal_to_the_initial_output_is_not_a_change() -> None:
    logic = make(chain_dag(), "src")
    assert logic.run_root([records(0, {}, {"a": 1})])[0] == [[1], [{"a": 1}]]
    assert logic.stats.computes == 2


def test_an_inner_node_skips_an_unchanged_input_and_an_unchanged_output() -> None:
    # a parent that propagates always may send the same output twice in a row
    logic = make(chain_dag(KEEP_A, inner={"calculator": "keep_a"}, propagate="always"), "mid")
    inputs = [{"a": 1, "b": 1}, {"a": 1, "b": 1}, {"a": 1, "b": 2}, {"a": 2, "b": 2}]
    changes, _ = logic.run_merge([[[0, 1, 2, 3], inputs]])
    assert logic.stats.computes == 3  # seq 1 has the same input as seq 0: no compute
    assert changes == [[0, 3], [{"a": 1}, {"a": 2}]]  # seq 2 computes the same output: not sent on


def test_an_inner_node_compares_its_input_until_it_holds_its_parents_latest_output() -> None:
    """A parent that propagates changes never sends the same output twice in a row, so a child
    holding that parent's latest output need not compare the next one; it does compare the first
    input after a restore (its input is then not known to be the parent's latest). An empty
    output is a change like any other (SPEC §2): the child computes on it."""
    logic = make(chain_dag(KEEP_A, inner={"calculator": "keep_a"}), "mid")
    logic.restore({"input": {"a": 1, "b": 1}, "output": {"a": 1}}, [{"a": 1, "b": 1}])
    changes, _ = logic.run_merge([[[0, 1, 2, 3], [{"a": 1, "b": 1}, {"a": 1, "b": 2}, {}, {"a": 1, "b": 2}]]])
    assert logic.stats.computes == 3  # seq 0 equals the restored input; seq 2 computes on {}
    assert changes == [[2, 3], [{}, {"a": 1}]]
    changes, _ = logic.run_merge([[[4, 5], [{"a": 2, "b": 2}, {"a": 3}]]])
    assert logic.stats.computes == 5
    assert changes == [[4, 5], [{"a": 2}, {"a": 3}]]


def test_a_node_without_a_calculator_passes_on_each_new_input_once() -> None:
    logic = make(chain_dag(inner={}, propagate="always"), "mid")
    changes, _ = logic.run_merge([[[0, 1, 2, 3], [{"a": 1}, {"a": 1}, {"a": float("nan")}, {"a": float("nan")}]]])
    assert logic.stats.computes == 2
    assert changes[0] == [0, 2]


def test_an_inner_node_that_propagates_always_computes_and_sends_every_input() -> None:
    logic = make(chain_dag(KEEP_A, inner={"calculator": "keep_a", "propagate": "always"}), "mid")
    same = {"a": 1, "b": 1}
    changes, _ = logic.run_merge([[[4, 5], [same, same]]])
    assert logic.stats.computes == 2
    assert changes == [[4, 5], [{"a": 1}, {"a": 1}]]


def test_an_empty_epoch_changes_nothing() -> None:
    logic = make(chain_dag(), "pub")
    assert logic.run_merge([[[], []]]) == ([[], []], [[], []])
    assert logic.run_root([]) == ([[], []], [[], []]) and logic.stats.computes == 0


# -- merging -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("edge_order", "winner"), [(("p1", "p2"), "p2"), (("p2", "p1"), "p1")])
def test_parents_changing_at_the_same_seq_are_merged_once_in_edge_order(
        edge_order: tuple[str, str], winner: str) -> None:
    dag = join_dag(edge_order)
    recorder = Recorder()
    logic = make(dag, "join", calculators={"rec": recorder})
    by_parent = {"p1": [[5], [{"x": 1, "who": "p1"}]], "p2": [[5], [{"y": 2, "who": "p2"}]]}
    changes, _ = logic.run_merge([by_parent[e.from_node] for e in dag.parents["join"]])
    assert recorder.inputs == [{"x": 1, "y": 2, "who": winner}]  # the later edge wins a shared key
    assert changes == [[5], [{"x": 1, "y": 2, "who": winner}]]
    assert logic.stats.computes == 1


def test_interleaved_parents_compute_once_per_seq_in_seq_order() -> None:
    recorder = Recorder()
    logic = make(join_dag(), "join", calculators={"rec": recorder})
    changes, _ = logic.run_merge([[[1, 5, 9], [{"x": 1}, {"x": 2}, {"x": 3}]], [[3, 5], [{"y": 1}, {"y": 2}]]])
    assert recorder.inputs == [{"x": 1}, {"x": 1, "y": 1}, {"x": 2, "y": 2}, {"x": 3, "y": 2}]
    assert changes[0] == [1, 3, 5, 9]


def test_a_merged_input_that_is_still_empty_does_not_compute() -> None:
    # {} is the input every node starts with: unchanged (parents that propagate always may send it)
    logic = make(join_dag(), "join")
    changes, _ = logic.run_merge([[[0], [{}]], [[0], [{}]]])
    assert changes == [[], []] and logic.stats.computes == 0
    single = make(chain_dag(propagate="always"), "pub")
    assert single.run_merge([[[0, 1], [{}, {}]]]) == ([[], []], [[], []])
    assert single.stats.computes == 0 and single.stats.compute_seconds.count == 0


@pytest.mark.parametrize("propagate", ["changes", "always"])
def test_a_merged_input_that_becomes_empty_is_computed_on(propagate: str) -> None:
    # the plain path (one parent, no transformer): {} is compared like any other input (SPEC §2)
    single = make(chain_dag(propagate=propagate), "pub")
    changes, publications = single.run_merge([[[0, 1, 2], [{"a": 1}, {}, {"a": 1}]]])
    assert changes == [[0, 1, 2], [{"a": 1}, {}, {"a": 1}]]
    assert publications == [[0, 2], [{"a": 1}, {"a": 1}]]  # {} is never published
    assert single.stats.computes == 3


def test_a_parent_whose_output_became_empty_drops_out_of_the_merge() -> None:
    recorder = Recorder()
    logic = make(join_dag(), "join", calculators={"rec": recorder})
    logic.run_merge([[[0, 2], [{"x": 1}, {}]], [[1, 3], [{"y": 1}, {"y": 2}]]])
    assert recorder.inputs == [{"x": 1}, {"x": 1, "y": 1}, {"y": 1}, {"y": 2}]  # seq 2: p1 no longer counts


def test_empty_parent_outputs_are_not_transformed_and_a_merge_of_them_is_an_empty_input() -> None:
    recorder = Recorder()
    logic = make(join_dag(transformer=""), "join", calculators={"rec": recorder},
                 transformers={"edge": lambda r: {**r, "seen": True}})
    logic.run_merge([[[0, 2], [{"x": 1}, {}]], [[1, 3], [{"y": 1}, {}]]])
    # seq 2: p1's {} is not run through its edge; seq 3: both parents are empty, join computes on {}
    assert recorder.inputs == [{"x": 1, "seen": True}, {"x": 1, "y": 1, "seen": True}, {"y": 1}, {}]
    assert logic.input == {} and logic.stats.computes == 4


# -- publications ------------------------------------------------------------------------------------
def test_an_empty_output_is_propagated_but_never_published() -> None:
    logic = make(chain_dag(KEEP_A), "pub")
    changes, publications = logic.run_merge([[[0, 1, 2], [{"a": 1}, {"b": 1}, {"a": 2}]]])
    assert changes == [[0, 1, 2], [{"a": 1}, {}, {"a": 2}]]
    assert publications == [[0, 2], [{"a": 1}, {"a": 2}]]


def test_a_publishing_node_publishes_what_it_propagates() -> None:
    logic = make(chain_dag(), "pub")
    changes, publications = logic.run_merge([[[3, 4], [{"a": 1}, {"a": 2}]]])
    assert changes == publications == [[3, 4], [{"a": 1}, {"a": 2}]]


# -- errors ------------------------------------------------------------------------------------------
def test_a_calculator_returning_a_non_map_is_an_error_and_the_output_is_kept() -> None:
    errors: Errors = []
    logic = make(chain_dag({"name": "junk", "type": JUNK}), "pub", errors)
    changes, publications = logic.run_merge([[[0, 1, 2, 3, 4], [{"a": 5}, {"a": 1}, {"a": 2}, {"a": 3}, {"a": 6}]]])
    assert changes == publications == [[0, 4], [{"a": 5}, {"a": 6}]]
    assert (logic.stats.computes, logic.stats.errors) == (5, 3)
    messages = [e["message"] for e in logic.stats.last_errors]
    assert messages[0] == "NotAMapError: calculator 'junk' returned a list, not a map (or None)"
    assert "a str," in messages[1] and "a float," in messages[2]
    assert [(node, value) for node, _, value in errors] == [("pub", {"a": 1}), ("pub", {"a": 2}), ("pub", {"a": 3})]
    assert [message for _, message, _ in errors] == messages
    assert all(e["time"] == NOW for e in logic.stats.last_errors)


def test_a_raising_calculator_is_an_error_without_a_change() -> None:
    errors: Errors = []
    logic = make(chain_dag({"name": "risky", "type": "tests.support.userclasses.RaisingCalculator"}), "pub", errors)
    changes, _ = logic.run_merge([[[0, 1], [{"v": 1}, {"v": 2, "boom": True}]]])
    assert changes == [[0], [{"v": 1}]]
    assert logic.output == {"v": 1} and logic.input == {"v": 2, "boom": True}
    assert errors == [("pub", "ValueError: boom in risky", {"v": 2, "boom": True})]


def test_a_failing_edge_transformer_is_an_error_and_the_node_does_not_compute() -> None:
    errors: Errors = []
    logic = make(join_dag(transformer=JUNK_TRANSFORMER), "join", errors)
    changes, _ = logic.run_merge([[[0, 2], [{"b": 1}, {"b": 5}]], [[1], [{"y": 1}]]])
    # seq 0 and 1: p1's output cannot be transformed, so join does not compute (an error each time);
    # seq 2: p1's new output transforms fine
    assert changes == [[2], [{"b": 5, "y": 1}]]
    assert logic.stats.computes == 1 and logic.stats.errors == 2
    assert [(node, value) for node, _, value in errors] == [("join", None), ("join", None)]
    assert errors[0][1] == "NotAMapError: transformer 'edge' returned a list, not a map (or None)"


def test_an_edge_transformer_that_raises_is_an_error() -> None:
    errors: Errors = []

    def explode(record: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("price")

    dag = load_dag_dict({**chain_dag().raw, "transformers": [{"name": "t"}],
                         "edges": [{"from_node": "src", "to_node": "pub", "data_transformer": "t"}]})
    logic = make(dag, "pub", errors, transformers={"t": explode})
    assert logic.run_merge([[[0], [{"a": 1}]]]) == ([[], []], [[], []])
    assert errors == [("pub", "KeyError: 'price'", None)] and logic.stats.computes == 0


def test_an_input_transformer_returning_none_filters_without_an_error() -> None:
    errors: Errors = []
    dag = chain_dag(transformers=[{"name": "t"}], input_transformers=["t"])
    logic = make(dag, "src", errors, transformers={"t": lambda r: None if r.get("drop") else r})
    changes, _ = logic.run_root([records(0, {"a": 1, "drop": True}, {"a": 2})])
    assert changes == [[1], [{"a": 2}]]
    assert errors == [] and logic.stats.computes == 1


def test_an_input_transformer_that_fails_is_an_error_on_the_record() -> None:
    errors: Errors = []
    dag = chain_dag(transformers=[{"name": "junk_b", "type": JUNK_TRANSFORMER}], input_transformers=["junk_b"])
    logic = make(dag, "src", errors)
    changes, _ = logic.run_root([records(0, {"b": 2}, {"b": 4})])
    assert changes == [[1], [{"b": 4}]]
    assert errors == [("src", "NotAMapError: transformer 'junk_b' returned a str, not a map (or None)", {"b": 2})]
    assert logic.stats.computes == 1  # a failed input transformer is not a compute


# -- MetronomeNode -----------------------------------------------------------------------------------
def test_a_metronome_node_computes_on_ticks_on_the_latest_record_else_the_tick() -> None:
    logic = make(metronome_dag(), "clock")
    tick1, tick2 = {"message": "tick", "tick": 1}, {"message": "tick", "tick": 2}
    changes, publications = logic.run_root([[0, RUN_TICK, tick1]])
    assert changes == publications == [[0], [tick1]]
    changes, _ = logic.run_root([records(1, {"p": 1}, {"p": 2}), [3, RUN_TICK, tick2], [4, RUN_TICK, tick2]])
    assert changes == [[3, 4], [{"p": 2}, {"p": 2}]]  # records only update the latest; ticks always propagate
    assert logic.latest == {"p": 2}
    assert logic.stats.computes == 3
    assert logic.run_root([records(5, {"p": 3})]) == ([[], []], [[], []])
    assert logic.stats.computes == 3 and logic.latest == {"p": 3}


def test_a_metronome_tick_with_an_empty_output_is_propagated_not_published() -> None:
    logic = make(metronome_dag(KEEP_A), "clock")
    changes, publications = logic.run_root([[0, RUN_TICK, {"tick": 1}], [1, RUN_TICK, {"tick": 2}]])
    assert changes == [[0, 1], [{}, {}]]
    assert publications == [[], []]


# -- state ---------------------------------------------------------------------------------------------
def test_snapshot_holds_input_output_and_latest() -> None:
    logic = make(metronome_dag(), "clock")
    assert logic.snapshot() == {"input": {}, "output": {}, "latest": None}
    logic.run_root([records(0, {"p": 1}), [1, RUN_TICK, {"tick": 1}], records(2, {"p": 2})])
    assert logic.snapshot() == {"input": {"p": 1}, "output": {"p": 1}, "latest": {"p": 2}}


def test_a_restored_node_carries_on_where_it_was() -> None:
    dag = chain_dag(KEEP_A, inner={"calculator": "keep_a"})
    before = make(dag, "mid")
    before.run_merge([[[0], [{"a": 1, "b": 1}]]])
    after = make(dag, "mid")
    after.restore(before.snapshot(), [{"a": 1, "b": 1}])
    assert (after.stats.input, after.stats.output) == ({"a": 1, "b": 1}, {"a": 1})
    assert after.run_merge([[[1], [{"a": 1, "b": 1}]]]) == ([[], []], [[], []])  # same input: no compute
    assert after.run_merge([[[2], [{"a": 1, "b": 2}]]])[0] == [[], []]  # same output: not sent on
    assert after.stats.computes == 1


def test_a_restored_merge_node_uses_its_parents_restored_outputs_through_their_edges() -> None:
    logic = make(join_dag(transformer=""), "join", [],
                 transformers={"edge": lambda r: {f"t_{k}": v for k, v in r.items()}})
    logic.restore({"input": {"t_x": 1}, "output": {"t_x": 1}}, [{"x": 1}, None])
    assert logic.latest is None
    changes, _ = logic.run_merge([[[], []], [[7], [{"y": 2}]]])
    assert changes == [[7], [{"t_x": 1, "y": 2}]]


def test_restoring_nothing_is_a_fresh_start() -> None:
    logic = make(chain_dag(), "src")
    logic.restore({"input": None, "output": None}, [])
    assert logic.snapshot() == {"input": {}, "output": {}, "latest": None}
    assert logic.run_root([records(0, {})]) == ([[], []], [[], []])


# -- figures -------------------------------------------------------------------------------------------
def test_every_compute_is_one_histogram_observation_and_nothing_else_is() -> None:
    errors: Errors = []
    logic = make(chain_dag({"name": "junk", "type": JUNK}, inner={"calculator": "junk"}, propagate="always"),
                 "mid", errors)
    logic.run_merge([[[0, 1, 2, 3, 4], [{"a": 5}, {"a": 5}, {"a": 1}, {}, {"a": 6}]]])
    # computes: seq 0, 2 (an error, still a compute), 3 (on {}) and 4; seq 1 is an unchanged input
    assert logic.stats.computes == 4
    histogram = logic.stats.compute_seconds
    assert histogram.count == 4 and sum(histogram.counts) == 4 and histogram.sum >= 0


def test_the_node_figures_follow_each_epoch() -> None:
    logic = make(chain_dag(), "src")
    assert logic.stats.last_compute is None
    logic.run_root([records(0, {"a": 1})])
    assert (logic.stats.input, logic.stats.output, logic.stats.last_compute) == ({"a": 1}, {"a": 1}, NOW)
    logic.stats.last_compute = None
    logic.run_root([])
    assert logic.stats.last_compute is None  # no compute, no new time
