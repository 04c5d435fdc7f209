"""The reference evaluator: SPEC §2, one input record at a time, nothing clever.

This is the oracle the actor runtime is tested against, so it stays small and
obvious: no batching, no threads, no encoding. Every rule of §2 is a few lines here.

Usage::

    from graphs.loader import load_dag
    from graphs.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(load_dag("examples/dags/prices.json"))
    for publisher, record in ev.ingest("prices_in", {"price": 2, "qty": 3}):
        print(publisher, record)
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from graphs.catalog import callable_of
from graphs.model import METRONOME_NODE, PUBLICATION_NODE, DagModel
from graphs.node_parts import build_node_parts
from graphs.state import ComponentStates, LateRecord, is_stateful, node_state_components
from graphs.values import describe_error, not_a_map, reject_reason, same_value

Publication = tuple[str, dict]
MAX_KEPT_ERRORS = 10


@dataclass
class NodeError:
    """One failed compute: when, why, and on what input."""

    time: float
    message: str
    input: Any


@dataclass
class NodeState:
    """What a node remembers between records: like the seed, input and output start as ``{}`` (SPEC §2)."""

    input: Any = field(default_factory=dict)
    output: Any = field(default_factory=dict)
    computes: int = 0
    errors: int = 0
    late: int = 0  # records a calculator found too late for their window (SPEC §11)
    last_errors: deque[NodeError] = field(default_factory=lambda: deque(maxlen=MAX_KEPT_ERRORS))


class Filtered(Exception):
    """A transformer or calculator returned None: nothing is emitted."""


class ReferenceEvaluator:
    """Sequential evaluation of one DAG; ``ingest``/``tick`` return the publications in order."""

    def __init__(self, dag: DagModel, clock: Callable[[], float] = time.time) -> None:
        self.dag = dag
        self.clock = clock
        self.state: dict[str, NodeState] = {name: NodeState() for name in dag.nodes}
        self.dead_letters: list[dict] = []
        self.rejected = 0
        self.latest: dict[str, dict] = {}  # MetronomeNode -> latest record from its subscriber
        self._node_of = {n.subscriber: name for name, n in dag.nodes.items() if n.subscriber}
        # each node its own components (SPEC §11: a stateful calculator's state belongs to its node)
        self._calc: dict[str, Callable] = {}
        self._trans: dict[str, dict[str, Callable]] = {}
        self.component_states: dict[str, ComponentStates] = {}
        self._stateful: set[str] = set()  # nodes that compute on every record reaching them
        for name in dag.nodes:
            calc, trans = build_node_parts(dag, name)
            if calc is not None:
                self._calc[name] = callable_of(calc, "calculator")
            self._trans[name] = {t: callable_of(obj, "transformer") for t, obj in trans.items()}
            self.component_states[name] = ComponentStates(name, node_state_components(calc, trans))
            if is_stateful(calc):
                self._stateful.add(name)

    # -- input events ---------------------------------------------------------------------------
    def ingest(self, subscriber: str, record: Any) -> list[Publication]:
        """Rule 1 then rule 2 for one record from ``subscriber``."""
        reason = reject_reason(record)
        if reason is not None:
            self.rejected += 1
            self._dead_letter({"dag": self.dag.name, "subscriber": subscriber, "error": reason,
                               "input": repr(record)})
            return []
        name = self._node_of.get(subscriber)
        if name is None:
            return []
        node = self.dag.nodes[name]
        if node.type == METRONOME_NODE:
            self.latest[name] = record
            return []
        published: list[Publication] = []
        out = self._compute(name, record, compare_input=False)
        if out is not None:
            self._propagate(set(self.dag.children[name]), published)
        return published

    def tick(self, node_name: str, tick_record: dict) -> list[Publication]:
        """Rule 3: a MetronomeNode fires on its subscriber's latest record, else on the tick."""
        published: list[Publication] = []
        record = self.latest.get(node_name, tick_record)
        out = self._compute(node_name, record, compare_input=False, always=True)
        if out is not None:
            if out:  # an empty output is never published
                for publisher in self.dag.nodes[node_name].publishers:
                    published.append((publisher, out))
            self._propagate(set(self.dag.children[node_name]), published)
        return published

    # -- the rules --------------------------------------------------------------------------------
    def _propagate(self, dirty: set[str], published: list[Publication]) -> None:
        for name in self.dag.topo_order:
            if name not in dirty:
                continue
            node = self.dag.nodes[name]
            try:
                merged = self._merge_parents(name)
            except (Exception, SystemExit) as exc:  # an edge data_transformer raised
                self._record_error(name, exc, None)
                continue
            # an empty merge is an input like any other: only the comparison with the stored input
            # decides (a node whose parents' outputs became {} computes on in_transforms({}))
            out = self._compute(name, merged, compare_input=True)
            if out is None:
                continue
            dirty.update(self.dag.children[name])
            if node.type == PUBLICATION_NODE and out:  # an empty output is never published
                for publisher in node.publishers:
                    published.append((publisher, out))

    def _merge_parents(self, name: str) -> dict:
        merged: dict = {}
        for edge in self.dag.parents[name]:
            output = self.state[edge.from_node].output
            if edge.data_transformer is not None and output:
                output = self._trans[name][edge.data_transformer](output)
                if output is not None and not isinstance(output, dict):
                    raise not_a_map("transformer", edge.data_transformer, output)
            if output:
                merged.update(output)
        return merged

    def _compute(self, name: str, record: dict, compare_input: bool, always: bool = False) -> dict | None:
        """Transform, calculate, transform; store and return the new output if it changed."""
        node = self.dag.nodes[name]
        state = self.state[name]
        always = always or node.always
        try:
            value = self._apply_chain(name, node.input_transformers, record)
        except Filtered:
            return None
        except (Exception, SystemExit) as exc:
            self._record_error(name, exc, record)
            return None
        if compare_input and not always and name not in self._stateful and same_value(value, state.input):
            return None
        state.input = value
        state.computes += 1
        try:
            out = self._calculate(name, value)
            out = self._apply_chain(name, node.output_transformers, out)
        except Filtered:
            return None
        except LateRecord as exc:  # a stateful calculator's: counted and dead-lettered, not an error (SPEC §11)
            if name not in self._stateful:
                self._record_error(name, exc, value)
                return None
            state.late += 1
            self._dead_letter({"dag": self.dag.name, "node": name, "error": str(exc), "input": value})
            return None
        except (Exception, SystemExit) as exc:
            self._record_error(name, exc, value)
            return None
        if not always and same_value(out, state.output):
            return None
        state.output = out
        return out

    def _calculate(self, node: str, value: dict) -> dict:
        calculator = self.dag.nodes[node].calculator
        if calculator is None:  # a node without a calculator behaves as NullCalculator
            return copy.deepcopy(value)
        out = self._calc[node](value)
        if out is None:
            raise Filtered
        if not isinstance(out, dict):
            raise not_a_map("calculator", calculator, out)
        return out

    def _apply_chain(self, node: str, names: tuple[str, ...], value: dict) -> dict:
        for name in names:
            value = self._trans[node][name](value)
            if value is None:
                raise Filtered
            if not isinstance(value, dict):
                raise not_a_map("transformer", name, value)
        return value

    def _record_error(self, name: str, exc: BaseException, input_value: Any) -> None:
        state = self.state[name]
        message = describe_error(exc)
        state.errors += 1
        state.last_errors.append(NodeError(self.clock(), message, input_value))
        self._dead_letter({"dag": self.dag.name, "node": name, "error": message, "input": input_value})

    def _dead_letter(self, letter: dict) -> None:
        if self.dag.dead_letter:
            self.dead_letters.append(letter)

    # -- state (SPEC §11) ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint between two records holds: each node's input, output and component state,
        and each MetronomeNode's latest record (msgpack-encoded, as the runtime writes it)."""
        nodes = {name: {"input": s.input, "output": s.output, "state": self.component_states[name].snapshot()}
                 for name, s in self.state.items()}
        return msgpack.unpackb(msgpack.packb({"nodes": nodes, "latest": self.latest}, use_bin_type=True),
                               raw=False)

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from ``snapshot`` (made by :meth:`snapshot`, perhaps of another evaluator of the DAG)."""
        for name, saved in snapshot["nodes"].items():
            self.state[name].input, self.state[name].output = saved["input"], saved["output"]
            self.component_states[name].restore(saved["state"])
        self.latest = dict(snapshot["latest"])


def evaluate(dag: DagModel, events: list[tuple[str, str, dict]]) -> list[Publication]:
    """Run ``events`` (``("record", subscriber, record)`` or ``("tick", node, tick_record)``)."""
    ev = ReferenceEvaluator(dag)
    out: list[Publication] = []
    for kind, name, record in events:
        out.extend(ev.ingest(name, record) if kind == "record" else ev.tick(name, record))
    return out


__all__ = ["NodeError", "NodeState", "ReferenceEvaluator", "describe_error", "evaluate", "reject_reason"]
