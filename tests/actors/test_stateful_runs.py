"""A stateful node hands a calculator offering ``calculate_many`` each run of records in one call
(``actors/state.py`` ``run_many``), and ends exactly where computing record by record ends.

Each test runs the same epochs through two nodes: one whose ``AggregateCalculator`` offers
``calculate_many`` (counted, to see the node use it), and one given another method of the same
calculator that calls ``calculate``: the node can only call that record by record. The
changes, publications, errors and late records (with the ``seq`` each names), the node's input,
output and compute count, and the calculators' snapshots must be equal.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from actors.messages import RUN_RECORDS, encode_records
from actors.nodelogic import NodeLogic
from actors.stats import NodeStats
from graphs.aggregate import AggregateCalculator
from graphs.loader import load_dag_dict
from graphs.model import DagModel

NOW = 1_700_000_000.0
CONFIG = {"key": ["k"], "aggregates": {"n": {"op": "count"}, "total": {"op": "sum", "of": "v"},
                                       "mean": {"op": "avg", "of": "v"}},
          "window": {"tumbling": 60, "time": "ts"}}
RUNS = [  # an epoch's runs: good records, a repeated one, no time, a bad key, a late one, a value skipped
    [{"k": "a", "v": 1, "ts": 10}, {"k": "b", "v": 2, "ts": 11}, {"k": "a", "v": 1, "ts": 10}],
    [{"k": "a", "v": 3}, {"k": ["x"], "v": 1, "ts": 12}, {"k": "a", "v": 4, "ts": 130},
     {"k": "b", "v": 5, "ts": 20}, {"k": "b", "v": "x", "ts": 131}],
    [],
    [{"k": "c", "v": 6, "ts": 140}, {"k": "c", "v": 6, "ts": 140}],
]


def dag(propagate: str, inner: bool) -> DagModel:
    """s -> src [-> mid] -> pub; the aggregate ``agg`` on src (``inner``: on mid, src passes records on)."""
    names = ["src", "mid", "pub"] if inner else ["src", "pub"]
    nodes: list[dict[str, Any]] = [{"name": "src", "type": "SubscriptionNode", "subscriber": "s"}]
    if inner:
        nodes.append({"name": "mid", "calculator": "agg", "propagate": propagate})
    else:
        nodes[0].update(calculator="agg", propagate=propagate)
    nodes.append({"name": "pub", "type": "PublicationNode", "publishers": ["out"]})
    return load_dag_dict({
        "name": "runs",
        "subscribers": [{"name": "s", "config": {"source": "mem://queue/s"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "calculators": [{"name": "agg", "type": "AggregateCalculator", "config": CONFIG}],
        "nodes": nodes,
        "edges": [{"from_node": a, "to_node": b} for a, b in pairwise(names)],
    })


class OneByOne(AggregateCalculator):
    """An aggregate whose node gets :meth:`each` as its calculator: stateful, but no ``calculate_many``."""

    def each(self, record: dict[str, Any]) -> dict[str, Any] | None:
        return self.calculate(record)


class Run:
    """One node over the epochs of :data:`RUNS`, recording what it reports."""

    def __init__(self, model: DagModel, node: str, batched: bool) -> None:
        self.calc = OneByOne("agg", CONFIG)
        self.calls: list[int] = []  # the size of each run calculate_many was given
        self.reported: list[tuple[str, Any, int]] = []  # (message, input, seq) of errors and late records
        calculate_many = self.calc.calculate_many

        def counted(records: list[Any]) -> list[Any]:
            self.calls.append(len(records))
            return calculate_many(records)

        self.calc.calculate_many = counted  # type: ignore[method-assign]
        calculate = self.calc.calculate if batched else self.calc.each
        self.logic = NodeLogic(model, node, {"agg": calculate}, {}, NodeStats(), self._report, lambda: NOW)
        self.results: list[Any] = []

    def _report(self, node: str, message: str, value: Any, seq: int) -> None:
        self.reported.append((message, value, seq))

    def root_epochs(self) -> Run:
        first = 0
        for batch in RUNS:
            self.results.append(self.logic.run_root([[first, RUN_RECORDS, encode_records(batch)]]))
            first += len(batch)
        return self

    def inner_epochs(self) -> Run:
        first = 0
        for batch in RUNS:
            seqs = list(range(first, first + len(batch)))
            self.results.append(self.logic.run_merge([[seqs, [dict(r) for r in batch]]]))
            first += len(batch)
        return self

    def outcome(self) -> tuple:
        stats = self.logic.stats
        return (self.results, self.reported, stats.errors, stats.late, stats.computes,
                self.logic.input, self.logic.output, self.logic.seq, self.calc.snapshot())


@pytest.mark.parametrize("propagate", ["always", "changes"])
def test_a_root_gives_each_run_to_calculate_many_and_ends_as_record_by_record(propagate: str) -> None:
    batched = Run(dag(propagate, inner=False), "src", batched=True).root_epochs()
    single = Run(dag(propagate, inner=False), "src", batched=False).root_epochs()
    assert batched.calls == [3, 5, 2]  # one call per non-empty run
    assert batched.outcome() == single.outcome()
    assert single.calls == [1] * 10  # calculate() itself goes through calculate_many, one record at a time
    messages = [(message.split(":")[0], seq) for message, _, seq in batched.reported]
    assert messages == [("ValueError", 3), ("ValueError", 4), ("late record", 6)]
    assert batched.logic.stats.late == 1 and batched.logic.stats.computes == 10


@pytest.mark.parametrize("propagate", ["always", "changes"])
def test_an_inner_node_gives_its_parents_outputs_to_calculate_many_and_ends_as_record_by_record(
        propagate: str) -> None:
    batched = Run(dag(propagate, inner=True), "mid", batched=True).inner_epochs()
    single = Run(dag(propagate, inner=True), "mid", batched=False).inner_epochs()
    assert batched.calls == [3, 5, 2]
    assert batched.outcome() == single.outcome()
    assert batched.logic.parent_out == single.logic.parent_out == [RUNS[-1][-1]]


def test_a_tapped_node_calls_its_calculator_record_by_record() -> None:
    """An open tap wraps the node's calculator to note each call: the node then takes the per-record path."""
    run = Run(dag("always", inner=False), "src", batched=True)
    run.logic.calc = lambda record, calc=run.logic.calc: calc(record)  # as NodeLogic._tapped wraps it
    run.root_epochs()
    assert run.calls == [1] * 10


def test_a_calculate_many_that_raises_puts_each_record_of_the_run_in_error_and_the_node_goes_on() -> None:
    """The component fails for a whole run (a user's ``calculate_many`` raising): each of its records is
    an error the node reports with its own seq, nothing propagates, and the next run is computed."""
    run = Run(dag("changes", inner=False), "src", batched=True)
    calculate_many = run.calc.calculate_many
    calls: list[int] = []

    def broken_once(records: list[Any]) -> list[Any]:
        calls.append(len(records))
        if len(calls) == 1:
            raise RuntimeError("the store is gone")
        return calculate_many(records)

    run.calc.calculate_many = broken_once  # type: ignore[method-assign]
    run.logic = NodeLogic(dag("changes", inner=False), "src", {"agg": run.calc.calculate}, {}, NodeStats(),
                          run._report, lambda: NOW)
    run.root_epochs()
    assert run.results[0][0] == [[], []]  # the first run propagated nothing
    gone = "RuntimeError: the store is gone"
    assert [(m, seq) for m, _, seq in run.reported[:3]] == [(gone, 0), (gone, 1), (gone, 2)]
    assert calls[:2] == [3, 5] and run.results[1][0][0]  # the next run was computed, in one call
