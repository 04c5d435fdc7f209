"""Strict JSON for any record msgpack can carry (SPEC §3 values, §7 "every response is valid JSON").

The standard :mod:`json` module rejects ``bytes`` (a 500 from the API) and writes float NaN /
infinities as bare ``NaN`` / ``Infinity`` tokens, which are not JSON. :class:`SafeJSONProvider`
converts such values first, in one pass that copies a container only when something in it
changes, then dumps with ``allow_nan=False``:

- ``bytes`` / ``bytearray`` -> base64 text (standard alphabet);
- float NaN, ``inf``, ``-inf`` -> ``null``;
- tuples -> lists;
- dict keys that are not strings -> strings, written as :mod:`json` writes them (``1``,
  ``2.5``, ``true``, ``null``, ``NaN``); ``bytes`` keys -> base64 text; other keys -> ``repr()``;
- anything else Flask's default hook knows (dates, UUIDs, dataclasses, ...) as Flask writes it,
  and the rest as its ``repr()`` string, never an exception.

Usage::

    from web.jsonsafe import SafeJSONProvider, to_jsonable

    app = Flask(__name__)
    app.json = SafeJSONProvider(app)
    app.json.sort_keys = False
    jsonify({"raw": b"\\x00\\xff", "x": float("nan")})   # body {"raw":"AP8=","x":null}

    to_jsonable({1: (b"ab", float("inf"))})              # {"1": ["YWI=", None]}
"""

from __future__ import annotations

import base64
import json
import math
import sys
from collections.abc import Callable
from itertools import islice
from typing import Any

from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest

__all__ = ["SafeJSONProvider", "dumps_iteratively", "to_jsonable"]

Fallback = Callable[[Any], Any]

# Types that need no conversion at all (checked by exact type: the common, fast case).
_PLAIN: frozenset[type] = frozenset({str, int, bool, type(None)})


def _bytes_text(data: bytes | bytearray) -> str:
    """``data`` as standard base64 text."""
    return base64.b64encode(data).decode("ascii")


def _float_key(key: float) -> str:
    """A float dict key the way :mod:`json` writes it (strings, so NaN/inf are fine here)."""
    if math.isnan(key):
        return "NaN"
    if math.isinf(key):
        return "Infinity" if key > 0 else "-Infinity"
    return float.__repr__(key)


def _safe_repr(value: object) -> str:
    """``repr(value)``; the plain object repr when the type's own ``__repr__`` fails."""
    try:
        return repr(value)
    except Exception:
        return object.__repr__(value)


def _key(key: Any) -> str:
    """A dict key as a JSON object key (a string)."""
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _float_key(key)
    if isinstance(key, bytes | bytearray):
        return _bytes_text(key)
    return _safe_repr(key)


def _replace(value: Any, fallback: Fallback) -> Any:
    """A value of no JSON type: what ``fallback`` makes of it (still to convert), else its ``repr()``."""
    try:
        replaced = fallback(value)
    except Exception:
        return _safe_repr(value)
    if type(replaced) is type(value):  # the hook gave back the same kind of thing: stop here
        return _safe_repr(value)
    return replaced


def to_jsonable(value: Any, fallback: Fallback = DefaultJSONProvider.default) -> Any:
    """``value`` with only JSON types left and no NaN/inf floats (see the module docstring).

    Containers are returned as they are, not copied, when nothing in them needs converting.
    ``fallback`` is tried on unknown objects (Flask's default hook unless given); it may
    return any value, which is converted in turn, or raise to get the object's ``repr()``.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        copy: dict[str, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            new_key = key if type(key) is str else _key(key)
            new_item = item if type(item) in _PLAIN else to_jsonable(item, fallback)
            if copy is None and (new_key is not key or new_item is not item):
                copy = dict(islice(value.items(), index))
            if copy is not None:
                copy[new_key] = new_item
        return value if copy is None else copy
    if isinstance(value, list | tuple):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            new_item = item if type(item) in _PLAIN else to_jsonable(item, fallback)
            if items is None and new_item is not item:
                items = list(value[:index])
            if items is not None:
                items.append(new_item)
        return value if items is None else items
    if isinstance(value, str | int):  # subclasses (enums, ...): json writes them as their base type
        return value
    if isinstance(value, bytes | bytearray):
        return _bytes_text(value)
    return to_jsonable(_replace(value, fallback), fallback)


# Entries of dumps_iteratively's work stack: text to write, a value to encode, a container left.
_TEXT, _VALUE, _LEAVE = 0, 1, 2


def dumps_iteratively(obj: Any, fallback: Fallback = DefaultJSONProvider.default, *, ensure_ascii: bool = True,
                      sort_keys: bool = False, separators: tuple[str, str] = (", ", ": ")) -> str:
    """``json.dumps(to_jsonable(obj), allow_nan=False, ...)`` without recursion, for any depth.

    :func:`to_jsonable` and :func:`json.dumps` recurse once per nesting level, so a record
    nested about a thousand levels deep (msgpack carries up to 1023) exceeds Python's
    recursion limit; this walks with an explicit stack instead, slower but depth-proof.
    Same text as the recursive path for the same ``separators`` (no ``indent``). Raises
    :class:`ValueError` on a circular reference, as :func:`json.dumps` does.
    """
    item_sep, key_sep = separators

    def leaf(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False)

    out: list[str] = []
    open_ids: set[int] = set()  # containers on the current path, to detect cycles
    todo: list[tuple[int, Any]] = [(_VALUE, obj)]
    while todo:
        entry, value = todo.pop()
        if entry == _TEXT:
            out.append(value)
        elif entry == _LEAVE:
            open_ids.discard(value)
        elif type(value) in _PLAIN or isinstance(value, str | int):
            out.append(leaf(value))
        elif isinstance(value, float):
            out.append(leaf(value if math.isfinite(value) else None))
        elif isinstance(value, bytes | bytearray):
            out.append(leaf(_bytes_text(value)))
        elif isinstance(value, dict | list | tuple):
            if id(value) in open_ids:
                raise ValueError("Circular reference detected")
            open_ids.add(id(value))
            todo.append((_LEAVE, id(value)))
            if isinstance(value, dict):
                pairs = list({_key(key): item for key, item in value.items()}.items())
                if sort_keys:
                    pairs.sort(key=lambda pair: pair[0])
                todo.append((_TEXT, "}"))
                for index in range(len(pairs) - 1, -1, -1):
                    key, item = pairs[index]
                    todo.append((_VALUE, item))
                    todo.append((_TEXT, (item_sep if index else "") + leaf(key) + key_sep))
                todo.append((_TEXT, "{"))
            else:
                todo.append((_TEXT, "]"))
                for index in range(len(value) - 1, -1, -1):
                    todo.append((_VALUE, value[index]))
                    if index:
                        todo.append((_TEXT, item_sep))
                todo.append((_TEXT, "["))
        else:
            todo.append((_VALUE, _replace(value, fallback)))
    return "".join(out)


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, made strict: every output is valid JSON (see the module docstring).

    Everything Flask serializes through the app (``jsonify``, ``app.json.dumps``, the
    ``tojson`` template filter) goes through :func:`to_jsonable` first.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """``obj`` as strict JSON text; keyword arguments as for :func:`json.dumps`.

        ``allow_nan`` is always ``False``: a NaN that got past the conversion is an error,
        never a bare ``NaN`` token in a response. Data nested too deep for the recursive
        path is written by :func:`dumps_iteratively` (without ``indent``).
        """
        kwargs["allow_nan"] = False
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        try:
            return json.dumps(to_jsonable(obj, kwargs["default"]), **kwargs)
        except RecursionError:
            pass  # out of the handler, so the deep path does not run inside the traceback
        separators = kwargs.get("separators") or ((",", ": ") if kwargs.get("indent") is not None else (", ", ": "))
        return dumps_iteratively(obj, kwargs["default"], ensure_ascii=kwargs["ensure_ascii"],
                                 sort_keys=kwargs["sort_keys"], separators=separators)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse JSON; text nested deeper than Python's recursion allows is a 400, not a crash."""
        try:
            return json.loads(s, **kwargs)
        except RecursionError:
            pass  # raised outside the handler: the traceback of a very deep parse is not kept
        raise BadRequest(f"the JSON body is nested too deep (more than about {sys.getrecursionlimit()} levels)")
