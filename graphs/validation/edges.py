"""Validation of ``edges``: references, roots, duplicates, reachability and cycles."""

from __future__ import annotations

from typing import Any

from graphs.model import CALCULATION_NODE, PUBLICATION_NODE, EdgeSpec, NodeSpec, find_cycle
from graphs.suggest import did_you_mean
from graphs.validation.base import Collector, check_keys, expect_string, item_path, key_path
from graphs.validation.nodes import ROOT_TYPES, check_ref
from graphs.validation.sections import Index, section_entries

EDGE_KEYS = ("from_node", "to_node", "data_transformer")
NEEDS_PARENT = (CALCULATION_NODE, PUBLICATION_NODE)
MAX_CYCLES = 10


def _endpoint(col: Collector, index: Index, edge: dict[str, Any], path: str, key: str) -> str | None:
    """The node named by ``edge[key]`` if it is declared, else None (after reporting)."""
    kpath = key_path(path, key)
    if key not in edge or edge[key] is None:
        col.add(kpath, f'an edge needs "{key}"')
        return None
    value = edge[key]
    if not expect_string(col, value, kpath, f"{key}"):
        return None
    if not check_ref(col, index, value, kpath, "node", "nodes"):
        return None
    return value


def check_edges(col: Collector, data: dict[str, Any], index: Index) -> None:
    """Validate ``edges`` and the graph they form (after :func:`check_nodes`)."""
    incoming: set[str] = set()
    seen: dict[tuple[str, str], int] = {}
    good: list[tuple[int, EdgeSpec]] = []
    for i, edge in section_entries(col, data, "edges", "edge"):
        path = item_path("edges", i)
        check_keys(col, edge, path, EDGE_KEYS, "an edge")
        source = _endpoint(col, index, edge, path, "from_node")
        target = _endpoint(col, index, edge, path, "to_node")
        to_raw = edge.get("to_node")
        if isinstance(to_raw, str):
            # a misspelt target still counts for the node it most likely means
            incoming.add(to_raw if target is not None else did_you_mean(to_raw, index.nodes) or to_raw)
        transformer = edge.get("data_transformer")
        tpath = key_path(path, "data_transformer")
        if transformer is not None and expect_string(col, transformer, tpath, "a data_transformer name"):
            check_ref(col, index, transformer, tpath, "transformer", "transformers")
        if target is not None and index.node_types.get(target) in ROOT_TYPES:
            col.add(key_path(path, "to_node"),
                    f"an edge cannot lead into {target!r}: a {index.node_types[target]} is a root "
                    "and takes no input from other nodes", target,
                    'make it a CalculationNode, or drop the edge')
            continue
        if source is None or target is None:
            continue
        if source == target:
            col.add(path, f"self-loop: an edge from {source!r} to itself", source)
            continue
        if (source, target) in seen:
            col.add(path, f"duplicate edge {source} -> {target} (same as "
                    f"{item_path('edges', seen[(source, target)])})")
            continue
        seen[(source, target)] = i
        good.append((i, EdgeSpec(source, target)))
    edges = data.get("edges")
    if edges is None or isinstance(edges, list | tuple):  # else the section itself was reported
        _check_reachable(col, index, incoming)
    _check_cycles(col, index, good)


def _check_reachable(col: Collector, index: Index, incoming: set[str]) -> None:
    for name, i in index.nodes.items():
        node_type = index.node_types.get(name)
        if node_type in NEEDS_PARENT and name not in incoming:
            col.add(item_path("nodes", i),
                    f"node {name!r} is unreachable: a {node_type} needs at least one incoming edge",
                    name, 'add an edge {"from_node": ..., "to_node": "' + name + '"}')


def _check_cycles(col: Collector, index: Index, good: list[tuple[int, EdgeSpec]]) -> None:
    remaining = list(good)
    nodes = {name: NodeSpec(name=name) for name in index.nodes}
    for _ in range(min(len(good), MAX_CYCLES)):  # report cycles one by one, breaking each
        cycle = find_cycle(nodes, tuple(edge for _, edge in remaining))
        if not cycle:
            return
        closing = next(
            k for k, (_, edge) in enumerate(remaining)
            if edge.from_node == cycle[-2] and edge.to_node == cycle[-1]
        )
        i = remaining[closing][0]
        col.add(item_path("edges", i), f"cycle: {' -> '.join(cycle)}",
                suggestion="a DAG must not loop back on itself; remove one edge of the cycle")
        del remaining[closing]
