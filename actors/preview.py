"""Previews: a value shown as at most :data:`PREVIEW_CHARS` characters of JSON (node inputs and
outputs in a DAG's details, a tap's entries). Bytes show as base64, NaN and infinities as null.

    >>> preview({"a": 1})
    ({'a': 1}, False)
    >>> preview("x" * 50, limit=10)
    ('"xxxxxxxxx…', True)
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

PREVIEW_CHARS = 1024


class _Full(Exception):
    """The preview reached its length."""


def preview(value: Any, limit: int = PREVIEW_CHARS) -> tuple[Any, bool]:
    """``(value, False)`` when its JSON text fits in ``limit`` characters, else ``(start of the text, True)``.

    The walk stops as soon as ``limit`` characters are written, so it costs the same for a
    50 KB record as for a 5 MB one. Bytes show as base64, NaN and infinities as null.
    """
    out: list[str] = []
    left = [limit]
    try:
        _write(value, out, left)
    except _Full:
        return "".join(out)[:limit] + "…", True
    return value, False


def _put(text: str, out: list[str], left: list[int]) -> None:
    out.append(text)
    left[0] -= len(text)
    if left[0] < 0:
        raise _Full


def _write(value: Any, out: list[str], left: list[int]) -> None:
    kind = type(value)
    if kind is dict:
        _put("{", out, left)
        for i, (key, item) in enumerate(value.items()):
            _put(", " if i else "", out, left)
            _put(json.dumps(str(key)[: left[0] + 1]) + ": ", out, left)
            _write(item, out, left)
        _put("}", out, left)
    elif kind is list or kind is tuple:
        _put("[", out, left)
        for i, item in enumerate(value):
            _put(", " if i else "", out, left)
            _write(item, out, left)
        _put("]", out, left)
    elif value is None or kind is bool:
        _put("null" if value is None else ("true" if value else "false"), out, left)
    elif kind is int:
        _put(str(value) if -(10**18) < value < 10**18 else f"{float(value):e}", out, left)
    elif kind is float:
        _put(repr(value) if math.isfinite(value) else "null", out, left)
    elif kind is str:
        _put(json.dumps(value[: left[0] + 1]), out, left)
    elif kind is bytes or kind is bytearray:
        _put('"' + base64.b64encode(bytes(value[: left[0] + 1])).decode("ascii") + '"', out, left)
    else:
        _put(json.dumps(repr(value)[: left[0] + 1]), out, left)
