"""A subscriber's ``schema`` (SPEC §14): a JSON Schema every record must satisfy at ingress; and the
``avro_schema`` file of an endpoint with ``format: "avro"``.

The value is an inline JSON Schema object, or a path to a JSON file holding one (relative to
the DAG file's folder, or absolute). ``dagserver check`` reports a schema that is not valid
JSON Schema (with the JSON path of the bad part) and a file that cannot be read; the
subscriber actor compiles it once and asks :func:`violation` of every record.

Usage::

    problems = schema_problems({"type": "objekt"}, "/dags/a.json")
    # [(["type"], "not a valid JSON Schema: 'objekt' is not valid under any of the given schemas")]
    check = compile_schema({"properties": {"price": {"type": "number"}}}, "/dags/a.json")
    violation(check, {"price": "abc"})   # "$.price: 'abc' is not of type 'number'"
    parse_avro_schema("/dags/price.avsc")  # fastavro's parsed schema, or ValueError naming the file
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

try:  # an optional dependency: the ``schema`` extra
    import jsonschema
except ImportError:  # pragma: no cover - reported as a check problem and at start
    jsonschema = None  # type: ignore[assignment]
try:  # an optional dependency: the ``avro`` extra
    import fastavro
except ImportError:  # pragma: no cover - reported as a check problem and at start
    fastavro = None


class SchemaError(ValueError):
    """A subscriber's ``schema`` cannot be used (file missing, not JSON, not a valid JSON Schema)."""


def _plain(value: Any) -> Any:
    """``value`` with read-only mappings turned back into dicts (the DAG model freezes configs)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def schema_file(value: str, source_path: str) -> str:
    """Where a schema file named ``value`` in the DAG file ``source_path`` is."""
    if os.path.isabs(value) or not source_path or source_path.startswith("<"):
        return value
    return os.path.join(os.path.dirname(os.path.abspath(source_path)), value)


def load_schema(value: Any, source_path: str) -> dict[str, Any]:
    """The schema document ``value`` stands for (raises :class:`SchemaError`)."""
    if isinstance(value, str):
        path = schema_file(value, source_path)
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except OSError as exc:
            raise SchemaError(f"cannot read the schema file {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise SchemaError(f"the schema file {path} is not JSON: {exc}") from exc
    else:
        document = _plain(value)
    if not isinstance(document, (dict, bool)):
        raise SchemaError(f"a schema is a JSON Schema object or a file path, not {type(document).__name__}")
    return document  # type: ignore[return-value]


def parse_avro_schema(path: str) -> Any:
    """The parsed Avro schema in the file ``path`` (ValueError naming the file when it cannot be used)."""
    if fastavro is None:
        raise ValueError("format 'avro' needs the fastavro package (pip install 'dagserver[avro]')")
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        return fastavro.parse_schema(document)
    except OSError as exc:
        raise ValueError(f"cannot read the avro_schema file {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # json and fastavro raise several types for a bad schema
        raise ValueError(f"the avro_schema file {path} is not a usable Avro schema: {exc}") from exc


def with_schema_files(config: Mapping[str, Any], source_path: str) -> dict[str, Any]:
    """An endpoint ``config`` with a relative ``avro_schema`` made relative to the DAG file's folder."""
    out = dict(config)
    if isinstance(out.get("avro_schema"), str):
        out["avro_schema"] = schema_file(out["avro_schema"], source_path)
    return out


def avro_problems(config: Mapping[str, Any], source_path: str) -> list[tuple[str, str]]:
    """What ``check`` says of an endpoint's ``format``/``avro_schema``: ``(key, message)`` pairs."""
    if config.get("format") != "avro":
        return []
    path = config.get("avro_schema")
    if not isinstance(path, str) or not path:
        return [("avro_schema", 'format "avro" needs "avro_schema": the path of an Avro schema file (.avsc)')]
    try:
        parse_avro_schema(schema_file(path, source_path))
    except ValueError as exc:
        return [("avro_schema", str(exc))]
    return []


def json_path(parts: Any) -> str:
    """``$.a[0].b`` for the path parts ``["a", 0, "b"]``."""
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def schema_problems(value: Any, source_path: str) -> list[tuple[list[Any], str]]:
    """What is wrong with a ``schema`` value: ``(path parts inside the schema, message)`` pairs (empty: fine)."""
    if jsonschema is None:
        return [([], "a schema needs the jsonschema package (pip install 'dagserver[schema]')")]
    try:
        document = load_schema(value, source_path)
    except SchemaError as exc:
        return [([], str(exc))]
    checker = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(checker(checker.META_SCHEMA).iter_errors(document))
    if error is None:
        return []
    return [(list(error.absolute_path), f"not a valid JSON Schema: {error.message}")]


def compile_schema(value: Any, source_path: str) -> Any:
    """A validator for ``value`` (raises :class:`SchemaError` if it cannot be one)."""
    problems = schema_problems(value, source_path)
    if problems:
        raise SchemaError(f"bad subscriber schema: {problems[0][1]}")
    document = load_schema(value, source_path)
    checker = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    return checker(document)


def violation(validator: Any, record: Any) -> str | None:
    """Why ``record`` does not satisfy the compiled schema (``$.path: message``), or None when it does."""
    if validator.is_valid(record):  # the cheap answer for the usual record
        return None
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    return f"{json_path(error.absolute_path)}: {error.message}"
