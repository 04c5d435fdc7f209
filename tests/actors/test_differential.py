"""The actor runtime against the reference evaluator (SPEC §3: same publications, any batching).

For random valid DAGs and random input (:mod:`tests.support.dag_strategies`) the actor runtime
must publish, per publisher and globally, exactly what the reference evaluator publishes,
whatever the epoch size and the number of epochs in flight. Also: a long random run
through a diamond (with per-node compute counts), and the replay command line on every
bundled example.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supervisor
from graphs.catalog import build_component, callable_of
from graphs.loader import load_dag_dict
from graphs.model import DagModel
from graphs.reference import Publication as ReferencePublication
from graphs.reference import ReferenceEvaluator
from graphs.values import same_value
from supervision import replay as replay_module
from supervision.replay import replay_actors, replay_reference, run_actors
from tests.support.dag_strategies import DagCase, Event, dag_cases

ROOT = Path(__file__).resolve().parents[2]  # the project root
EXAMPLE_DAGS = sorted((ROOT / "examples" / "dags").glob("*.json"))

Publication = tuple[str, Any]

EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", "300"))
IN_FLIGHT = (1, 4)


def shown(record: Any) -> str:
    """A record as JSON text: key order, 1 / 1.0 / True and NaN all told apart, unlike ``==``."""
    return json.dumps(record, default=repr)


def per_publisher(published: list[Publication]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for publisher, record in published:
        out.setdefault(publisher, []).append(shown(record))
    return out


def assert_same(expected: list[Publication], actual: list[Publication], label: str) -> None:
    """Every publisher's sequence exactly as the reference has it (SPEC §3: per publisher).

    The actors' publications are in the order the sinks received them; different
    publishers are different actors, so only each one's own order is defined.
    """
    want, got = per_publisher(expected), per_publisher(actual)
    for publisher in sorted(set(want) | set(got)):
        assert got.get(publisher, []) == want.get(publisher, []), f"{label}: publisher {publisher!r} differs"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dag_cases(), mid_size=st.integers(2, 50))
def test_actors_publish_what_the_reference_publishes(case: DagCase, mid_size: int) -> None:
    """Every epoch size (1, 2-50, 1000) with 1 and 4 epochs in flight: the reference's output."""
    dag = load_dag_dict(case.dag)
    expected = replay_reference(dag, case.events)
    for max_records in (1, mid_size, 1000):
        for max_inflight in IN_FLIGHT:
            tuned = dataclasses.replace(dag, max_records=max_records, max_inflight=max_inflight)
            actual = replay_actors(tuned, case.events, timeout=60)
            assert_same(expected, actual, f"max_records={max_records} max_inflight={max_inflight}")


# -- the reference against SPEC §2's input rule ----------------------------------------------------
class WatchedReference(ReferenceEvaluator):
    """The reference evaluator, remembering every node an input event has made dirty."""

    def __init__(self, dag: DagModel) -> None:
        super().__init__(dag)
        self.dirtied: set[str] = set()

    def _propagate(self, dirty: set[str], published: list[ReferencePublication]) -> None:
        super()._propagate(dirty, published)
        self.dirtied |= dirty  # the set grew as the nodes it reached marked their children


def expected_input(dag: DagModel, transformers: dict[str, Any], outputs: dict[str, Any], node: str) -> Any:
    """SPEC §2 rule 2, written out again: ``in_transforms(merged parents)``; None when a transformer
    raises, filters or returns a non-map (the node then keeps its input)."""
    try:
        merged: dict = {}
        for edge in dag.parents[node]:
            output = outputs[edge.from_node]
            if output and edge.data_transformer:  # empty outputs are skipped
                output = transformers[edge.data_transformer](output)
            if output is not None and not isinstance(output, dict):
                return None
            merged.update(output or {})
        value: Any = merged
        for name in dag.nodes[node].input_transformers:
            value = transformers[name](value)
            if not isinstance(value, dict):
                return None
        return value
    except Exception:
        return None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dag_cases())
def test_every_dirtied_node_holds_its_parents_merged_input(case: DagCase) -> None:
    """After each event, a non-root node that was ever dirty holds ``in_transforms(merged)`` of its
    parents' current outputs (rule 2: only the input comparison decides, an empty merge included)."""
    dag = load_dag_dict(case.dag)
    transformers = {name: callable_of(build_component(spec, "transformer"), "transformer")
                    for name, spec in dag.transformers.items()}
    reference = WatchedReference(dag)
    for kind, name, record in case.events:
        reference.ingest(name, record) if kind == "record" else reference.tick(name, record)
        outputs = {node: state.output for node, state in reference.state.items()}
        for node in reference.dirtied:
            if not dag.parents[node]:
                continue
            want = expected_input(dag, transformers, outputs, node)
            if want is not None:
                assert same_value(reference.state[node].input, want), f"{node} after {kind} {record!r}"


# -- a long run through a diamond ------------------------------------------------------------------
DIAMOND: dict[str, Any] = {
    "name": "diamond",
    "subscribers": [{"name": "quotes", "config": {"source": "mem://queue/quotes"}},
                    {"name": "limits", "config": {"source": "mem://queue/limits"}}],
    "publishers": [{"name": "values", "config": {"destination": "mem://queue/values"}},
                   {"name": "alerts", "config": {"destination": "mem://queue/alerts"}}],
    "calculators": [
        {"name": "defaults", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}},
        {"name": "notional", "type": "MultiplicationCalculator",
         "config": {"arguments": ["price", "qty"], "output_attribute": "notional"}},
        {"name": "spread", "type": "AdditionCalculator",
         "config": {"arguments": ["price", "limit"], "output_attribute": "headroom"}},
        {"name": "keep", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["price", "side"]}},
        {"name": "risky", "type": "tests.support.userclasses.RaisingCalculator"},
        {"name": "drop", "type": "tests.support.userclasses.DropFilterCalculator"},
    ],
    "transformers": [
        {"name": "rename_limit", "type": "AttributeNameChangeDataTransformer",
         "config": {"name_mapping": {"limit": "lim"}}},
    ],
    "nodes": [
        {"name": "quote", "type": "SubscriptionNode", "subscriber": "quotes", "calculator": "defaults"},
        {"name": "limit", "type": "SubscriptionNode", "subscriber": "limits", "calculator": "drop"},
        {"name": "value", "calculator": "notional"},
        {"name": "side", "calculator": "keep"},
        {"name": "check", "calculator": "risky"},
        {"name": "headroom", "calculator": "spread"},
        {"name": "join", "type": "PublicationNode", "publishers": ["values"]},
        {"name": "alert", "type": "PublicationNode", "publishers": ["alerts", "values"], "propagate": "always"},
    ],
    "edges": [
        {"from_node": "quote", "to_node": "value"},
        {"from_node": "quote", "to_node": "side"},
        {"from_node": "quote", "to_node": "check"},
        {"from_node": "limit", "to_node": "check", "data_transformer": "rename_limit"},
        {"from_node": "side", "to_node": "join"},
        {"from_node": "value", "to_node": "join"},
        {"from_node": "check", "to_node": "join"},
        {"from_node": "check", "to_node": "headroom"},
        {"from_node": "limit", "to_node": "headroom"},
        {"from_node": "headroom", "to_node": "alert"},
        {"from_node": "join", "to_node": "alert"},
    ],
}


def random_diamond_events(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    for _ in range(n):
        if rng.random() < 0.8:
            quote: dict[str, Any] = {"price": rng.choice((1, 2, 2.5, 3, None)), "side": rng.choice("BS")}
            if rng.random() < 0.6:
                quote["qty"] = rng.choice((1, 2, 10))
            if rng.random() < 0.05:
                quote["boom"] = True
            events.append(("record", "quotes", quote))
        else:
            limit: dict[str, Any] = {"limit": rng.choice((5, 10, 20))}
            if rng.random() < 0.2:
                limit["drop"] = True
            events.append(("record", "limits", limit))
    return events


def run_actors_with_stats(
    dag: DagModel, events: list[Event]
) -> tuple[list[Publication], dict[str, tuple[int, int]]]:
    """Like replay_actors, with the runtime's per-node (computes, errors) counts."""
    published, runtime = run_actors(dag, events, timeout=120)
    counts = {name: (stats.computes, stats.errors) for name, stats in runtime.stats.nodes.items()}
    return published, counts


@pytest.mark.parametrize(("max_records", "max_inflight"), [(1000, 4), (37, 1)])
def test_ten_thousand_records_through_a_diamond(max_records: int, max_inflight: int) -> None:
    dag = dataclasses.replace(load_dag_dict(DIAMOND), max_records=max_records, max_inflight=max_inflight)
    events = random_diamond_events(10_000, seed=20240101 + max_records)
    reference = ReferenceEvaluator(dag)
    expected: list[Publication] = []
    for _, subscriber, record in events:
        expected.extend(reference.ingest(subscriber, record))
    actual, counts = run_actors_with_stats(dag, events)
    assert len(expected) > 1000  # the run is not trivially quiet
    assert_same(expected, actual, "diamond")
    assert counts == {name: (state.computes, state.errors) for name, state in reference.state.items()}
    assert counts["check"][1] > 0 and counts["limit"][0] > 0
    assert_same(expected, replay_actors(dag, events), "diamond, default epochs")


# -- the replay command line -------------------------------------------------------------------
def example_pairs() -> list[tuple[Path, Path]]:
    pairs = [(dag, ROOT / "examples" / "events" / f"{dag.stem}.jsonl") for dag in EXAMPLE_DAGS]
    return [(dag, events) for dag, events in pairs if events.exists()]


def test_every_example_has_events() -> None:
    assert EXAMPLE_DAGS, "no example DAGs"
    assert [dag for dag, _ in example_pairs()] == EXAMPLE_DAGS


@pytest.mark.parametrize(("dag_path", "events_path"), example_pairs(), ids=lambda p: p.stem)
def test_replay_cli_prints_the_same_for_both_engines(
    dag_path: Path, events_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tick line without a record is stamped when the file is read: one fixed time for every run
    stamp = replay_module.tick_record
    monkeypatch.setattr(replay_module, "tick_record", lambda message, n, now: stamp(message, n, 1_767_225_600.0))
    printed: dict[str, str] = {}
    for engine in ("reference", "actors"):
        code = supervisor.main(["replay", str(dag_path), str(events_path), "--engine", engine])
        out, err = capsys.readouterr()
        assert code == 0, err
        printed[engine] = out
    for epoch_records in (1, 3):
        code = supervisor.main(["replay", str(dag_path), str(events_path), "--epoch-records", str(epoch_records)])
        out, err = capsys.readouterr()
        assert code == 0, err
        printed[f"actors/{epoch_records}"] = out
    lines = printed["reference"].splitlines()
    for line in lines:
        assert set(json.loads(line)) == {"publisher", "record"}
    assert all(text == printed["reference"] for text in printed.values())


def test_replay_cli_sample_output() -> None:
    """The bundled prices example, worked by hand: what the command prints."""
    out = io.StringIO()
    code = replay_module.run_replay(str(ROOT / "examples/dags/prices.json"), str(ROOT / "examples/events/prices.jsonl"),
                      engine="actors", out=out)
    assert code == 0
    # 2.5*4 = 10; 10*1 (qty defaulted) = 10, unchanged: not republished; the same with qty null;
    # 3*2 = 6; 2*3 = 6, unchanged
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"publisher": "values", "record": {"value": 10.0}},
        {"publisher": "values", "record": {"value": 6.0}},
    ]


# -- known mismatches, reported; strict: each turns into a failure once it is fixed ---------------
NAN_DAG: dict[str, Any] = {
    "name": "nan",
    "subscribers": [{"name": "a", "config": {"source": "mem://queue/a"}},
                    {"name": "b", "config": {"source": "mem://queue/b"}}],
    "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
    "calculators": [
        {"name": "to_float", "type": "AdditionCalculator", "config": {"arguments": ["x"], "output_attribute": "x"}},
        {"name": "keep_x", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["x"]}},
    ],
    "nodes": [
        {"name": "in_a", "type": "SubscriptionNode", "subscriber": "a", "calculator": "to_float"},
        {"name": "in_b", "type": "SubscriptionNode", "subscriber": "b"},
        {"name": "join", "calculator": "keep_x", "propagate": "always"},
        {"name": "pub", "type": "PublicationNode", "publishers": ["out"]},
    ],
    "edges": [{"from_node": "in_a", "to_node": "join"}, {"from_node": "in_b", "to_node": "join"},
              {"from_node": "join", "to_node": "pub"}],
}


def test_an_unchanged_nan_output_is_published_once_by_both_engines() -> None:
    # in_a turns "nan" into float NaN once; join (always) re-sends {"x": NaN} on each b record;
    # pub's input holds the very same value each time, so pub publishes it once
    dag = load_dag_dict(NAN_DAG)
    events: list[Event] = [("record", "a", {"x": "nan"}), ("record", "b", {"y": 1}), ("record", "b", {"y": 2})]
    expected = ['{"x": NaN}']
    assert [shown(r) for _, r in replay_reference(dag, events)] == expected
    assert [shown(r) for _, r in replay_actors(dag, events)] == expected


def test_a_record_that_cannot_be_encoded_is_rejected_by_both_engines() -> None:
    dag = load_dag_dict({
        "name": "big",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/in"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "nodes": [{"name": "src", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "pub", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "src", "to_node": "pub"}],
    })
    events: list[Event] = [("record", "in", {"v": 1}), ("record", "in", {"v": 2**64}), ("record", "in", {"v": 3})]
    expected = [("out", {"v": 1}), ("out", {"v": 3})]
    reference = ReferenceEvaluator(dag)
    published = [p for _, subscriber, record in events for p in reference.ingest(subscriber, record)]
    assert reference.rejected == 1
    assert published == expected
    assert replay_actors(dag, events) == expected


def test_a_replayed_subscriber_keeps_the_others_back_until_its_whole_batch_is_sent() -> None:
    """A subscriber actor may read twice for one batch (one record, then what came with it); the next
    subscriber's records wait until that batch is sent (it asks its source's position just before),
    or the coordinator would get them first: file order lost, another publication order."""
    script = replay_module.ReplayScript([("record", "a", {"n": 0}), ("record", "b", {"n": 1})])
    first = replay_module.ReplaySource("replay://a", {}, script, "a")
    second = replay_module.ReplaySource("replay://b", {}, script, "b")
    assert first.read_batch(1, 1.0) == [{"n": 0}]
    assert first.read_batch(49, 0.0) == []  # what came with it: nothing, the batch is still being made
    assert second.read_batch(50, 0.0) == []  # ...and not yet at the coordinator
    assert first.position() == 1  # sealed: sent right after this
    assert first.read_batch(50, 0.0) == []  # back for more: its batch reached the coordinator
    assert second.read_batch(50, 0.0) == [{"n": 1}]
