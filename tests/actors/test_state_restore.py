"""Snapshot -> restore at any point, then the rest of the input, equals the uninterrupted run (SPEC §11).

For random DAGs (:mod:`tests.support.dag_strategies`: aggregates with and without windows,
a stateful user calculator, and every other component) and a random cut in their input:

* the reference evaluator snapshots after the cut, a fresh evaluator restores it and
  takes the rest: the publications of both halves are those of one uninterrupted run;
* the actor runtime runs the first half and stops (its drain writes the last checkpoint,
  with every node's state), a new runtime starts from that checkpoint on disk and runs the
  rest: again the uninterrupted reference's publications, per publisher.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from supervision.replay import replay_reference, run_actors
from tests.actors.test_differential import assert_same, per_publisher
from tests.support.dag_strategies import DagCase, Event, dag_cases

EXAMPLES = int(os.environ.get("STATE_EXAMPLES", "300"))
ACTOR_EXAMPLES = int(os.environ.get("STATE_ACTOR_EXAMPLES", "300"))


def feed(evaluator: ReferenceEvaluator, events: list[Event]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for kind, name, record in events:
        out.extend(evaluator.ingest(name, record) if kind == "record" else evaluator.tick(name, record))
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dag_cases(max_events=150), cut=st.floats(0, 1))
def test_reference_restored_from_a_snapshot_continues_as_if_uninterrupted(case: DagCase, cut: float) -> None:
    dag = load_dag_dict(case.dag)
    at = int(cut * len(case.events))
    whole = ReferenceEvaluator(dag)
    expected = feed(whole, case.events)
    first = ReferenceEvaluator(dag)
    got = feed(first, case.events[:at])
    second = ReferenceEvaluator(dag)
    second.restore(first.snapshot())
    got += feed(second, case.events[at:])
    assert per_publisher(got) == per_publisher(expected)
    assert [s.late for s in whole.state.values()] == [
        a.late + b.late for a, b in zip(first.state.values(), second.state.values(), strict=True)]


@settings(max_examples=ACTOR_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dag_cases(max_events=150), cut=st.floats(0, 1), max_records=st.sampled_from((1, 7, 1000)))
def test_runtime_restarted_from_its_checkpoint_continues_as_if_uninterrupted(case: DagCase, cut: float,
                                                                             max_records: int) -> None:
    dag = dataclasses.replace(load_dag_dict(case.dag), max_records=max_records)
    at = int(cut * len(case.events))
    expected = replay_reference(dag, case.events)
    with tempfile.TemporaryDirectory() as state_dir:
        got, _ = run_actors(dag, case.events[:at], timeout=60, state_dir=state_dir)
        rest, _ = run_actors(dag, case.events[at:], timeout=60, state_dir=state_dir)
    assert_same(expected, got + rest, f"cut at {at} of {len(case.events)}")
