"""What counts as a changed value, and what counts as an acceptable record (SPEC §2-§3).

Both engines use these, so they agree on the corner cases: NaN equals NaN here (a
value that stays NaN has not changed), and a record is acceptable only if it is a map
with string keys that msgpack can encode.
"""

from __future__ import annotations

from typing import Any

import msgpack


def same_value(a: Any, b: Any) -> bool:
    """``a == b``, except that NaN equals NaN at any depth.

    Cheap on the hot path: equal values cost one ``==``, and different records stop at
    the first field that truly differs.
    """
    return a == b or nan_equal(a, b)


_CONTAINERS = (dict, list, tuple)


def nan_equal(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (already known to differ by ``==``) differ only by NaNs."""
    ta = type(a)
    if ta is dict:
        if type(b) is not dict or len(a) != len(b):
            return False
        for key, x in a.items():
            y = b.get(key, _MISSING)
            if x is y or x == y:
                continue
            if type(x) is float:
                if x != x and type(y) is float and y != y:
                    continue
                return False
            if type(x) not in _CONTAINERS or not nan_equal(x, y):
                return False
        return True
    if ta is float:
        return a != a and type(b) is float and b != b
    if ta is list or ta is tuple:
        if type(b) not in (list, tuple) or len(a) != len(b):
            return False
        return all(x is y or x == y or nan_equal(x, y) for x, y in zip(a, b, strict=True))
    return False


_MISSING = object()


def reject_reason(record: Any) -> str | None:
    """Why ``record`` cannot enter a DAG, or None when it can."""
    if not isinstance(record, dict):
        return f"record is not a map but {type(record).__name__}"
    if not all(isinstance(k, str) for k in record):
        return "record has a key that is not a string"
    try:
        msgpack.packb(record, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        return f"record cannot be encoded: {exc}"
    return None


class NotAMapError(TypeError):
    """A calculator or transformer returned something other than a map or None (SPEC §2 rule 4)."""


def not_a_map(kind: str, name: str | None, value: Any) -> NotAMapError:
    """The error both engines record when ``kind`` ``name`` returned ``value``, which is not a map.

    >>> str(not_a_map("calculator", "total", [1, 2]))
    "calculator 'total' returned a list, not a map (or None)"
    """
    who = f"{kind} {name!r}" if name else kind
    return NotAMapError(f"{who} returned {_a(type(value).__name__)}, not a map (or None)")


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def describe_error(exc: BaseException) -> str:
    """How a failed compute is described in a node's errors and dead letters."""
    return f"{type(exc).__name__}: {exc}"
