"""Reading and checking an ``AggregateCalculator`` config (SPEC §11).

Every problem is a :class:`~graphs.components.ComponentConfigError` whose ``key`` is the
path inside the config (``aggregates.volume.op``, ``window.tumbling``...), so ``dagserver
check`` reports it as ``calculators[2].config.aggregates.volume.op`` with the value and a
suggestion.

Usage::

    cfg = parse_config({"key": ["symbol"], "aggregates": {"n": {"op": "count"}}})
    cfg.aggregates          # (("n", "count", None),)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphs.aggregate_ops import OPS
from graphs.components import ComponentConfigError, closest, short_repr

DEFAULT_MAX_KEYS = 100_000
AGGREGATE_KEYS = ("op", "of")
WINDOW_KINDS = ("tumbling", "session")
WINDOW_KEYS = (*WINDOW_KINDS, "time")
RESERVED = ("window_start", "window_end")


@dataclass(frozen=True)
class AggregateConfig:
    """A checked config: ``aggregates`` as ``(output, op, of)`` (``of`` None: count every record)."""

    key: tuple[str, ...]
    aggregates: tuple[tuple[str, str, str | None], ...]
    window: str | None  # "tumbling", "session" or None
    size: float  # tumbling: window length; session: the gap (seconds)
    time: str | None
    lateness: float
    max_keys: int

    def shape(self) -> list[Any]:
        """What a snapshot must have been taken with to be restored (lateness and max_keys may change)."""
        return [list(self.key), [list(a) for a in self.aggregates], self.window, self.size, self.time]


def _seconds(value: Any, key: str, what: str, *, zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        bound = "zero or more" if zero else "more than zero"
        raise ComponentConfigError(key, value, f"{what} must be a number of seconds, {bound}, not {short_repr(value)}")
    return float(value)


def _attribute(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ComponentConfigError(key, value, f"{what} must be an attribute name (a non-empty string), "
                                   f"not {short_repr(value)}")
    return value


def _key(config: Mapping[str, Any]) -> tuple[str, ...]:
    value = config.get("key", [])
    if value is None:
        return ()
    if isinstance(value, str):
        raise ComponentConfigError("key", value, "key must be a list of attribute names", f'["{value}"]')
    if not isinstance(value, list | tuple):
        raise ComponentConfigError("key", value, f"key must be a list of attribute names, not {short_repr(value)}")
    names = tuple(_attribute(item, f"key[{i}]", "a key entry") for i, item in enumerate(value))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ComponentConfigError(f"key[{i}]", name, f"{name!r} is in the key twice")
    return names


def _aggregates(config: Mapping[str, Any], key: tuple[str, ...]) -> tuple[tuple[str, str, str | None], ...]:
    value = config.get("aggregates")
    example = '{"trades": {"op": "count"}, "volume": {"op": "sum", "of": "qty"}}'
    if not isinstance(value, Mapping) or not value:
        what = "missing" if value is None else f"not {short_repr(value)}"
        raise ComponentConfigError("aggregates", value, f"aggregates must be a non-empty map of output attribute "
                                   f'-> {{"op": OP, "of": ATTRIBUTE}} ({what}), e.g. {example}')
    found: list[tuple[str, str, str | None]] = []
    for out, spec in value.items():
        path = f"aggregates.{out}"
        if not isinstance(out, str) or not out:
            raise ComponentConfigError(path, out, "an output attribute name must be a non-empty string")
        if out in key or out in RESERVED:
            raise ComponentConfigError(path, out, f"output attribute {out!r} is also "
                                       f"{'a key attribute' if out in key else 'set by the window'}")
        if not isinstance(spec, Mapping):
            raise ComponentConfigError(path, spec, f'must be {{"op": OP, "of": ATTRIBUTE}}, not {short_repr(spec)}')
        for k in spec:
            if k not in AGGREGATE_KEYS:
                raise ComponentConfigError(f"{path}.{k}", spec[k], "unknown key (accepted: 'op', 'of')",
                                           closest(str(k), AGGREGATE_KEYS))
        op = spec.get("op")
        if op not in OPS:
            raise ComponentConfigError(f"{path}.op", op, f"op must be one of {', '.join(OPS)}",
                                       closest(str(op), OPS) if isinstance(op, str) else None)
        of = spec.get("of")
        if of is None and op != "count":
            raise ComponentConfigError(f"{path}.of", None, f'op {op!r} needs "of": the attribute it aggregates')
        found.append((out, op, None if of is None else _attribute(of, f"{path}.of", "of")))
    return tuple(found)


def _window(config: Mapping[str, Any]) -> tuple[str | None, float, str | None]:
    value = config.get("window")
    if value is None:
        return None, 0.0, None
    if not isinstance(value, Mapping):
        raise ComponentConfigError("window", value, 'window must be {"tumbling": SECONDS, "time": ATTRIBUTE} or '
                                   f'{{"session": GAP_SECONDS, "time": ATTRIBUTE}}, not {short_repr(value)}')
    for k in value:
        if k not in WINDOW_KEYS:
            raise ComponentConfigError(f"window.{k}", value[k], "unknown key (accepted: 'tumbling', 'session', "
                                       "'time')", closest(str(k), WINDOW_KEYS))
    kinds = [k for k in WINDOW_KINDS if k in value]
    if len(kinds) != 1:
        raise ComponentConfigError("window", dict(value), 'a window is either "tumbling" or "session": give '
                                   "exactly one of them")
    kind = kinds[0]
    size = _seconds(value[kind], f"window.{kind}", "the window length" if kind == "tumbling" else "the session gap")
    if "time" not in value:
        raise ComponentConfigError("window.time", None, 'a window needs "time": the attribute holding each '
                                   "record's event time (epoch seconds or ISO-8601)")
    return kind, size, _attribute(value["time"], "window.time", "window.time")


def parse_config(config: Mapping[str, Any]) -> AggregateConfig:
    """The checked config; raises :class:`ComponentConfigError` naming the first problem."""
    key = _key(config)
    aggregates = _aggregates(config, key)
    window, size, time_attr = _window(config)
    lateness = 0.0
    if config.get("lateness") is not None:
        if window is None:
            raise ComponentConfigError("lateness", config["lateness"], "lateness applies to windows only",
                                       "window")
        lateness = _seconds(config["lateness"], "lateness", "lateness", zero=True)
    max_keys = config.get("max_keys", DEFAULT_MAX_KEYS)
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
        raise ComponentConfigError("max_keys", max_keys, f"max_keys must be a positive integer, not "
                                   f"{short_repr(max_keys)}")
    return AggregateConfig(key, aggregates, window, size, time_attr, lateness, max_keys)
