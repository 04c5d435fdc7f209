"""How records travel on external systems (SPEC §6): UTF-8 JSON objects, or msgpack with ``format: "msgpack"``.

Shared by the broker adapters: one message's bytes to a record (or a
:class:`~adapters.base.RejectedRecord` saying why it is not one) and back. JSON is written
compactly, with ``bytes`` values as base64 strings, as in files.

Usage::

    encode_record({"a": 1}, "json")            # b'{"a":1}'
    decode_record(b'{"a": 1}', "json")         # {'a': 1}
    decode_record(b"{oops", "json")            # RejectedRecord(raw='{oops', reason='not json: ...')
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from adapters.base import RejectedRecord
from adapters.builtin.file import dumps_line

FORMATS = ("json", "msgpack")


def encode_record(record: Any, fmt: str) -> bytes:
    """One record as a message's bytes (raises TypeError/ValueError for what cannot be encoded)."""
    if fmt == "msgpack":
        return msgpack.packb(record, use_bin_type=True)
    return dumps_line(record)[:-1].encode("utf-8")


def decode_record(value: bytes | None, fmt: str) -> Any:
    """One message's bytes as a record, or a :class:`RejectedRecord` saying why they are not one.

    Something that parses but is not a map is returned as it is: the runtime rejects it.
    """
    if value is None:
        return RejectedRecord(None, "empty message (no value)")
    try:
        return json.loads(value) if fmt == "json" else msgpack.unpackb(value, raw=False)
    except Exception as exc:  # json and msgpack raise several unrelated types for bad input
        raw = value.decode("utf-8", "replace") if fmt == "json" else value
        return RejectedRecord(raw, f"not {fmt}: {exc}")
