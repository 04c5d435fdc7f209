"""``AggregateCalculator``: keyed running aggregates, tumbling and session windows (SPEC §11).

Config::

    {"key": ["symbol"],                                   # default []: one group
     "aggregates": {"trades": {"op": "count"},
                    "volume": {"op": "sum", "of": "qty"}},
     "window": {"tumbling": 60, "time": "ts"},            # or {"session": 30, "time": "ts"}; absent: since start
     "lateness": 5,                                       # seconds, default 0 (windows only)
     "max_keys": 100000}                                  # groups kept; the least recently updated goes first

Each record updates its group (its key, and its window) and the output is that group's
current value, an **upsert stream**: the key attributes, ``window_start`` and ``window_end``
(ISO-8601 UTC, windowed only) and each aggregate. The exact rules, with examples, are in
docs/STATE.md: windows are half-open ``[start, end)``; a session holds events less than
``session`` seconds apart; the watermark is the largest event time seen minus ``lateness``;
a window whose end is at or before it is closed and dropped, and a record for a closed
window raises :class:`~graphs.state.LateRecord` (counted and dead-lettered by the node).

The state survives restarts through ``snapshot()`` / ``restore(value)`` (:mod:`graphs.state`).
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from math import floor
from operator import attrgetter, itemgetter
from typing import Any

from graphs.aggregate_config import AggregateConfig, parse_config
from graphs.aggregate_ops import (
    MAX_TIME,
    MIN_TIME,
    Skipped,
    event_time,
    from_plain,
    hashable_scalar,
    initial,
    iso_utc,
    merge,
    result,
    to_plain,
    tumbling_start,
    update,
)
from graphs.calculator_base import Calculator
from graphs.components import short_repr
from graphs.state import LateRecord

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1
_AS_KEPT = frozenset(("count", "sum", "min", "max"))  # ops whose slot is their result
_SLOTS, _START, _END, _FIRST = attrgetter("slots"), attrgetter("start"), attrgetter("end"), itemgetter(0)


class _Group:
    """One group's state: its window (``None`` bounds when not windowed) and one slot per aggregate."""

    __slots__ = ("end", "slots", "start", "texts")

    def __init__(self, start: float | None, end: float | None, slots: list[Any]) -> None:
        self.start = start
        self.end = end
        self.slots = slots
        self.texts: tuple[str, str] | None = None  # window_start, window_end as ISO-8601, made once


class AggregateCalculator(Calculator):
    """Keyed aggregates over all records, or per tumbling or session window of event time.

    Config: ``aggregates`` (required) — ``{OUT: {"op": OP, "of": ATTRIBUTE}}``; ``key`` — the
    attributes making a group; ``window`` — ``{"tumbling": S, "time": ATTR}`` or ``{"session": GAP,
    "time": ATTR}``; ``lateness`` — seconds (windows only); ``max_keys`` — groups kept. Example:
    ``{"key": ["k"], "aggregates": {"n": {"op": "count"}}}`` turns ``{"k": "a"}``, ``{"k": "a"}`` into
    ``{"k": "a", "n": 1}``, ``{"k": "a", "n": 2}``.
    """

    CONFIG_KEYS = {
        "key": "list of attributes whose values make a group (default: one group)",
        "aggregates": 'map of output attribute -> {"op": OP, "of": ATTRIBUTE}',
        "window": '{"tumbling": SECONDS, "time": ATTRIBUTE} or {"session": GAP_SECONDS, "time": ATTRIBUTE}',
        "lateness": "seconds the watermark stays behind the largest event time (default 0)",
        "max_keys": "groups kept at most; the least recently updated is evicted (default 100000)",
    }
    stateful = True

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.settings: AggregateConfig = parse_config(self.config)
        self._steps = tuple((i, out, op, of) for i, (out, op, of) in enumerate(self.settings.aggregates))
        self._fresh = [initial(op) for _, op, _ in self.settings.aggregates]  # a new group's slots
        self._immutable = all(op in _AS_KEPT or op in ("first", "last") for _, op, _ in self.settings.aggregates)
        self._shown = tuple((i, out, op in _AS_KEPT, op) for i, out, op, _ in self._steps)  # kept: slot as shown
        self._texts: dict[float, str] = {}  # window bound -> ISO-8601: many groups share a window
        self.evictions = 0
        self._reset()

    def _reset(self) -> None:
        self.groups: OrderedDict[Any, _Group] = OrderedDict()  # least recently updated first
        self.sessions: dict[tuple, list[Any]] = {}  # session windows: key -> its groups' ids
        self.closing: list[tuple[float, int, Any]] = []  # heap of (end, tie, group id)
        self.max_time: float | None = None
        self.arrivals = 0  # records folded in so far: orders first/last
        self.next_id = 0  # tie-breaker in the heap, and session ids

    # -- the record ---------------------------------------------------------------------------------
    def calculate(self, record: dict) -> dict | None:
        out = self.calculate_many((record,))[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def calculate_many(self, records: Sequence[Any]) -> list[Any]:
        """:meth:`calculate` over a run of records, in order, with one call: for each record its output, or
        the exception :meth:`calculate` raises for it. A node calls this
        for a whole epoch's records, so the per-record work is only the fold itself::

            calc.calculate_many([{"k": "a"}, {"k": "a"}])   # [{"k": "a", "n": 1}, {"k": "a", "n": 2}]
        """
        cfg = self.settings
        window, lateness, size = cfg.window, cfg.lateness, cfg.size
        groups, steps, make_key, shown_steps = self.groups, self._steps, self._key, self._shown
        key_attrs = cfg.key
        single = key_attrs[0] if len(key_attrs) == 1 else None
        time_attr = cfg.time
        move_to_end = groups.move_to_end
        max_time, arrivals = self.max_time, self.arrivals  # held here, written back where others read them
        outs: list[Any] = []
        append = outs.append
        for record in records:
            try:
                key = None
                if single is not None:
                    shown = record.get(single)
                    if type(shown) is str or type(shown) is int:
                        key = (shown,)
                if key is None:
                    key = make_key(record)
                if window is None:
                    gid: Any = key
                    group = groups.get(key)
                    if group is None:
                        group = self._add(key, self._new(None, None))
                else:
                    t = record.get(time_attr)
                    if (type(t) is float or type(t) is int) and MIN_TIME <= t <= MAX_TIME:
                        t = float(t)
                    else:
                        t = self._time(record)
                    if max_time is None or t > max_time:
                        self.max_time = max_time = t
                        if self.closing and self.closing[0][0] <= t - lateness:
                            self._close(t - lateness)
                    if window == "tumbling":
                        start = floor(t / size) * size  # tumbling_start() without its call, as exact
                        if start > t or start + size <= t:
                            start = tumbling_start(t, size)
                        gid = (key, start)
                        group = groups.get(gid)
                        if group is None:
                            self._late(start, start + size, t)
                            group = self._add(gid, self._new(start, start + size))
                    else:
                        gid, group = self._session(key, t)
                move_to_end(gid)
                arrivals += 1
                slots = group.slots
                for i, out, op, of in steps:
                    if of is None:
                        slots[i] += 1
                        continue
                    value = record.get(of)
                    if value is None:
                        continue
                    try:
                        if op == "sum":  # the common ops inline: a call per value is most of their cost
                            slots[i] += value if type(value) is float else float(value)
                        elif op == "count":
                            slots[i] += 1
                        else:
                            slots[i] = update(op, slots[i], value, arrivals)
                    except (Skipped, TypeError, ValueError, OverflowError):
                        log.warning("AggregateCalculator %r: %s of %r skips %s: not a usable value", self.name,
                                    out, of, short_repr(value))
                # the output: the key attributes, the window, each aggregate
                result_map = {single: shown} if single is not None else {a: record.get(a) for a in key_attrs}
                if group.start is not None:
                    texts = group.texts
                    if texts is None:
                        texts = group.texts = (self._iso(group.start), self._iso(group.end))  # type: ignore[arg-type]
                    result_map["window_start"], result_map["window_end"] = texts
                for i, name, kept, op in shown_steps:
                    result_map[name] = slots[i] if kept else result(op, slots[i])
                append(result_map)
            except Exception as exc:  # what calculate() raises for this record (its key, its time, late)
                append(exc)
        self.arrivals = arrivals
        return outs

    def _key(self, record: dict) -> tuple:
        """The record's group key, past :meth:`calculate_many`'s shortcut (one str or int key attribute)."""
        try:
            return tuple(hashable_scalar(record.get(attr)) for attr in self.settings.key)
        except Skipped as exc:
            attr = next(a for a in self.settings.key if record.get(a) is exc.args[0])
            raise ValueError(f"key attribute {attr!r} holds {short_repr(exc.args[0])}: a key is made of "
                             "strings, numbers, booleans or null") from None

    def _time(self, record: dict) -> float:
        """The record's event time, past :meth:`calculate_many`'s shortcut (epoch seconds in range)."""
        attr = self.settings.time
        raw = record.get(attr)
        if raw is None:
            raise ValueError(f"the record has no time attribute {attr!r} (window.time)")
        try:
            return event_time(raw)
        except ValueError as exc:
            raise ValueError(f"time attribute {attr!r}: {exc}") from None

    def _late(self, start: float, end: float, t: float) -> None:
        watermark = self.watermark
        if watermark is not None and end <= watermark:
            raise LateRecord(f"late record: event time {iso_utc(t)} falls in window [{iso_utc(start)}, "
                             f"{iso_utc(end)}), closed at watermark {iso_utc(watermark)} "
                             f"(lateness {self.settings.lateness:g}s)")

    @property
    def watermark(self) -> float | None:
        """The largest event time seen minus ``lateness`` (None before the first record)."""
        return None if self.max_time is None else self.max_time - self.settings.lateness

    # -- windows ------------------------------------------------------------------------------------
    def _session(self, key: tuple, t: float) -> tuple[Any, _Group]:
        gap = self.settings.size
        ids = self.sessions.get(key) or []
        touching = [gid for gid in ids if self.groups[gid].start - gap < t < self.groups[gid].end]
        if not touching:
            self._late(t, t + gap, t)
            gid = (key, self._tie())
            self.sessions.setdefault(key, []).append(gid)
            return gid, self._add(gid, self._new(t, t + gap))
        gid = touching[0]  # the oldest session takes in the others the record bridges
        group = self.groups[gid]
        was = (group.start, group.end)
        for other_id in touching[1:]:
            other = self.groups.pop(other_id)
            ids.remove(other_id)
            group.start = min(group.start, other.start)  # type: ignore[type-var]
            group.end = max(group.end, other.end)  # type: ignore[type-var]
            group.slots = [merge(op, a, b) for (_, op, _), a, b in
                           zip(self.settings.aggregates, group.slots, other.slots, strict=True)]
        start, end = min(group.start, t), max(group.end, t + gap)  # type: ignore[type-var]
        if (start, end) != was:
            group.start, group.end, group.texts = start, end, None
            if end != was[1]:  # the heap holds the old end (a merge may have moved it, not only the record)
                self._push(end, gid)
        return gid, group

    def _new(self, start: float | None, end: float | None) -> _Group:
        """A new group: a copy of the fresh slots (made anew when one of them is a list or a set)."""
        slots = self._fresh[:] if self._immutable else [initial(op) for _, op, _ in self.settings.aggregates]
        return _Group(start, end, slots)

    def _tie(self) -> int:
        self.next_id += 1
        return self.next_id

    def _add(self, gid: Any, group: _Group) -> _Group:
        self.groups[gid] = group
        if group.end is not None:
            self._push(group.end, gid)
        while len(self.groups) > self.settings.max_keys:
            old_id, _ = self.groups.popitem(last=False)
            self._forget_session(old_id)
            self.evictions += 1
        return group

    def _forget_session(self, gid: Any) -> None:
        if self.settings.window == "session":
            ids = self.sessions.get(gid[0])
            if ids is not None and gid in ids:
                ids.remove(gid)
                if not ids:
                    del self.sessions[gid[0]]

    def _close(self, watermark: float) -> None:
        """Drop every window whose end is at or before ``watermark`` (stale heap entries are skipped)."""
        heap, groups = self.closing, self.groups
        while heap and heap[0][0] <= watermark:
            end, _, gid = heapq.heappop(heap)
            group = groups.get(gid)
            if group is not None and group.end == end:
                del groups[gid]
                self._forget_session(gid)

    def _push(self, end: float, gid: Any) -> None:
        """Close group ``gid`` once the watermark reaches ``end``; an older entry of it goes stale."""
        heapq.heappush(self.closing, (end, self._tie(), gid))
        if len(self.closing) > 4 * len(self.groups) + 64:  # sessions push on every extension: compact
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        self.closing = [(g.end, self._tie(), gid) for gid, g in self.groups.items() if g.end is not None]
        heapq.heapify(self.closing)

    # -- output -------------------------------------------------------------------------------------
    def _iso(self, seconds: float) -> str:
        text = self._texts.get(seconds)
        if text is None:
            if len(self._texts) > 4096:
                self._texts.clear()
            text = self._texts[seconds] = iso_utc(seconds)
        return text

    # -- state (graphs/state.py) ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The groups as columns, least recently updated first: a few flat lists encode fast, and are built
        by ``map`` over the groups (no Python-level loop: the node waits for this)."""
        window = self.settings.window
        ids = list(self.groups)
        groups = list(self.groups.values())
        slots = list(map(_SLOTS, groups))
        columns = [list(map(itemgetter(i), slots)) if op in _AS_KEPT else [to_plain(op, s[i]) for s in slots]
                   for i, _, op, _ in self._steps]
        snap = {"version": SNAPSHOT_VERSION, "shape": self.settings.shape(), "max_time": self.max_time,
                "arrivals": self.arrivals, "keys": ids if window is None else list(map(_FIRST, ids)),
                "columns": columns}
        if window is not None:
            snap["starts"] = list(map(_START, groups))
            snap["ends"] = list(map(_END, groups))
        return snap

    def restore(self, value: Any) -> None:
        if not isinstance(value, dict) or value.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not a snapshot of an AggregateCalculator: {short_repr(value)}")
        if value.get("shape") != self.settings.shape():
            log.warning("AggregateCalculator %r: its key, aggregates or window changed since the checkpoint; "
                        "starting with no groups", self.name)
            return
        self._reset()
        self.max_time, self.arrivals = value["max_time"], int(value["arrivals"])
        window = self.settings.window
        columns = [column if op in _AS_KEPT else [from_plain(op, x) for x in column]
                   for (_, _, op, _), column in zip(self._steps, value["columns"], strict=True)]
        keys = value["keys"]
        starts = value.get("starts") or [None] * len(keys)
        ends = value.get("ends") or [None] * len(keys)
        groups = self.groups
        for j, (key_list, start, end) in enumerate(zip(keys, starts, ends, strict=True)):
            key = tuple(map(hashable_scalar, key_list))
            if window is None:
                gid: Any = key
            elif window == "tumbling":
                gid = (key, start)
            else:
                gid = (key, self._tie())
                self.sessions.setdefault(key, []).append(gid)
            groups[gid] = _Group(start, end, [column[j] for column in columns])
        self._rebuild_heap()

    def state_figures(self) -> dict[str, int]:
        """Groups held now, and groups evicted by ``max_keys`` so far (by this instance)."""
        return {"groups": len(self.groups), "evictions": self.evictions}


__all__ = ["AggregateCalculator"]
