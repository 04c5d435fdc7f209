"""A subscriber's JSON Schema ``schema`` (SPEC §14): what ``check`` reports, and the ingress verdict per record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters import registry
from graphs.loader import check_dag_file
from graphs.record_schema import compile_schema, violation

PRICE = {"type": "object", "properties": {"price": {"type": "number"}, "qty": {"type": "integer"}},
         "required": ["price"]}


def dag_with_schema(tmp_path: Path, schema: Any) -> Path:
    doc = {
        "name": "schemad",
        "subscribers": [{"name": "in", "config": {"source": "mem://queue/in", "schema": schema}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
    }
    path = tmp_path / "dag.json"
    path.write_text(json.dumps(doc))
    return path


def test_an_inline_schema_and_a_relative_schema_file_pass_check(tmp_path: Path) -> None:
    assert check_dag_file(dag_with_schema(tmp_path, PRICE), registry)[1] == []
    (tmp_path / "price.schema.json").write_text(json.dumps(PRICE))
    model, problems = check_dag_file(dag_with_schema(tmp_path, "price.schema.json"), registry)
    assert problems == [] and model is not None


def test_a_bad_schema_is_a_check_error_at_its_json_path(tmp_path: Path) -> None:
    bad = {"type": "object", "properties": {"price": {"type": "nombre"}}}
    _, problems = check_dag_file(dag_with_schema(tmp_path, bad), registry)
    assert len(problems) == 1
    assert problems[0].where == "subscribers[0].config.schema.properties.price.type"
    assert "not a valid JSON Schema" in problems[0].message


def test_a_missing_schema_file_is_a_check_error_naming_it(tmp_path: Path) -> None:
    _, problems = check_dag_file(dag_with_schema(tmp_path, "nowhere.json"), registry)
    assert len(problems) == 1
    assert problems[0].where == "subscribers[0].config.schema"
    assert str(tmp_path / "nowhere.json") in problems[0].message


def test_a_violation_names_the_failing_json_path() -> None:
    checker = compile_schema(PRICE, "<memory>")
    assert violation(checker, {"price": 1.5, "qty": 2}) is None
    assert violation(checker, {"price": "abc"}) == "$.price: 'abc' is not of type 'number'"
    assert violation(checker, {"qty": 1}) == "$: 'price' is a required property"


def with_avro(tmp_path: Path, avro_schema: Any) -> Path:
    path = dag_with_schema(tmp_path, PRICE)
    doc = json.loads(path.read_text())
    doc["publishers"][0]["config"] = {"destination": "kafka://topic/out", "format": "avro"}
    if avro_schema is not None:
        doc["publishers"][0]["config"]["avro_schema"] = avro_schema
    path.write_text(json.dumps(doc))
    return path


def test_check_reads_the_avro_schema_file_relative_to_the_dag(tmp_path: Path) -> None:
    (tmp_path / "out.avsc").write_text(json.dumps({"type": "record", "name": "Out",
                                                   "fields": [{"name": "price", "type": "double"}]}))
    model, problems = check_dag_file(with_avro(tmp_path, "out.avsc"), registry)
    assert problems == [] and model is not None
    assert model.publishers["out"].config["avro_schema"] == str(tmp_path / "out.avsc")  # resolved at load
    (tmp_path / "bad.avsc").write_text(json.dumps({"type": "record", "name": "Bad", "fields": [{"name": "x"}]}))
    for given, expected in (("missing.avsc", "cannot read the avro_schema file"),
                            ("bad.avsc", "is not a usable Avro schema"), (None, 'needs "avro_schema"')):
        _, problems = check_dag_file(with_avro(tmp_path, given), registry)
        assert [p.where for p in problems] == ["publishers[0].config.avro_schema"], problems
        assert expected in problems[0].message
