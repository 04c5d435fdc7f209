"""A valid DAG document to break, and ``dagserver check`` run on files: shared by the validation tests.

Usage::

    doc = base()                       # a fresh deep copy of BASE, valid
    doc["edges"][0]["to_node"] = "valuer"
    code, out, err, file = check_doc(tmp_path, doc)
    assert "did you mean 'value'?" in line_at(err, file, "edges[0].to_node")
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

from supervision.check import run_check

BASE: dict[str, Any] = {
    "name": "prices",
    "description": "sums two prices",
    "subscribers": [{"name": "prices", "config": {"source": "mem://queue/prices"}}],
    "publishers": [
        {"name": "out", "config": {"destination": "mem://topic/out"}},
        {"name": "audit", "config": {"destination": "mem://topic/audit"}},
    ],
    "calculators": [
        {"name": "add", "type": "AdditionCalculator", "config": {"arguments": ["a", "b"]}},
        {"name": "keep", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["result"]}},
    ],
    "transformers": [
        {"name": "rename", "type": "AttributeNameChangeDataTransformer",
         "config": {"name_mapping": {"x": "a"}}},
    ],
    "nodes": [
        {"name": "src", "type": "SubscriptionNode", "subscriber": "prices"},
        {"name": "value", "calculator": "add", "input_transformers": ["rename"]},
        {"name": "pub", "type": "PublicationNode", "calculator": "keep", "publishers": ["out"]},
        {"name": "clock", "type": "MetronomeNode", "config": {"interval": 5}, "publishers": ["audit"]},
    ],
    "edges": [
        {"from_node": "src", "to_node": "value", "data_transformer": "rename"},
        {"from_node": "value", "to_node": "pub"},
    ],
}


def base() -> dict[str, Any]:
    """A fresh copy of :data:`BASE`."""
    return copy.deepcopy(BASE)


def check_paths(paths: list[str]) -> tuple[int, str, str]:
    """``dagserver check PATHS``: the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = run_check(paths, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def check_doc(tmp_path: Path, doc: Any, name: str = "dag.json") -> tuple[int, str, str, str]:
    """Write ``doc`` to ``tmp_path/name`` and check it: exit code, stdout, stderr and the file's path."""
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    code, out, err = check_paths([str(path)])
    return code, out, err, str(path)


def line_at(err: str, file: str, where: str) -> str:
    """The one problem line reported at ``where``; fails listing all lines otherwise."""
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{file}: {where}: ")]
    assert lines, f"no problem at {where!r} in:\n{err}"
    return lines[0]
