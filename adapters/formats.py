"""How records travel on external systems (SPEC §6, §14): UTF-8 JSON objects, msgpack with
``format: "msgpack"``, or binary Avro with ``format: "avro"`` and ``avro_schema`` (a schema file).

Shared by the broker adapters (Kafka, Redis, ActiveMQ; SQL's JSON columns): one message's bytes
to a record (or a :class:`~adapters.base.RejectedRecord` saying why it is not one) and back.
JSON is written compactly, with ``bytes`` values as base64 strings, as in files.

JSON goes through ``orjson`` when it is installed (the ``kafka`` and ``redis`` extras bring it),
through the standard library otherwise; both paths give the same records:

* NaN and ±Infinity are written as ``null`` on both paths (they are not JSON, and consumers in
  other languages refuse them); reading still accepts the ``NaN``/``Infinity`` that older writers
  produced.
* What ``orjson`` cannot write exactly (integers beyond 64 bits, lone surrogates, non-``str`` keys,
  ``str``/``int``/``dict`` subclasses, dates, dataclasses) goes to the standard library, which writes it or
  refuses it exactly as before. What ``orjson`` cannot read, or might read differently (numbers of
  19 digits or more, which it would turn into floats), is read by the standard library too, so
  invalid UTF-8 and broken JSON are rejected as before.
* The bytes differ only in how non-ASCII text is spelled (raw UTF-8 instead of ``\\u`` escapes);
  the records they decode to are equal.

An Avro message is one record written without a header (fastavro's schemaless writer) with the
endpoint's parsed schema; the format is then an :class:`AvroFormat`, a ``str`` equal to ``"avro"``
that carries the schema.

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
import math
import re
from collections.abc import Mapping
from typing import Any

import msgpack

try:  # optional: without it the stdlib path below is complete on its own
    import orjson
except ImportError:
    orjson = None
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



# orjson reads integers past 64 bits as floats: messages with such long digit runs are read by the stdlib
_LONG_NUMBER = re.compile(rb"\d{19,}")
_LONG_NUMBER_TEXT = re.compile(r"\d{19,}")
_ORJSON_OPTIONS = (
    (orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
     | orjson.OPT_PASSTHROUGH_DATACLASS) if orjson is not None else 0
)


class _NotFast(TypeError):
    """A value the orjson path leaves to the standard library."""


def _refuse(value: Any) -> Any:
    raise _NotFast(type(value).__name__)


def _finite(value: Any) -> Any:
    """``value`` with NaN and ±Infinity (values and keys) as None, the way orjson writes them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_finite(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def encode_json_stdlib(record: Any) -> bytes:
    """The standard-library JSON path of :func:`encode_record` (NaN/Infinity as null)."""
    try:
        return json.dumps(record, separators=(",", ":"), default=_bytes_or_refuse, allow_nan=False).encode("utf-8")
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
    return dumps_line(_finite(record))[:-1].encode("utf-8")


def _bytes_or_refuse(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return dumps_line(bytes(value))[1:-2]  # the base64 text, as files write it
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable")


def _bytes_fast(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return dumps_line(bytes(value))[1:-2]
    raise _NotFast(type(value).__name__)


def encode_record(record: Any, fmt: str) -> bytes:
    """One record as a message's bytes (raises TypeError/ValueError for what cannot be encoded)."""
    if fmt == "msgpack":
        return msgpack.packb(record, use_bin_type=True)
    if isinstance(fmt, AvroFormat):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fmt.schema, record)
        return out.getvalue()
    if orjson is not None:
        try:
            return orjson.dumps(record, default=_bytes_fast, option=_ORJSON_OPTIONS)
        except TypeError:  # big ints, lone surrogates, subclasses, ...: the stdlib writes or refuses them
            pass
    return encode_json_stdlib(record)


def decode_json_stdlib(value: bytes) -> Any:
    """The standard-library JSON path of :func:`decode_record` (raises on bad input)."""
    return json.loads(value)


def _decode_json(value: bytes) -> Any:
    long_number = _LONG_NUMBER_TEXT if isinstance(value, str) else _LONG_NUMBER
    if orjson is not None and not long_number.search(value):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # NaN, a BOM, a lone surrogate escape, bad input: as before
            pass
    return json.loads(value)


def decode_record(value: bytes | None, fmt: str) -> Any:
    """One message's bytes as a record, or a :class:`RejectedRecord` saying why they are not one.

    Something that parses but is not a map is returned as it is: the runtime rejects it.
    """
    if value is None:
        return RejectedRecord(None, "empty message (no value)")
    try:
        if isinstance(fmt, AvroFormat):
            return _avro_record(value, fmt)
        return _decode_json(value) if fmt == "json" else msgpack.unpackb(value, raw=False)
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
