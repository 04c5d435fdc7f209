"""The immutable DAG model: what a validated DAG file means.

A :class:`DagModel` is built only from a file that passed validation (see
:mod:`graphs.loader`); everything in it is resolved by name and already checked, so
the evaluators and the actor runtime never re-validate.

Usage::

    from graphs.loader import load_dag
    dag = load_dag("examples/dags/prices.json")
    for name in dag.topo_order:
        node = dag.nodes[name]
        print(name, node.type, [e.from_node for e in dag.parents[name]])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SUBSCRIPTION_NODE = "SubscriptionNode"
CALCULATION_NODE = "CalculationNode"
PUBLICATION_NODE = "PublicationNode"
METRONOME_NODE = "MetronomeNode"
NODE_TYPES = (SUBSCRIPTION_NODE, CALCULATION_NODE, PUBLICATION_NODE, METRONOME_NODE)

DEFAULT_TYPES = {"calculator": "NullCalculator", "transformer": "NullDataTransformer"}  # a component without "type"

PROPAGATE_CHANGES = "changes"
PROPAGATE_ALWAYS = "always"

DEFAULT_MAX_RECORDS = 1000
DEFAULT_MAX_INFLIGHT = 4
DEFAULT_CHECKPOINT_EVERY = 10
DEFAULT_CHECKPOINT_IDLE = 1.0  # seconds completed epochs wait for a checkpoint at most (SPEC §3)
DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # encoded record bytes in flight between sources and sinks


def frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only view of ``mapping`` (an empty one for None)."""
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class ComponentSpec:
    """A calculator or a transformer: a built-in name or a dotted ``module.Class``."""

    name: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscriberSpec:
    """Where records come from: ``config["source"]`` is the URI."""

    name: str
    config: Mapping[str, Any]

    @property
    def source(self) -> str:
        return str(self.config["source"])


@dataclass(frozen=True)
class PublisherSpec:
    """Where results go: ``config["destination"]`` is the URI."""

    name: str
    config: Mapping[str, Any]

    @property
    def destination(self) -> str:
        return str(self.config["destination"])


@dataclass(frozen=True)
class NodeSpec:
    """One node; ``propagate`` is already resolved (node value, else the DAG's)."""

    name: str
    type: str = CALCULATION_NODE
    config: Mapping[str, Any] = field(default_factory=dict)
    subscriber: str | None = None
    publishers: tuple[str, ...] = ()
    calculator: str | None = None
    input_transformers: tuple[str, ...] = ()
    output_transformers: tuple[str, ...] = ()
    propagate: str = PROPAGATE_CHANGES

    @property
    def always(self) -> bool:
        return self.propagate == PROPAGATE_ALWAYS

    @property
    def interval(self) -> float:
        """Seconds between ticks of a MetronomeNode."""
        return float(self.config.get("interval", 1.0))


@dataclass(frozen=True)
class EdgeSpec:
    from_node: str
    to_node: str
    data_transformer: str | None = None


@dataclass(frozen=True)
class DagModel:
    """A validated DAG. Mappings are read-only and keep declaration order."""

    name: str
    subscribers: Mapping[str, SubscriberSpec]
    publishers: Mapping[str, PublisherSpec]
    calculators: Mapping[str, ComponentSpec]
    transformers: Mapping[str, ComponentSpec]
    nodes: Mapping[str, NodeSpec]
    edges: tuple[EdgeSpec, ...]
    source_path: str = "<memory>"
    description: str = ""
    start_time: str | None = None
    end_time: str | None = None
    duration_seconds: int | None = None
    schedule: Mapping[str, Any] | None = None  # the ``schedule`` object (SPEC §14), validated
    propagate: str = PROPAGATE_CHANGES
    dead_letter: str | None = None
    replicas: int = 1
    worker: int | None = None
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    checkpoint_idle: float = DEFAULT_CHECKPOINT_IDLE
    max_records: int = DEFAULT_MAX_RECORDS
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    max_bytes: int = DEFAULT_MAX_BYTES
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The document as written when it used ``${...}`` templates (``raw`` has them resolved); None otherwise.
    template: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # Derived topology, filled by build_topology().
    topo_order: tuple[str, ...] = ()
    parents: Mapping[str, tuple[EdgeSpec, ...]] = field(default_factory=dict)
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def roots(self) -> tuple[str, ...]:
        """Nodes fed by the ingress (subscription and metronome nodes), in topological order."""
        return tuple(n for n in self.topo_order if not self.parents[n])

    def node_for_subscriber(self, subscriber: str) -> str | None:
        for node in self.nodes.values():
            if node.subscriber == subscriber:
                return node.name
        return None

    def publisher_feeds(self, publisher: str) -> tuple[str, ...]:
        """Nodes that publish to ``publisher``, in topological order."""
        return tuple(n for n in self.topo_order if publisher in self.nodes[n].publishers)


def topological_order(nodes: Mapping[str, NodeSpec], edges: tuple[EdgeSpec, ...]) -> list[str] | None:
    """Kahn's algorithm, ties broken by declaration order; None when there is a cycle."""
    indegree = {name: 0 for name in nodes}
    outgoing: dict[str, list[str]] = {name: [] for name in nodes}
    for edge in edges:
        indegree[edge.to_node] += 1
        outgoing[edge.from_node].append(edge.to_node)
    position = {name: i for i, name in enumerate(nodes)}
    ready = sorted((n for n, d in indegree.items() if d == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in outgoing[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
                ready.sort(key=position.__getitem__)
    return order if len(order) == len(nodes) else None


def find_cycle(nodes: Mapping[str, NodeSpec], edges: tuple[EdgeSpec, ...]) -> list[str] | None:
    """One cycle as a path that returns to its start (``[a, b, c, a]``), or None."""
    outgoing: dict[str, list[str]] = {name: [] for name in nodes}
    for edge in edges:
        outgoing[edge.from_node].append(edge.to_node)
    colour: dict[str, int] = dict.fromkeys(nodes, 0)  # 0 new, 1 on stack, 2 done

    for start in nodes:
        if colour[start]:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        colour[start] = 1
        while stack:
            name, i = stack[-1]
            if i < len(outgoing[name]):
                stack[-1] = (name, i + 1)
                child = outgoing[name][i]
                if colour[child] == 1:
                    return [*path[path.index(child):], child]
                if colour[child] == 0:
                    colour[child] = 1
                    stack.append((child, 0))
                    path.append(child)
            else:
                colour[name] = 2
                stack.pop()
                path.pop()
    return None


def build_topology(dag: DagModel) -> DagModel:
    """Return ``dag`` with ``topo_order``, ``parents`` and ``children`` filled in.

    Raises ValueError on a cycle; validation reports cycles before this is called.
    """
    order = topological_order(dag.nodes, dag.edges)
    if order is None:
        raise ValueError(f"cycle: {' -> '.join(find_cycle(dag.nodes, dag.edges) or [])}")
    parents: dict[str, list[EdgeSpec]] = {n: [] for n in dag.nodes}
    children: dict[str, list[str]] = {n: [] for n in dag.nodes}
    for edge in dag.edges:
        parents[edge.to_node].append(edge)
        if edge.to_node not in children[edge.from_node]:
            children[edge.from_node].append(edge.to_node)
    position = {n: i for i, n in enumerate(order)}
    return DagModel(
        **{
            **{f: getattr(dag, f) for f in dag.__dataclass_fields__},
            "topo_order": tuple(order),
            "parents": MappingProxyType({n: tuple(p) for n, p in parents.items()}),
            "children": MappingProxyType(
                {n: tuple(sorted(c, key=position.__getitem__)) for n, c in children.items()}
            ),
        }
    )
