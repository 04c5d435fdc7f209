"""Calculator state in the actor runtime (SPEC §11): checkpointed, restored, counted, failing loudly."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.checkpoint import checkpoint_path, read_checkpoint
from actors.details import dag_details, node_details
from actors.restart import RestartPolicy
from actors.runtime import FAILED, DagRuntime
from adapters.builtin.mem import get_queue, mem_drain, mem_put, reset_mem_broker
from graphs.loader import load_dag_dict
from graphs.model import DagModel
from graphs.reference import ReferenceEvaluator
from supervision.check import run_check
from supervision.counters import carry_forward, with_carry
from supervision.replay import run_actors
from tests.actors.test_runtime_faults import FlakySink
from tests.support.waiting import wait_until

COUNTING = "tests.support.userclasses.CountingCalculator"


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_mem_broker()
    yield
    reset_mem_broker()


def state_dag(name: str, counting: dict[str, Any] | None = None, every: int = 2, max_records: int = 20,
              window: dict[str, Any] | None = None, lateness: float = 0) -> DagModel:
    """in -> count (user, stateful) -> publish; in -> agg (AggregateCalculator per name) -> publish."""
    aggregate: dict[str, Any] = {"key": ["name"], "aggregates": {"n": {"op": "count"}, "total": {"op": "sum",
                                                                                                 "of": "a"}}}
    if window:
        aggregate.update(window=window, lateness=lateness)
    return load_dag_dict({
        "name": name, "propagate": "always", "dead_letter": f"mem://queue/{name}_dead",
        "checkpoint": {"every_epochs": every}, "epochs": {"max_records": max_records, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {"source": f"mem://queue/{name}_in"}}],
        "publishers": [{"name": "out", "config": {"destination": f"mem://queue/{name}_out"}},
                       {"name": "sums", "config": {"destination": f"mem://queue/{name}_sums"}}],
        "calculators": [{"name": "counter", "type": COUNTING, "config": counting or {}},
                        {"name": "agg", "type": "AggregateCalculator", "config": aggregate}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "count", "calculator": "counter"},
                  {"name": "agg", "type": "PublicationNode", "calculator": "agg", "publishers": ["sums"]},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "count"}, {"from_node": "count", "to_node": "publish"},
                  {"from_node": "ingest", "to_node": "agg"}],
    })


def inputs(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": "abc"[i % 3], "a": i % 7} for i in range(n)]


def test_the_checkpoint_holds_each_stateful_nodes_snapshot(tmp_path: Path) -> None:
    dag = state_dag("ckpt")
    events = [("record", "in", r) for r in inputs(50)]
    run_actors(dag, events, timeout=60, state_dir=str(tmp_path))
    saved = read_checkpoint(checkpoint_path(tmp_path, "ckpt"))
    assert saved is not None
    counter = msgpack.unpackb(saved["nodes"]["count"]["state"]["calculator"], raw=False)
    assert counter["seen"] == 50 and counter["by_name"] == {"a": 17, "b": 17, "c": 16}
    agg = msgpack.unpackb(saved["nodes"]["agg"]["state"]["calculator"], raw=False)
    groups = [(key, [column[j] for column in agg["columns"]]) for j, key in enumerate(agg["keys"])]
    assert sorted(groups) == [
        (["a"], [17, float(sum(i % 7 for i in range(0, 50, 3)))]),
        (["b"], [17, float(sum(i % 7 for i in range(1, 50, 3)))]),
        (["c"], [16, float(sum(i % 7 for i in range(2, 50, 3)))])]
    assert "state" not in saved["nodes"]["ingest"]  # nodes without state carry none


def test_state_survives_restarts_exactly_once_while_outputs_repeat() -> None:
    """A sink failing between checkpoints restarts the DAG 3 times: outputs repeat, the counts do not."""
    dag = state_dag("flaky_state", every=3, max_records=25)
    plan = {"writes": 0, "failures": 3, "period": 7}
    runtime = DagRuntime(dag, sink_factory=lambda uri, config: FlakySink(uri, config, plan),
                         restart=RestartPolicy(max_restarts=10, within_seconds=60, base_delay=0.01))
    records = inputs(2000)
    reference = ReferenceEvaluator(dag)
    expected = [r for rec in records for p, r in reference.ingest("in", rec) if p == "out"]
    runtime.start()
    mem_put("flaky_state_in", records)
    got: list[dict] = []

    def done() -> bool:
        got.extend(get_queue("flaky_state_out").get(10_000, 0.05))
        return bool(got) and got[-1]["seen"] == len(records)

    assert wait_until(done, timeout=60), got[-1:] if got else "nothing published"
    assert runtime.stop(timeout=15)
    got.extend(mem_drain("flaky_state_out"))
    sums = mem_drain("flaky_state_sums")
    assert plan["failures"] == 0 and runtime.stats.actor_restarts == 3
    assert len(got) > len(expected)  # replayed stretches were published again
    assert got[-1] == expected[-1]  # but the state counted each record once
    final = {s["name"]: s for s in sums}
    assert {k: (v["n"], v["total"]) for k, v in final.items()} == {
        k: (sum(1 for r in records if r["name"] == k), float(sum(r["a"] for r in records if r["name"] == k)))
        for k in "abc"}


@pytest.mark.parametrize(("config", "text"), [
    ({"snapshot": "raise"}, "snapshot() raised RuntimeError: snapshot refused"),
    ({"snapshot": "junk"}, "snapshot() returned dict that msgpack cannot encode"),
])
def test_a_snapshot_that_fails_fails_the_dag_naming_the_node(tmp_path: Path, config: dict, text: str) -> None:
    dag = state_dag("bad_snapshot", counting=config)
    runtime = DagRuntime(dag, state_dir=tmp_path,
                         restart=RestartPolicy(max_restarts=2, within_seconds=60, base_delay=0.01))
    runtime.start()
    mem_put("bad_snapshot_in", inputs(100))
    assert wait_until(lambda: runtime.state == FAILED, timeout=30), runtime.reason
    assert "node 'count'" in runtime.reason and "calculator 'counter'" in runtime.reason
    assert text in runtime.reason
    assert read_checkpoint(checkpoint_path(tmp_path, "bad_snapshot")) is None  # never a checkpoint without state
    runtime.stop(timeout=5)


def test_a_restore_that_raises_fails_the_dag_naming_the_node(tmp_path: Path) -> None:
    run_actors(state_dag("bad_restore"), [("record", "in", r) for r in inputs(10)], timeout=60,
               state_dir=str(tmp_path))
    runtime = DagRuntime(state_dag("bad_restore", counting={"restore": "raise"}), state_dir=tmp_path,
                         restart=RestartPolicy(max_restarts=1, within_seconds=60, base_delay=0.01))
    runtime.start()
    assert wait_until(lambda: runtime.state == FAILED, timeout=30), runtime.reason
    assert "node 'count'" in runtime.reason and "restore() raised RuntimeError: restore refused" in runtime.reason
    runtime.stop(timeout=5)


def test_late_records_are_counted_and_dead_lettered_not_errors() -> None:
    dag = state_dag("late", window={"tumbling": 10, "time": "ts"}, lateness=8)
    times = [0, 12, 25, 3, 26, 14, 9]  # at 25 the watermark (17) closes [0, 10): 3 and 9 are late; 14 is not
    events = [("record", "in", {"name": "a", "a": 1, "ts": t}) for t in times]
    published, runtime = run_actors(dag, events, timeout=60)
    reference = ReferenceEvaluator(dag)
    expected = [p for _, _, r in events for p in reference.ingest("in", r)]
    assert [r for p, r in published if p == "sums"] == [r for p, r in expected if p == "sums"]
    agg = runtime.stats.nodes["agg"]
    assert (agg.late, agg.errors, reference.state["agg"].late) == (2, 0, 2)
    assert agg.state_groups == 2  # [10, 20) and [20, 30)
    assert runtime.stats.dead_letters == 2  # (replay captures no dead letters: the reference shows them)
    letters = reference.dead_letters
    assert [letter["input"]["ts"] for letter in letters] == [3, 9]
    assert all(letter["node"] == "agg" and letter["error"].startswith("late record") for letter in letters)


def test_late_from_a_calculator_that_keeps_no_state_is_an_error_in_both_engines() -> None:
    dag = load_dag_dict({
        "name": "claims", "subscribers": [{"name": "in", "config": {"source": "mem://queue/claims_in"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/claims_out"}}],
        "calculators": [{"name": "claim", "type": "tests.support.userclasses.LateClaimCalculator"}],
        "nodes": [{"name": "in", "type": "SubscriptionNode", "subscriber": "in", "calculator": "claim"},
                  {"name": "pub", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "in", "to_node": "pub"}],
    })
    events = [("record", "in", {"v": 1}), ("record", "in", {"v": 2, "late": True}), ("record", "in", {"v": 3})]
    reference = ReferenceEvaluator(dag)
    expected = [p for _, s, r in events for p in reference.ingest(s, r)]
    published, runtime = run_actors(dag, events, timeout=60)
    assert published == expected == [("out", {"v": 1}), ("out", {"v": 3})]
    assert (reference.state["in"].errors, reference.state["in"].late) == (1, 0)
    assert (runtime.stats.nodes["in"].errors, runtime.stats.nodes["in"].late) == (1, 0)


def test_a_stateful_node_computes_on_every_record_that_reaches_it() -> None:
    """Two parents: when one changes to a value that leaves the merged input as it was, a stateful child
    computes all the same (no input comparison), in both engines."""
    dag = load_dag_dict({
        "name": "every", "propagate": "always",
        "subscribers": [{"name": "a", "config": {"source": "mem://queue/every_a"}},
                        {"name": "b", "config": {"source": "mem://queue/every_b"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/every_out"}}],
        "calculators": [{"name": "counter", "type": COUNTING}],
        "nodes": [{"name": "in_a", "type": "SubscriptionNode", "subscriber": "a"},
                  {"name": "in_b", "type": "SubscriptionNode", "subscriber": "b"},
                  {"name": "count", "type": "PublicationNode", "calculator": "counter", "publishers": ["out"],
                   "propagate": "changes"}],
        "edges": [{"from_node": "in_a", "to_node": "count"}, {"from_node": "in_b", "to_node": "count"}],
    })
    events = [("record", "a", {"name": "x"}), ("record", "a", {"name": "x"}), ("record", "b", {}),
              ("record", "a", {"name": "x"})]
    reference = ReferenceEvaluator(dag)
    expected = [p for _, s, r in events for p in reference.ingest(s, r)]
    assert [r["seen"] for _, r in expected] == [1, 2, 3, 4]
    assert run_actors(dag, events, timeout=60)[0] == expected


def test_check_warns_when_a_changes_node_sits_above_a_stateful_one(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(state_dag("warned").raw))
    doc.pop("propagate")
    path = tmp_path / "warned.json"
    path.write_text(json.dumps(doc))
    out, err = io.StringIO(), io.StringIO()
    assert run_check([str(path)], out, err) == 0
    lines = err.getvalue().splitlines()
    assert len(lines) == 2, lines  # count and agg, both below ingest
    assert lines[0].startswith(f"warning: {path}: nodes[1]: node 'count' is stateful ({COUNTING})")
    assert "'ingest' above it propagate 'changes'" in lines[0] and 'set "propagate": "always"' in lines[0]
    doc["propagate"] = "always"
    path.write_text(json.dumps(doc))
    err = io.StringIO()
    assert run_check([str(path)], io.StringIO(), err) == 0 and err.getvalue() == ""


def test_check_reports_an_aggregate_config_problem_with_its_path(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(state_dag("badagg").raw))
    doc["calculators"][1]["config"]["aggregates"]["total"]["op"] = "summ"
    path = tmp_path / "badagg.json"
    path.write_text(json.dumps(doc))
    err = io.StringIO()
    assert run_check([str(path)], io.StringIO(), err) == 2
    assert (f"{path}: calculators[1].config.aggregates.total.op: op must be one of count, sum, min, max, avg, "
            "first, last, count_distinct (got 'summ') (did you mean 'sum'?)") in err.getvalue()


def test_node_details_show_groups_bytes_late_and_evictions(tmp_path: Path) -> None:
    dag = state_dag("shown", window={"tumbling": 10, "time": "ts"}, lateness=8)
    events = [("record", "in", {"name": n, "a": 1, "ts": t}) for n, t in (("a", 0), ("b", 12), ("a", 25), ("c", 3))]
    _, runtime = run_actors(dag, events, timeout=60, state_dir=str(tmp_path))
    shown = node_details(runtime, "agg")
    assert (shown["late"], shown["evictions"], shown["state"]["groups"]) == (1, 0, 2)
    assert shown["state"]["bytes"] > 0  # the final checkpoint's snapshot
    assert "state" not in node_details(runtime, "ingest")
    summary = dag_details(runtime)["nodes"]
    assert summary["agg"]["state"] == shown["state"] and summary["count"]["state"]["groups"] is None


def test_state_counters_are_carried_over_a_worker_restart() -> None:
    carry: dict[str, Any] = {}
    before = {"nodes": {"agg": {"computes": 5, "errors": 0, "late": 3, "evictions": 2, "state": {"groups": 9}}}}
    carry_forward(carry, before)
    now = {"nodes": {"agg": {"computes": 1, "errors": 0, "late": 1, "evictions": 0, "state": {"groups": 4}}}}
    shown = with_carry(now, carry)["nodes"]["agg"]
    assert (shown["late"], shown["evictions"], shown["state"]) == (4, 2, {"groups": 4})  # a gauge is not summed
