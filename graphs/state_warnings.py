"""What ``dagserver check`` warns about stateful nodes (SPEC §11).

A stateful node computes on every record that *reaches* it; a node above it that propagates
``changes`` passes a record on only when its output changed, so identical consecutive
records stop there and the stateful node never counts them. That is legal (sometimes it
is what is wanted), so it is a warning, not a problem: the DAG still runs.

Usage::

    for warning in stateful_warnings(dag):
        print(f"warning: {warning}")
"""

from __future__ import annotations

from graphs.catalog import resolve_component_class
from graphs.errors import Problem
from graphs.model import METRONOME_NODE, DagModel
from graphs.state import is_stateful


def stateful_calculator(dag: DagModel, node: str) -> str | None:
    """The type of ``node``'s calculator when it is stateful, else None."""
    name = dag.nodes[node].calculator
    if name is None:
        return None
    type_name = dag.calculators[name].type
    try:
        cls = resolve_component_class(type_name, "calculator")
    except Exception:  # validation has reported it
        return None
    return type_name if is_stateful(cls) else None


def ancestors(dag: DagModel, node: str) -> list[str]:
    """Every node above ``node``, in topological order."""
    seen: set[str] = set()
    todo = [e.from_node for e in dag.parents[node]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(e.from_node for e in dag.parents[name])
    return [n for n in dag.topo_order if n in seen]


def stateful_warnings(dag: DagModel) -> list[Problem]:
    """One warning per stateful node with a node propagating ``changes`` above it."""
    positions = {n.get("name"): i for i, n in enumerate(dag.raw.get("nodes") or []) if isinstance(n, dict)}
    found: list[Problem] = []
    for name in dag.topo_order:
        kind = stateful_calculator(dag, name)
        if kind is None:
            continue
        swallowing = [a for a in ancestors(dag, name)
                      if not dag.nodes[a].always and dag.nodes[a].type != METRONOME_NODE]
        if not swallowing:
            continue
        listed = ", ".join(repr(a) for a in swallowing)
        where = f"nodes[{positions[name]}]" if name in positions else f"node {name!r}"
        found.append(Problem(
            dag.source_path, where, name,
            f"node {name!r} is stateful ({kind}) and counts every record that reaches it, but {listed} above it "
            "propagate 'changes': identical consecutive records stop there and are never counted",
            f'set "propagate": "always" on {listed} if every record should count'))
    return found
