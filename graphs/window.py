"""The daily active window of a DAG (``start_time``, ``end_time`` / ``duration``).

Times are local wall-clock ``HHMM`` strings (``0000``-``2359``); a window may cross
midnight. The end is given either as ``end_time`` or as a ``duration`` such as ``6h30m``,
``45m`` or ``2h`` (positive, at most 24 hours). With no ``start_time`` the DAG is always
active; with a ``start_time`` alone it is active from then until midnight.

Usage::

    window = ActiveWindow.from_dag(dag)
    if window.is_active(datetime.now()):
        ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DAY_SECONDS = 24 * 3600
_HHMM = re.compile(r"[0-9]{4}")
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_hhmm(text: Any) -> int:
    """Seconds after midnight for an ``HHMM`` string; ValueError when malformed."""
    if not isinstance(text, str) or not _HHMM.fullmatch(text):
        raise ValueError("expected a time as 'HHMM' (0000-2359)")
    hours, minutes = int(text[:2]), int(text[2:])
    if hours > 23 or minutes > 59:
        raise ValueError("expected a time as 'HHMM' (0000-2359)")
    return hours * 3600 + minutes * 60


def parse_duration(text: Any) -> int:
    """Seconds in a duration such as ``6h30m``, ``45m``, ``2h`` or ``90s``.

    Raises ValueError unless the duration is positive and at most 24 hours.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("expected a duration such as '6h30m', '45m' or '2h'")
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        raise ValueError("expected a duration such as '6h30m', '45m' or '2h'")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("the duration must be positive")
    if total > DAY_SECONDS:
        raise ValueError("the duration must be at most 24h")
    return total


def _seconds_of_day(now: datetime) -> float:
    return now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1_000_000


@dataclass(frozen=True)
class ActiveWindow:
    """A daily window starting at ``start`` seconds after midnight, ``length`` seconds long.

    ``start`` None means always active; so does a length of a full day.
    """

    start: int | None = None
    length: int = DAY_SECONDS

    @classmethod
    def from_values(
        cls, start_time: str | None, end_time: str | None = None, duration: str | int | None = None
    ) -> ActiveWindow:
        """Build from raw values; ``duration`` is a string like ``6h30m`` or seconds.

        Raises ValueError on malformed values (validation reports them first).
        """
        if start_time is None:
            if end_time is not None or duration is not None:
                raise ValueError("end_time/duration need a start_time")
            return cls()
        start = parse_hhmm(start_time)
        if end_time is not None and duration is not None:
            raise ValueError("give end_time or duration, not both")
        if end_time is not None:
            length = (parse_hhmm(end_time) - start) % DAY_SECONDS
            if length == 0:
                raise ValueError("end_time equals start_time")
        elif duration is not None:
            length = duration if isinstance(duration, int) else parse_duration(duration)
        else:
            length = DAY_SECONDS - start  # until midnight
        return cls(start=start, length=length)

    @classmethod
    def from_dag(cls, dag: Any) -> ActiveWindow:
        """The window of a :class:`graphs.model.DagModel`."""
        return cls.from_values(dag.start_time, dag.end_time, dag.duration_seconds)

    @property
    def always(self) -> bool:
        """True when the DAG is active around the clock."""
        return self.start is None or self.length >= DAY_SECONDS

    def _offset(self, now: datetime) -> float:
        assert self.start is not None
        return (_seconds_of_day(now) - self.start) % DAY_SECONDS

    def is_active(self, now: datetime) -> bool:
        """Whether the DAG should run at wall-clock time ``now``."""
        if self.always:
            return True
        return self._offset(now) < self.length

    def next_change(self, now: datetime) -> datetime | None:
        """When :meth:`is_active` next flips after ``now``; None for an always-on window."""
        if self.always:
            return None
        offset = self._offset(now)
        remaining = self.length - offset if offset < self.length else DAY_SECONDS - offset
        return now + timedelta(seconds=remaining)

    def describe(self) -> str:
        """A short human description, e.g. ``23:00 for 6h30m`` or ``always``."""
        if self.always or self.start is None:
            return "always"
        hours, rest = divmod(self.length, 3600)
        minutes, seconds = divmod(rest, 60)
        span = "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v)
        return f"{self.start // 3600:02d}:{self.start % 3600 // 60:02d} for {span}"
