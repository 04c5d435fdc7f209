"""How records travel on external systems (SPEC §6, §14): UTF-8 JSON objects, msgpack with
``format: "msgpack"``, or binary Avro with ``format: "avro"`` and ``avro_schema`` (a schema file).

Shared by the broker adapters: one message's bytes to a record (or a
:class:`~adapters.base.RejectedRecord` saying why it is not one) and back. JSON is written
compactly, with ``bytes`` values as base64 strings, as in files. An Avro message is one record
written without a header (fastavro's schemaless writer) with the endpoint's parsed schema; the
format is then an :class:`AvroFormat`, a ``str`` equal to ``"avro"`` that carries the schema.

Usage::

    encode_record({"a": 1}, "json")            # b'{"a":1}'
    decode_record(b'{"a": 1}', "json")         # {'a': 1}
    decode_record(b"{oops", "json")            # RejectedRecord(raw='{oops', reason='not json: ...')
    fmt = endpoint_format({"format": "avro", "avro_schema": "/etc/price.avsc"}, parsed, "kafka")
    decode_record(encode_record({"price": 1.0}, fmt), fmt)   # {'price': 1.0}
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import msgpack

try:  # an optional dependency: the ``avro`` extra
    import fastavro
except ImportError:  # pragma: no cover - format "avro" then says what to install (parse_avro_schema)
    fastavro = None

from adapters.base import ParsedUri, RejectedRecord, setting
from adapters.builtin.file import dumps_line
from graphs.record_schema import parse_avro_schema

FORMATS = ("json", "msgpack", "avro")


class AvroFormat(str):
    """The ``"avro"`` format of one endpoint, with its parsed schema (``.schema``, from ``.path``)."""

    schema: Any
    path: str

    def __new__(cls, path: str) -> AvroFormat:
        fmt = super().__new__(cls, "avro")
        fmt.path, fmt.schema = path, parse_avro_schema(path)
        return fmt


def endpoint_format(config: Mapping[str, Any], parsed: ParsedUri, scheme: str) -> str:
    """An endpoint's format (config first, else the URI query): ``"json"``, ``"msgpack"`` or an :class:`AvroFormat`."""
    fmt = str(setting(config, parsed, "format", "json"))
    if fmt not in FORMATS:
        raise ValueError(f"{scheme} 'format' must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt != "avro":
        return fmt
    path = setting(config, parsed, "avro_schema", None)
    if not path:
        raise ValueError(f'{scheme} format "avro" needs "avro_schema": the path of an Avro schema file (.avsc)')
    return AvroFormat(str(path))


def encode_record(record: Any, fmt: str) -> bytes:
    """One record as a message's bytes (raises TypeError/ValueError for what cannot be encoded)."""
    if fmt == "msgpack":
        return msgpack.packb(record, use_bin_type=True)
    if isinstance(fmt, AvroFormat):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fmt.schema, record)
        return out.getvalue()
    return dumps_line(record)[:-1].encode("utf-8")


def decode_record(value: bytes | None, fmt: str) -> Any:
    """One message's bytes as a record, or a :class:`RejectedRecord` saying why they are not one.

    Something that parses but is not a map is returned as it is: the runtime rejects it.
    """
    if value is None:
        return RejectedRecord(None, "empty message (no value)")
    try:
        if isinstance(fmt, AvroFormat):
            return _avro_record(value, fmt)
        return json.loads(value) if fmt == "json" else msgpack.unpackb(value, raw=False)
    except Exception as exc:  # json, msgpack and fastavro raise several unrelated types for bad input
        raw = value.decode("utf-8", "replace") if fmt == "json" else value
        return RejectedRecord(raw, f"not {fmt}: {exc}")


def _avro_record(value: bytes, fmt: AvroFormat) -> Any:
    """One schemaless Avro record; trailing bytes mean the message was not written with this schema."""
    data = io.BytesIO(value)
    record = fastavro.schemaless_reader(data, fmt.schema, None)
    if data.tell() != len(value):
        raise ValueError(f"{len(value) - data.tell()} bytes left over after the record (another schema?)")
    return record
