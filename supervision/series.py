"""Live figures for the charts (SPEC §13): records/s in and out, errors/s and epoch latency p99.

The supervisor samples every DAG's figures once a second (the newest heartbeat snapshot,
with its carried counters) and keeps the last 15 minutes per DAG in a ring buffer, plus
one for the whole server (rates summed, the highest p99). A point is
``[time, in_per_s, out_per_s, errors_per_s, p99_seconds]``; p99 is null in a second when no
epoch completed. A counter that went down (the DAG was reloaded or deleted and re-added)
counts as a fresh start, never as a negative rate.

Usage::

    series = SeriesRecorder()
    series.sample({"orders": details}, now=time.time())   # once a second
    series.points("orders")   # {"interval": 1, "fields": [...], "points": [[t, 12.0, 12.0, 0.0, 0.0004], ...]}
    series.points(None)       # the whole server
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

WINDOW_SECONDS = 900  # 15 minutes at one point per second
FIELDS = ("time", "in_per_s", "out_per_s", "errors_per_s", "latency_p99_s")
log = logging.getLogger("dagserver.series")


def sample_every_second(recorder: SeriesRecorder, views: Callable[[], Mapping[str, Mapping[str, Any]]],
                        stop: threading.Event) -> None:
    """The supervisor's ``series`` thread: ``views()`` (name -> details) into ``recorder`` each second."""
    while not stop.wait(1.0):
        try:
            recorder.sample(views(), time.time())
        except Exception:  # a bad sample must never end the charts
            log.exception("sampling the series failed")


def totals(details: Mapping[str, Any]) -> tuple[float, float, float, list[int], list[float]]:
    """``(records in, records out, errors, latency bucket counts, bucket bounds)`` of one DAG's details."""
    subscribers = (details.get("subscribers") or {}).values()
    publishers = (details.get("publishers") or {}).values()
    nodes = (details.get("nodes") or {}).values()
    errors = sum(n.get("errors") or 0 for n in nodes) + sum(e.get("errors") or 0 for e in (*subscribers, *publishers))
    latency = (details.get("epochs") or {}).get("latency_seconds") or {}
    return (sum(e.get("records") or 0 for e in subscribers), sum(e.get("records") or 0 for e in publishers), errors,
            list(latency.get("counts") or []), list(latency.get("buckets") or []))


def quantile(counts: list[int], bounds: list[float], q: float = 0.99) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of these per-bucket counts (None: no observation).

    >>> quantile([0, 98, 2, 0], [0.001, 0.01, 0.1])
    0.1
    """
    total = sum(counts)
    if total <= 0:
        return None
    wanted, seen = q * total, 0
    for i, count in enumerate(counts):
        seen += count
        if seen >= wanted:
            return bounds[i] if i < len(bounds) else (bounds[-1] if bounds else None)
    return bounds[-1] if bounds else None


class SeriesRecorder:
    """Ring buffers of per-second points, per DAG and for the whole server; thread-safe."""

    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self.window = window
        self._rings: dict[str | None, deque[list[Any]]] = {}
        self._last: dict[str, tuple[float, tuple[float, float, float, list[int], list[float]]]] = {}
        self._lock = threading.Lock()

    def sample(self, views: Mapping[str, Mapping[str, Any]], now: float) -> None:
        """Add one point per DAG of ``views`` (name -> details) and one for the server; forget DAGs gone."""
        server = [now, 0.0, 0.0, 0.0, None]
        points: dict[str, list[Any]] = {}
        for name, details in views.items():
            current = totals(details)
            last = self._last.get(name)
            self._last[name] = (now, current)
            if last is None or now <= last[0]:
                continue
            elapsed, before = now - last[0], last[1]
            rates = [max(0.0, current[i] - before[i]) / elapsed for i in range(3)]
            counts = current[3]
            delta = ([max(0, a - b) for a, b in zip(counts, before[3], strict=True)]
                     if len(counts) == len(before[3]) else counts)
            p99 = quantile(delta, current[4])
            points[name] = [round(now, 3), *(round(r, 3) for r in rates), p99]
            for i in range(3):
                server[i + 1] += rates[i]
            if p99 is not None:
                server[4] = max(server[4] or 0.0, p99)
        server[1:4] = [round(v, 3) for v in server[1:4]]
        with self._lock:
            for gone in [n for n in self._rings if n is not None and n not in views]:
                del self._rings[gone]
            for gone in [n for n in self._last if n not in views]:
                del self._last[gone]
            for name, point in points.items():
                self._ring(name).append(point)
            if points:
                self._ring(None).append(server)

    def _ring(self, name: str | None) -> deque[list[Any]]:
        ring = self._rings.get(name)
        if ring is None:
            ring = self._rings[name] = deque(maxlen=self.window)
        return ring

    def points(self, name: str | None) -> dict[str, Any]:
        """The last 15 minutes of ``name`` (None: the whole server), oldest first."""
        with self._lock:
            ring = list(self._rings.get(name) or ())
        return {"interval": 1, "window_seconds": self.window, "fields": list(FIELDS), "points": ring}
