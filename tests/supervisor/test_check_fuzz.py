"""Property tests: whatever a DAG file holds, ``check`` answers 0 or 2, never a traceback."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphs.errors import DagValidationError
from graphs.loader import load_dag_dict
from graphs.model import DagModel
from graphs.validation import TOP_KEYS
from graphs.validation.nodes import NODE_KEYS
from supervision.check import run_check

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "name": "fuzz",
    "start_time": "2200",
    "duration": "6h30m",
    "propagate": "changes",
    "replicas": 1,
    "checkpoint": {"every_epochs": 5},
    "epochs": {"max_records": 100, "max_inflight": 2},
    "subscribers": [{"name": "in", "config": {"source": "mem://queue/in"}}],
    "publishers": [{"name": "out", "config": {"destination": "mem://topic/out"}}],
    "calculators": [
        {"name": "add", "type": "AdditionCalculator", "config": {"arguments": ["a", "b"]}},
        {"name": "defaults", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"a": 0}}},
    ],
    "transformers": [{"name": "drop", "type": "AttributeFilterAwayDataTransformer",
                      "config": {"filter_attributes": ["junk"]}}],
    "nodes": [
        {"name": "src", "type": "SubscriptionNode", "subscriber": "in", "calculator": "defaults"},
        {"name": "sum", "calculator": "add", "output_transformers": ["drop"], "propagate": "always"},
        {"name": "pub", "type": "PublicationNode", "publishers": ["out"]},
        {"name": "tick", "type": "MetronomeNode", "config": {"interval": 2}},
    ],
    "edges": [
        {"from_node": "src", "to_node": "sum", "data_transformer": "drop"},
        {"from_node": "sum", "to_node": "pub"},
        {"from_node": "tick", "to_node": "pub"},
    ],
}

SCALARS = (
    st.none() | st.booleans() | st.integers(-5, 5) | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
)
KEYS = st.sampled_from([*TOP_KEYS, *NODE_KEYS, "source", "destination", "from_node", "to_node"]) | st.text(
    max_size=8
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)
NAMES = st.sampled_from(["in", "out", "add", "defaults", "drop", "src", "sum", "pub", "tick", "", "In"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check_text(workdir: Path, text: str) -> tuple[int, str, str, str]:
    path = workdir / "dag.json"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = run_check([str(path)], out=out, err=err)
    return code, out.getvalue(), err.getvalue(), str(path)


def assert_sane(code: int, out: str, err: str, file: str) -> None:
    assert code in (0, 2)
    assert "internal error" not in err, err
    if code == 2:
        lines = err.splitlines()
        assert lines and out == ""
        assert all(line.startswith(f"{file}: ") for line in lines), err
    else:
        assert err == "" and out.startswith(f"ok: {file} ")


def assert_loads_or_reports(doc: Any) -> None:
    try:
        dag = load_dag_dict(doc, "mem.json")
    except DagValidationError as exc:
        assert exc.problems and all("\n" not in str(p) for p in exc.problems)
        assert "internal error" not in str(exc), str(exc)
    else:
        assert isinstance(dag, DagModel) and len(dag.topo_order) == len(dag.nodes)


def test_the_valid_dag_is_valid(workdir: Path) -> None:
    code, out, err, file = check_text(workdir, json.dumps(VALID))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"ok: {file} ")


@FUZZ
@given(doc=JSON | st.dictionaries(KEYS, JSON, max_size=8))
def test_random_documents(workdir: Path, doc: Any) -> None:
    code, out, err, file = check_text(workdir, json.dumps(doc))
    assert_sane(code, out, err, file)
    assert_loads_or_reports(doc)


@FUZZ
@given(text=st.text(max_size=60) | st.text(alphabet='{}[]",:01 \nnulltrefas', max_size=40))
def test_random_text(workdir: Path, text: str) -> None:
    assert_sane(*check_text(workdir, text))


def _locations(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (tuple of keys / indexes) to a value inside ``value``."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_locations(child, (*prefix, key)))
    return found


def _mutate(doc: dict[str, Any], data: st.DataObject) -> None:
    locations = _locations(doc)
    if not locations:
        return
    where = data.draw(st.sampled_from(locations), label="where")
    parent: Any = doc
    for key in where[:-1]:
        parent = parent[key]
    last = where[-1]
    current = parent[last]
    op = data.draw(st.sampled_from(["delete", "replace", "rename", "reference", "add-key", "duplicate"]),
                   label="op")
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = data.draw(JSON, label="value")
    elif op == "rename" and isinstance(current, str):
        parent[last] = data.draw(st.sampled_from([current + "x", current[:-1], current.upper(), ""]))
    elif op == "reference":
        parent[last] = data.draw(NAMES, label="name")
    elif op == "add-key" and isinstance(current, dict):
        current[data.draw(KEYS, label="key")] = data.draw(JSON, label="value")
    elif op == "duplicate" and isinstance(current, list) and current:
        current.append(copy.deepcopy(data.draw(st.sampled_from(current))))
    else:
        parent[last] = data.draw(SCALARS, label="scalar")


@FUZZ
@given(data=st.data(), rounds=st.integers(1, 3))
def test_mutated_valid_dag(workdir: Path, data: st.DataObject, rounds: int) -> None:
    doc = copy.deepcopy(VALID)
    for _ in range(rounds):
        _mutate(doc, data)
    code, out, err, file = check_text(workdir, json.dumps(doc))
    assert_sane(code, out, err, file)
    assert_loads_or_reports(doc)


@FUZZ
@given(data=st.data())
def test_mutated_json_text(workdir: Path, data: st.DataObject) -> None:
    text = json.dumps(VALID, indent=1)
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")
    insert = data.draw(st.sampled_from(["", ",", "}", "]", '"', ":", "\\", "NaN", "1e999", "\x00"]))
    drop = data.draw(st.integers(0, 3), label="drop")
    assert_sane(*check_text(workdir, text[:cut] + insert + text[cut + drop :]))
