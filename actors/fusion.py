"""Which nodes share an actor: linear chains run as one (SPEC §3 allows any batching of the work).

A node whose only parent has no other child adds nothing but a hop when it runs in an actor of
its own: with one GIL per worker, the hop buys no parallelism, only an encode, a decode and a
thread hand-off per epoch. :func:`node_chains` groups the nodes into maximal chains
``head -> ... -> tail`` where each node after the head has exactly one parent edge, from the
node before it, and that node has no other child. Each chain runs in one
:class:`~actors.node.NodeActor`, named after its head.

Between two nodes of a chain the outputs still cross as if encoded and decoded (the same
errors for outputs msgpack cannot carry, the same isolation), unless both nodes use only
built-in components (:func:`shares_outputs`): built-ins never change their input and, fed
records msgpack decoded, return only what msgpack carries, so the next node may read the
previous one's objects as they are.

Usage::

    for chain in node_chains(dag):            # [["ingest", "defaults", "value", "publish"]]
        hops = [shares_outputs(dag, a, b) for a, b in itertools.pairwise(chain)]
"""

from __future__ import annotations

from actors.messages import encodable
from graphs.model import ComponentSpec, DagModel


def node_chains(dag: DagModel) -> list[list[str]]:
    """The DAG's nodes as chains, each in flow order; chains ordered by their heads' topological order."""
    chains: list[list[str]] = []
    chain_of: dict[str, list[str]] = {}
    for name in dag.topo_order:
        edges = dag.parents[name]
        parent = edges[0].from_node if len(edges) == 1 else None
        if parent is not None and len(dag.children[parent]) == 1:
            chain = chain_of[parent]  # the parent has no other child, so it ends its chain
        else:
            chain = []
            chains.append(chain)
        chain.append(name)
        chain_of[name] = chain
    return chains


def shares_outputs(dag: DagModel, parent: str, child: str) -> bool:
    """Whether ``child`` may read ``parent``'s outputs without the encode/decode of a hop."""
    return _builtin_only(dag, parent) and _builtin_only(dag, child)


def _builtin_only(dag: DagModel, name: str) -> bool:
    """Every component ``name`` runs (calculator, transformers, its edges' transformers) is a built-in
    whose config msgpack carries (a default value it adds, say, must travel like any record)."""
    node = dag.nodes[name]
    specs: list[ComponentSpec] = [dag.calculators[node.calculator]] if node.calculator else []
    specs += [dag.transformers[t] for t in (*node.input_transformers, *node.output_transformers)]
    specs += [dag.transformers[e.data_transformer] for e in dag.parents[name] if e.data_transformer]
    return all("." not in spec.type and encodable(dict(spec.config)) for spec in specs)
