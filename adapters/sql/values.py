"""Values between SQL and records: column values to plain record values, record values to parameters.

Records carry only null, bool, int, float, str, bytes, lists and maps (SPEC §3), so a row's
values are mapped (the table is in docs/ADAPTERS.md, ``sql://``):

============================  ====================================================
column value                  record value
============================  ====================================================
NULL, bool, int, float, str   as they are (MySQL BOOLEAN is TINYINT(1): 0 / 1)
DECIMAL / NUMERIC             int when integral and within 64 bits, else float
DATE                          ``"YYYY-MM-DD"``
DATETIME / TIMESTAMP          ISO 8601, ``"YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]"``
TIME, INTERVAL                ``"HH:MM:SS[.ffffff]"`` (hours may pass 24; ``-`` if negative)
UUID                          its canonical string
JSON / JSONB                  the parsed value (MySQL JSON and PostgreSQL json/jsonb; MariaDB
                              keeps JSON as LONGTEXT: a string, unless in ``json_columns``)
BLOB / BYTEA / BINARY / BIT   bytes
arrays (PostgreSQL)           lists, each element mapped
anything else                 its ``str()``
============================  ====================================================

The other way, a record value bound to an ``%(name)s`` parameter is passed as it is,
except maps and lists, passed as JSON text.

Usage::

    plain_value(Decimal("2.50"))                                 # 2.5
    statement_parameters("INSERT INTO t (a) VALUES (%(a)s)")     # ['a']
    to_record(["id", "doc"], (1, '{"k": 1}'), {"doc"})           # {'id': 1, 'doc': {'k': 1}}
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from adapters.base import RejectedRecord
from adapters.formats import encode_record

INT64 = 1 << 63
# the column type codes (cursor.description) whose values are JSON, per driver kind
JSON_TYPE_CODES = {"mysql": frozenset({245}), "postgres": frozenset({114, 3802})}
_NAMED = re.compile(r"%\(([^)]*)\)s")


def plain_value(value: Any) -> Any:
    """A column value as a record value (see the module's table); never raises."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    return str(value)


def _decimal(value: Decimal) -> int | float:
    if value.is_finite() and value == value.to_integral_value():
        number = int(value)
        if -INT64 <= number < INT64:
            return number
    return float(value)


def _duration(value: timedelta) -> str:
    """``HH:MM:SS[.ffffff]`` with hours past 24 for longer spans, ``-`` in front when negative."""
    sign = "-" if value < timedelta(0) else ""
    micros = abs(value) // timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{micro:06d}" if micro else text


def to_record(columns: Sequence[str], row: Sequence[Any], json_columns: Collection[str]) -> dict | RejectedRecord:
    """One row as a record; the text of ``json_columns`` is parsed. A value that is not JSON rejects the row."""
    record: dict[str, Any] = {}
    for name, value in zip(columns, row, strict=True):
        if name in json_columns and isinstance(value, str | bytes | bytearray):
            try:
                value = json.loads(value)
            except ValueError as exc:
                return RejectedRecord({n: plain_value(v) for n, v in zip(columns, row, strict=True)},
                                      f"column {name!r} is not JSON: {exc}")
        record[name] = plain_value(value)
    return record


def columns_to_parse(kind: str, description: Sequence[Any], json_columns: Collection[str]) -> set[str]:
    """The columns of a result whose text :func:`to_record` parses: MySQL's JSON columns, and the
    ``json_columns`` the driver did not parse already (PostgreSQL json/jsonb arrive parsed)."""
    native = JSON_TYPE_CODES[kind]
    out = set()
    for column in description:
        name, code = column[0], column[1]
        if (code in native and kind == "mysql") or (name in json_columns and code not in native):
            out.add(name)
    return out


def param_value(value: Any) -> Any:
    """A record value bound to a statement parameter: maps and lists as JSON text, the rest as it is."""
    if isinstance(value, dict | list):
        return encode_record(value, "json").decode("utf-8")
    return value


def statement_parameters(statement: str, key: str) -> list[str]:
    """The names of the ``%(name)s`` parameters of ``statement``, in order of first use.

    Raises ValueError (naming ``key``, the statement's config key) for positional ``%s``
    placeholders or an empty name; a literal ``%`` must be written ``%%``.
    """
    bare = statement.replace("%%", "")
    names: list[str] = []
    for name in _NAMED.findall(bare):
        if not name:
            raise ValueError(f"{key!r} has a parameter without a name, '%()s'")
        if name not in names:
            names.append(name)
    if re.search(r"%s", _NAMED.sub("", bare)):
        raise ValueError(f"{key!r} uses a positional '%s': name every parameter after its record attribute, "
                         "'%(attribute)s' (write a literal '%' as '%%')")
    return names
