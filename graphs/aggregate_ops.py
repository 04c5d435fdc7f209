"""The pieces of :class:`~graphs.aggregate.AggregateCalculator`: operations, event times, window edges.

Each operation keeps one slot per group: ``count`` an int, ``sum`` a float, ``min``/``max`` a
float or None, ``avg`` ``[sum, n]``, ``first``/``last`` ``[arrival, value]`` or None,
``count_distinct`` a set. :func:`update` folds one record's value into a slot, :func:`merge`
folds two sessions' slots into one, :func:`result` is what the output shows, and
:func:`to_plain` / :func:`from_plain` turn a slot into msgpack-encodable data and back.

Usage::

    slot = initial("avg")                  # [0.0, 0]
    slot = update("avg", slot, 3, 1)       # [3.0, 1]
    result("avg", slot)                    # 3.0
    event_time("2024-01-01T00:00:00Z")     # 1704067200.0
    iso_utc(1704067200.0)                  # '2024-01-01T00:00:00Z'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

OPS = ("count", "sum", "min", "max", "avg", "first", "last", "count_distinct")
NUMERIC_OPS = frozenset(("sum", "min", "max", "avg"))
_SCALARS = (str, int, float, bool, bytes)
# datetime's range: an event time outside it has no ISO-8601 form
MIN_TIME = datetime(1, 1, 2, tzinfo=UTC).timestamp()
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
NAN = float("nan")  # the one NaN every NaN key or distinct value becomes, so they all meet


class Skipped(Exception):
    """A value an operation cannot use (not a number, a list for count_distinct...): left out."""


def initial(op: str) -> Any:
    """A fresh slot for ``op``."""
    if op == "count":
        return 0
    if op == "sum":
        return 0.0
    if op == "avg":
        return [0.0, 0]
    if op == "count_distinct":
        return set()
    return None  # min, max, first, last


def number(value: Any) -> float:
    """``float(value)``; raises :class:`Skipped` when it is not convertible."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise Skipped(value) from None


def hashable_scalar(value: Any) -> Any:
    """``value`` as a set member or group key part: scalars as they are (every NaN as :data:`NAN`)."""
    if type(value) is float and value != value:
        return NAN
    if value is None or isinstance(value, _SCALARS):
        return value
    raise Skipped(value)


def update(op: str, slot: Any, value: Any, arrival: int) -> Any:
    """``slot`` with ``value`` (present, not None) folded in; raises :class:`Skipped` for a value
    ``op`` cannot use. ``arrival`` orders first/last."""
    if op == "count":
        return slot + 1
    if op == "sum":
        return slot + number(value)
    if op == "min" or op == "max":
        x = number(value)
        if x != x:  # NaN: no order, so no minimum or maximum
            raise Skipped(value)
        if slot is None or (x < slot if op == "min" else x > slot):
            return x
        return slot
    if op == "avg":
        slot[0] += number(value)
        slot[1] += 1
        return slot
    if op == "first":
        return slot if slot is not None else [arrival, value]
    if op == "last":
        return [arrival, value]
    slot.add(hashable_scalar(value))  # count_distinct
    return slot


def merge(op: str, a: Any, b: Any) -> Any:
    """One slot for two sessions that a record bridged (``a`` the older session's)."""
    if op in ("count", "sum"):
        return a + b
    if op in ("min", "max"):
        if a is None or b is None:
            return a if b is None else b
        return min(a, b) if op == "min" else max(a, b)
    if op == "avg":
        return [a[0] + b[0], a[1] + b[1]]
    if op in ("first", "last"):
        if a is None or b is None:
            return a if b is None else b
        earlier, later = (a, b) if a[0] < b[0] else (b, a)
        return earlier if op == "first" else later
    return a | b  # count_distinct


def result(op: str, slot: Any) -> Any:
    """What the output shows for ``slot``: avg of nothing, min/max/first/last of nothing are null."""
    if op == "avg":
        return slot[0] / slot[1] if slot[1] else None
    if op in ("first", "last"):
        return None if slot is None else slot[1]
    if op == "count_distinct":
        return len(slot)
    return slot


def to_plain(op: str, slot: Any) -> Any:
    """``slot`` as msgpack-encodable data (sets become lists)."""
    if op == "count_distinct":
        return list(slot)
    if op == "avg":
        return list(slot)
    return slot


def from_plain(op: str, data: Any) -> Any:
    """The slot :func:`to_plain` gave ``data`` for."""
    if op == "count_distinct":
        return {hashable_scalar(v) for v in data}
    if op == "avg":
        return [float(data[0]), int(data[1])]
    return data


# -- event time and windows ----------------------------------------------------------------------------
def event_time(value: Any) -> float:
    """Epoch seconds from a number of epoch seconds or an ISO-8601 string (no zone: UTC).

    Raises ValueError saying why the value is not a usable time.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is neither epoch seconds nor an ISO-8601 time") from None
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        raise ValueError(f"{type(value).__name__} {value!r} is neither epoch seconds nor an ISO-8601 time")
    if not (MIN_TIME <= seconds <= MAX_TIME):  # also NaN
        raise ValueError(f"{value!r} is outside the years 0001-9999")
    return seconds


def iso_utc(seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (with ``.ffffff`` when there is a fraction of a second)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"


def tumbling_start(t: float, size: float) -> float:
    """The start of the tumbling window ``[start, start + size)`` holding ``t``."""
    start = math.floor(t / size) * size
    if start > t:  # float rounding may land one window off either way
        start -= size
    elif start + size <= t:
        start += size
    return start
