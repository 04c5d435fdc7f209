"""A DAG's picture: a layered left-to-right layout the DAG page draws as SVG (SPEC §7).

Subscribers, nodes and publishers are boxes; arrows go subscriber → its node, node → node
(labelled with the edge's ``data_transformer``) and node → each of its publishers. Each box
sits in the layer of its longest path from a source; within a layer boxes are ordered by
the mean position of their parents, which keeps most arrows from crossing.

Usage::

    picture = layout(config)          # config: the DAG file's JSON
    picture.width, picture.height
    for box in picture.boxes: box.kind, box.name, box.x, box.y
    for arrow in picture.arrows: arrow.source, arrow.target, arrow.label, arrow.path
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOX_W, BOX_H = 150, 46
GAP_X, GAP_Y, MARGIN = 70, 26, 12


@dataclass
class Box:
    key: str  # "subscriber:NAME", "node:NAME" or "publisher:NAME"
    kind: str
    name: str
    detail: str = ""  # the node's type, the subscriber's source, the publisher's destination
    layer: int = 0
    x: float = 0.0
    y: float = 0.0


@dataclass
class Arrow:
    source: str
    target: str
    label: str = ""
    path: str = ""
    label_x: float = 0.0
    label_y: float = 0.0


@dataclass
class Picture:
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def _named(items: Any) -> list[dict[str, Any]]:
    return [i for i in items or () if isinstance(i, dict) and isinstance(i.get("name"), str)]


def _boxes_and_arrows(config: dict[str, Any]) -> tuple[dict[str, Box], list[Arrow]]:
    boxes: dict[str, Box] = {}
    arrows: list[Arrow] = []
    for sub in _named(config.get("subscribers")):
        source = str((sub.get("config") or {}).get("source", ""))
        boxes[f"subscriber:{sub['name']}"] = Box(f"subscriber:{sub['name']}", "subscriber", sub["name"], source)
    for pub in _named(config.get("publishers")):
        target = str((pub.get("config") or {}).get("destination", ""))
        boxes[f"publisher:{pub['name']}"] = Box(f"publisher:{pub['name']}", "publisher", pub["name"], target)
    for node in _named(config.get("nodes")):
        key = f"node:{node['name']}"
        boxes[key] = Box(key, "node", node["name"], str(node.get("type") or "CalculationNode"))
        if node.get("subscriber") and f"subscriber:{node['subscriber']}" in boxes:
            arrows.append(Arrow(f"subscriber:{node['subscriber']}", key))
        for pub in node.get("publishers") or ():
            if f"publisher:{pub}" in boxes:
                arrows.append(Arrow(key, f"publisher:{pub}"))
    for edge in config.get("edges") or ():
        ends = (f"node:{edge.get('from_node')}", f"node:{edge.get('to_node')}") if isinstance(edge, dict) else ()
        if ends and all(end in boxes for end in ends):
            arrows.append(Arrow(f"node:{edge['from_node']}", f"node:{edge['to_node']}",
                                str(edge.get("data_transformer") or "")))
    return boxes, arrows


def longest_paths(keys: list[str], parents: dict[str, list[str]]) -> dict[str, int]:
    """Each key's longest path from a source (a source is 0), without recursion: a chain of any length
    is fine. An arrow back to a box still being measured (a cycle) is left out.

    >>> longest_paths(["a", "b", "c"], {"a": [], "b": ["a"], "c": ["a", "b"]})
    {'a': 0, 'b': 1, 'c': 2}
    """
    layer: dict[str, int] = {}
    measuring: set[str] = set()
    for root in keys:
        if root in layer:
            continue
        stack = [(root, iter(parents[root]))]
        measuring.add(root)
        while stack:
            key, todo = stack[-1]
            parent = next((p for p in todo if p not in layer and p not in measuring), None)
            if parent is not None:
                measuring.add(parent)
                stack.append((parent, iter(parents[parent])))
                continue
            stack.pop()
            measuring.discard(key)
            layer[key] = 1 + max((layer[p] for p in parents[key] if p in layer), default=-1)
    return layer


def layout(config: dict[str, Any]) -> Picture:
    """Place every subscriber, node and publisher of the DAG ``config`` in layers, left to right."""
    boxes, arrows = _boxes_and_arrows(config)
    parents: dict[str, list[str]] = {key: [] for key in boxes}
    for arrow in arrows:
        parents[arrow.target].append(arrow.source)
    layer = longest_paths(list(boxes), parents)
    for key, box in boxes.items():
        box.layer = layer[key]
    last = max(layer.values(), default=0)
    for box in boxes.values():  # publishers in the last layer: the output side reads alike in every DAG
        if box.kind == "publisher":
            box.layer = max(box.layer, last)
    columns: dict[int, list[Box]] = {}
    for box in boxes.values():
        columns.setdefault(box.layer, []).append(box)
    row: dict[str, float] = {}

    def mean_parent_row(box: Box) -> float:  # parents to the left only (an arrow closing a cycle points back)
        placed = [row[p] for p in parents[box.key] if p in row]
        return sum(placed) / len(placed) if placed else -1.0

    for index in sorted(columns):
        column = columns[index]
        column.sort(key=mean_parent_row)
        for position, box in enumerate(column):
            row[box.key] = position
    tallest = max((len(c) for c in columns.values()), default=0)
    height = MARGIN * 2 + tallest * BOX_H + max(tallest - 1, 0) * GAP_Y
    for index, column in columns.items():
        offset = (height - (len(column) * BOX_H + (len(column) - 1) * GAP_Y)) / 2
        for position, box in enumerate(column):
            box.x = MARGIN + index * (BOX_W + GAP_X)
            box.y = offset + position * (BOX_H + GAP_Y)
    for arrow in arrows:
        a, b = boxes[arrow.source], boxes[arrow.target]
        x1, y1, x2, y2 = a.x + BOX_W, a.y + BOX_H / 2, b.x, b.y + BOX_H / 2
        bend = max((x2 - x1) / 2, 20)
        arrow.path = f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        arrow.label_x, arrow.label_y = (x1 + x2) / 2, (y1 + y2) / 2 - 4
    width = MARGIN * 2 + (last + 1) * BOX_W + last * GAP_X if boxes else 0
    return Picture(list(boxes.values()), arrows, width, height)
