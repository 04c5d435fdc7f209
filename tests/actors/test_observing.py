"""Tap, inject and capture inside one process (SPEC §13): what each records, and what it leaves alone.

A tap is closed until read and then writes down every compute of its node, fused chains
included; an open tap changes no publication (the random DAGs of the differential test, run
with every tap open). Injected records flow like read ones but move no source position.
A capture holds the next N inputs in the replay format and exactly the outputs they caused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from actors import tap as tap_module
from actors.capture import Capture
from actors.checkpoint import checkpoint_path, read_checkpoint
from actors.fusion import node_chains
from actors.incarnation import node_components
from actors.messages import RUN_RECORDS, encode_records
from actors.nodelogic import NodeLogic
from actors.runtime import DagRuntime
from actors.stats import NodeStats
from adapters.builtin.mem import get_queue, mem_put, reset_mem_broker
from graphs.loader import load_dag_dict
from supervision.replay import replay_actors, replay_reference, run_actors
from tests.actors.test_differential import assert_same
from tests.actors.test_state_runtime import state_dag
from tests.support.dag_strategies import DagCase, dag_cases
from tests.support.waiting import wait_until


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_mem_broker()
    yield
    reset_mem_broker()


def chain_dag(**extra: Any) -> Any:
    """in -> ingest (drop ``note``) -> defaults (qty 1) -> value (price * qty) -> publish -> out: one fused chain."""
    return load_dag_dict({
        "name": "chain",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/chain-in"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/chain-out"}}],
        "calculators": [
            {"name": "drop_note", "type": "AttributeFilterAwayCalculator", "config": {"filter_attributes": ["note"]}},
            {"name": "default_qty", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
            {"name": "value", "type": "MultiplicationCalculator",
             "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "drop_note"},
            {"name": "defaults", "calculator": "default_qty"},
            {"name": "value", "calculator": "value"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "defaults"}, {"from_node": "defaults", "to_node": "value"},
                  {"from_node": "value", "to_node": "publish"}],
        **extra,
    })


def orders(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": i, "price": i, "qty": 2, "note": "n"} for i in range(start, stop)]


def outputs(count: int, timeout: float = 10.0) -> list[Any]:
    queue = get_queue("chain-out")
    assert queue.wait_for(lambda q: len(q) >= count, timeout=timeout), f"fewer than {count} outputs"
    return queue.get(100_000, 0.0)


def test_a_closed_tap_records_nothing_and_an_open_one_every_compute_of_each_fused_node() -> None:
    dag = chain_dag()
    assert node_chains(dag) == [["ingest", "defaults", "value", "publish"]]  # one actor runs them all
    runtime = DagRuntime(dag)
    runtime.start()
    try:
        mem_put("chain-in", orders(0, 5))
        assert len(outputs(5)) == 5
        taps = {name: runtime.stats.nodes[name].tap for name in dag.nodes}
        assert all(not t.open and not t.entries for t in taps.values())  # nobody read: nothing kept
        assert taps["value"].read(after=0)["computes"] == []  # opens it
        mem_put("chain-in", orders(5, 9))
        assert len(outputs(4)) == 4
        assert wait_until(lambda: len(taps["value"].entries) == 4)
        seen = taps["value"].read(after=0)["computes"]
        assert [e["seq"] for e in seen] == [1, 2, 3, 4]
        assert [e["record_seq"] for e in seen] == [5, 6, 7, 8]
        assert seen[0]["input"] == {"id": 5, "price": 5, "qty": 2} and seen[0]["output"] == {"value": 10.0}
        assert all(e["error"] is None for e in seen)
        assert taps["value"].read(after=3)["computes"] == seen[3:]  # pages by seq
        assert not taps["ingest"].entries  # other nodes of the chain stay closed...
        assert taps["publish"].read()["computes"] == []  # ...until read: the last of the chain
        mem_put("chain-in", orders(9, 10))
        assert wait_until(lambda: len(taps["publish"].entries) == 1)
        assert taps["publish"].read()["computes"][0]["output"] == {"value": 18.0}
    finally:
        runtime.stop(timeout=10)


def test_a_tap_shows_a_failed_compute_with_its_error() -> None:
    dag = load_dag_dict({
        "name": "boom",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/boom-in"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/chain-out"}}],
        "calculators": [{"name": "raising", "type": "tests.support.userclasses.RaisingCalculator"}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "raising"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}]})
    runtime = DagRuntime(dag)
    runtime.start()
    try:
        tap = runtime.stats.nodes["ingest"].tap
        tap.read()
        mem_put("boom-in", [{"a": 1}, {"a": 2, "boom": True}])
        assert outputs(1) == [{"a": 1}]
        assert wait_until(lambda: len(tap.entries) == 2)
        ok, failed = tap.read()["computes"]
        assert ok["output"] == {"a": 1} and ok["error"] is None
        assert failed["input"] == {"a": 2, "boom": True} and failed["output"] is None
        assert "boom in raising" in failed["error"]
    finally:
        runtime.stop(timeout=10)


def test_an_open_tap_keeps_plain_nodes_on_their_plain_loop_and_names_each_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain node (one parent or none, no transformer) runs its plain loop with a tap open as
    without one: the per-record general path (``_step``) never runs, yet every compute is noted
    with the number of the record it came from, a failed one (and its dead letter) too."""
    def value(record: dict[str, Any]) -> dict[str, Any]:
        if "boom" in record:
            raise ValueError("boom")
        return {"value": record["price"] * record["qty"]}

    def general_path(*args: Any) -> None:
        raise AssertionError("a tapped plain node took the per-record general path")

    dag = chain_dag()
    dead: list[tuple[str, int]] = []

    def logic(name: str, calculators: dict[str, Any]) -> NodeLogic:
        calcs, trans = node_components(dag, name)
        return NodeLogic(dag, name, {**calcs, **calculators}, trans, NodeStats(),
                         lambda node, message, value, seq: dead.append((node, seq)))

    ingest, inner = logic("ingest", {}), logic("value", {"value": value})
    assert ingest.plain and inner.plain
    monkeypatch.setattr(NodeLogic, "_step", general_path)
    ingest.stats.tap.read()
    inner.stats.tap.read()
    rows = [{"price": 2, "qty": 3, "note": "n"}, {"price": 1, "qty": 1, "boom": 1}, {"price": 4, "qty": 1}]
    changes, _ = ingest.run_root([[7, RUN_RECORDS, encode_records(rows)]])
    assert changes[0] == [7, 8, 9]
    assert inner.run_merge([changes])[0] == [[7, 9], [{"value": 6}, {"value": 4}]]
    assert [(e["record_seq"], e["output"]) for e in ingest.stats.tap.read()["computes"]] == list(zip(
        [7, 8, 9], changes[1], strict=True))
    computes = inner.stats.tap.read()["computes"]
    assert [(e["record_seq"], e["output"]) for e in computes] == [(7, {"value": 6}), (8, None), (9, {"value": 4})]
    assert "boom" in computes[1]["error"] and dead == [("value", 8)]
    assert inner.calc is value and not inner.tapped  # the next epoch runs untapped unless the tap is still open


def test_a_tap_closes_a_while_after_its_last_read_and_forgets_what_it_held() -> None:
    now = [0.0]
    tap = tap_module.NodeTap(idle=60.0, clock=lambda: now[0])
    tap.read()
    tap.add([(0, {"a": 1}, {"a": 1}, None)], 1.0)
    now[0] = 59.0
    assert tap.still_open() and len(tap.entries) == 1
    now[0] = 60.0
    assert not tap.still_open() and not tap.open and not tap.entries


def test_a_tap_keeps_the_latest_computes_numbered_without_gaps() -> None:
    tap = tap_module.NodeTap(size=100)
    tap.add([(i, {"i": i}, {"i": i}, None) for i in range(250)], 1.0)
    tap.add([(250, {"i": 250}, None, "boom")], 2.0)
    held = tap.read(after=0)["computes"]
    assert [e["seq"] for e in held] == list(range(152, 252)) and held[-1]["error"] == "boom"
    assert held[0]["record_seq"] == 151 and tap.read(after=500)["computes"] == held  # after a restart: all


def test_tap_values_keep_bytes_and_nan_and_cut_long_ones() -> None:
    tap = tap_module.NodeTap()
    tap.add([(0, {"b": b"\x00\xff", "x": math.nan}, {"long": "y" * 10_000}, None)], 1.0)
    entry = tap.read()["computes"][0]
    assert entry["input"]["b"] == b"\x00\xff" and math.isnan(entry["input"]["x"]) and not entry["input_truncated"]
    assert entry["output_truncated"] and len(entry["output"]) <= tap_module.TAP_VALUE_CHARS + 1


@pytest.fixture
def taps_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tap made while it is active starts open (and stays open for the test)."""
    made = tap_module.NodeTap.__init__

    def opened(self: tap_module.NodeTap, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.idle = 3600.0
        self.read()

    monkeypatch.setattr(tap_module.NodeTap, "__init__", opened)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(case=dag_cases())
def test_open_taps_change_no_publication(taps_open: None, case: DagCase) -> None:
    """The tapped path (per record, never the plain one) publishes what the reference publishes."""
    dag = load_dag_dict(case.dag)
    expected = replay_reference(dag, case.events)
    for max_records in (1, 1000):
        actual = replay_actors(dataclasses.replace(dag, max_records=max_records), case.events, timeout=60)
        assert_same(expected, actual, f"taps open, max_records={max_records}")


def one_calculator_dag(calculator: str, config: dict[str, Any], ingest_propagate: str = "changes") -> Any:
    """in -> ingest -> calc (``calculator``) -> publish -> out."""
    return load_dag_dict({
        "name": "one",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/one-in"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/one-out"}}],
        "calculators": [{"name": "c", "type": calculator, "config": config}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "propagate": ingest_propagate},
                  {"name": "calc", "calculator": "c"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "calc"}, {"from_node": "calc", "to_node": "publish"}]})


@pytest.mark.parametrize(("dag", "records"), [
    # the parent's output becomes {}: the child computes on it like on any other input (SPEC §2)
    (lambda: one_calculator_dag("ApplyDefaultsCalculator", {"defaults": {"qty": 1}}), [{"a": 1}, {}]),
    # a stateful calculator computes on every record, an input equal to the last one too (SPEC §11)
    (lambda: one_calculator_dag("tests.support.userclasses.CountingCalculator", {}, "always"), [{"a": 1}, {"a": 1}]),
], ids=["input-becomes-empty", "stateful-same-input"])
def test_open_taps_follow_the_rules_the_untapped_path_follows(taps_open: None, dag: Any, records: list) -> None:
    """The corners the property test above reaches only now and then, every time."""
    model = dag()
    events = [("record", "in", record) for record in records]
    expected = replay_reference(model, events)
    assert len(expected) == 2
    for max_records in (1, 1000):
        actual = replay_actors(dataclasses.replace(model, max_records=max_records), events, timeout=60)
        assert_same(expected, actual, f"taps open, max_records={max_records}")


def test_an_open_tap_counts_a_late_record_as_late_not_as_an_error(taps_open: None) -> None:
    dag = state_dag("late", window={"tumbling": 10, "time": "ts"}, lateness=8)
    times = [0, 12, 25, 3, 26, 14, 9]  # at 25 the watermark (17) closes [0, 10): 3 and 9 are late
    _, runtime = run_actors(dag, [("record", "in", {"name": "a", "a": 1, "ts": t}) for t in times], timeout=60)
    agg = runtime.stats.nodes["agg"]
    assert (agg.late, agg.errors) == (2, 0)
    late = [entry for entry in agg.tap.read()["computes"] if entry["error"]]
    assert [entry["input"]["ts"] for entry in late] == [3, 9] and late[0]["error"].startswith("late record")


def test_injected_records_flow_like_read_ones_and_move_no_source_position(tmp_path: Path) -> None:
    runtime = DagRuntime(chain_dag(checkpoint={"every_epochs": 1}), state_dir=tmp_path)
    runtime.start()
    try:
        mem_put("chain-in", orders(0, 3))
        assert len(outputs(3)) == 3
        assert wait_until(lambda: (read_checkpoint(checkpoint_path(tmp_path, "chain")) or {})
                          .get("positions", {}).get("in") == 3)
        assert runtime.inject("in", [{"id": 100, "price": 5, "note": "x"}]) == ""
        assert outputs(1) == [{"value": 5.0}]
        mem_put("chain-in", orders(3, 4))  # the source goes on from where it was
        assert outputs(1) == [{"value": 6.0}]
    finally:
        assert runtime.stop(timeout=10)
    # the final checkpoint: the source's position counts the 4 records it read, not the injected one
    assert read_checkpoint(checkpoint_path(tmp_path, "chain"))["positions"] == {"in": 4}
    assert runtime.inject("in", [{"a": 1}]).endswith("records can be injected only while it runs")


def test_a_capture_holds_the_next_records_and_exactly_their_outputs() -> None:
    runtime = DagRuntime(chain_dag(epochs={"max_records": 3}))
    runtime.start()
    try:
        mem_put("chain-in", orders(0, 4))
        assert len(outputs(4)) == 4
        capture = Capture("c1", records=5, seconds=60)
        assert runtime.start_capture(capture) == ""
        mem_put("chain-in", orders(4, 12))
        assert len(outputs(8)) == 8
        assert wait_until(lambda: capture.status()["state"] == "done")
        status = runtime.capture_status("c1")
        assert status["events"] == [{"subscriber": "in", "record": r} for r in orders(4, 9)]
        assert status["outputs"] == {"out": [{"value": 2.0 * i} for i in range(4, 9)]}
        assert status["records"] == 5 and status["stopped_because"] == "5 records taken"
        assert runtime.capture_status("nope") is None
    finally:
        runtime.stop(timeout=10)
    assert runtime.capture_status("c1")["state"] == "done"  # a finished capture outlives the stop


def test_a_capture_stops_after_its_seconds_and_refuses_a_second_one_meanwhile() -> None:
    now = [0.0]
    runtime = DagRuntime(chain_dag())
    runtime.start()
    try:
        capture = Capture("c2", records=100, seconds=5, clock=lambda: now[0])
        assert runtime.start_capture(capture) == ""
        assert "still taking records" in runtime.start_capture(Capture("c3", 1, 1))
        mem_put("chain-in", orders(0, 2))
        assert len(outputs(2)) == 2
        assert wait_until(lambda: runtime.capture_status("c2")["records"] == 2)
        now[0] = 5.0
        assert wait_until(lambda: runtime.capture_status("c2")["state"] == "done")
        assert runtime.capture_status("c2")["stopped_because"] == "5 s passed"
        assert len(runtime.capture_status("c2")["outputs"]["out"]) == 2
    finally:
        runtime.stop(timeout=10)
