"""When a DAG runs: its ``schedule`` (SPEC §14), or the seed's one daily window (SPEC §2).

A :class:`Schedule` is open at an instant when some window that started on an **allowed
day** covers it. A local date is allowed when it is one of ``days`` (all days when none are
given) and, with a ``calendar``, a session or business day of that calendar. A window runs
from its ``start`` on that date to its ``end``; an end at or before the start is on the next
date. The part after midnight belongs to the day the window started: a Friday 22:00-02:00
window runs until Saturday 02:00 even when Saturday is not allowed, and a Monday that is
allowed gets no 00:00-02:00 from a Sunday that is not.

Times are wall-clock times in ``timezone`` (the server's own when None, as for the seed's
``start_time``/``end_time``). On a daylight-saving day a window keeps its wall-clock start and
end (09:30-16:00 stays 09:30-16:00, so the window is an hour shorter or longer in real
time); a time that does not exist that day (02:30 when clocks go from 02:00 to 03:00) is read
with the offset before the change, i.e. 03:30; an ambiguous one (01:30 when clocks go back) is
its first occurrence. Without windows a schedule covers each allowed day from midnight to
midnight; without windows, days and calendar it is always open.

Everything here is pure: the instant is always given, so tests drive it with any clock.

Usage::

    schedule = Schedule.from_dag(dag)                       # the schedule, or the seed window
    schedule.is_open(datetime.now(timezone.utc))
    schedule.next_change(now)                               # next start or stop (None: never changes)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from graphs.calendars import DayCalendar, open_calendar
from graphs.window import DAY_SECONDS, ActiveWindow, parse_hhmm

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 800  # how far next_change looks before saying the schedule never changes again


@dataclass(frozen=True)
class Window:
    """``length`` seconds (1 to a day) from ``start`` seconds after local midnight."""

    start: int
    length: int


def parse_window(entry: Mapping[str, Any]) -> Window:
    """A :class:`Window` from ``{"start": "HHMM", "end": "HHMM"}``; an end at or before the start is on
    the next day. ValueError when malformed or empty (start equals end)."""
    start, end = parse_hhmm(entry.get("start")), parse_hhmm(entry.get("end"))
    length = (end - start) % DAY_SECONDS
    if length == 0:
        raise ValueError("start equals end, which leaves an empty window")
    return Window(start, length)


def _utc(at: datetime) -> datetime:
    """``at`` in UTC; a naive ``at`` is the server's local time."""
    return at.astimezone(UTC)


class Schedule:
    """Allowed days (weekdays and a calendar) and daily windows in a time zone."""

    def __init__(self, windows: tuple[Window, ...] = (), timezone: tzinfo | None = None,
                 days: frozenset[int] | None = None, calendar: DayCalendar | None = None) -> None:
        self.windows = tuple(sorted(windows, key=lambda w: (w.start, w.length)))
        self.timezone = timezone
        self.days = days
        self.calendar = calendar

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Schedule:
        """From a validated ``schedule`` object (ValueError / CalendarError otherwise)."""
        zone = config.get("timezone")
        days = config.get("days")
        calendar = config.get("calendar")
        windows = config.get("windows")
        return cls(tuple(parse_window(w) for w in windows) if windows is not None else (),
                   ZoneInfo(zone) if zone else None,
                   frozenset(DAY_NAMES.index(d.lower()) for d in days) if days is not None else None,
                   open_calendar(calendar) if calendar else None)

    @classmethod
    def from_window(cls, window: ActiveWindow) -> Schedule:
        """The seed's daily window, in the server's time zone."""
        if window.always or window.start is None:
            return cls()
        return cls((Window(window.start, window.length),))

    @classmethod
    def from_dag(cls, dag: Any) -> Schedule:
        """The schedule of a :class:`graphs.model.DagModel`: its ``schedule``, else its seed window."""
        config = getattr(dag, "schedule", None)
        return cls.from_config(config) if config else cls.from_window(ActiveWindow.from_dag(dag))

    # -- questions -----------------------------------------------------------------------------------
    @property
    def always(self) -> bool:
        """Open around the clock, every day."""
        whole_day = not self.windows or any(w.length >= DAY_SECONDS for w in self.windows)
        return whole_day and self.calendar is None and (self.days is None or len(self.days) == 7)

    def _local_date(self, at: datetime) -> date:
        return (at.astimezone(self.timezone) if self.timezone else at.astimezone()).date()

    def _instant(self, day: date, seconds: int) -> datetime:
        """The UTC instant of wall-clock ``seconds`` after midnight of ``day`` (may run past midnight)."""
        wall = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
        if self.timezone is None:
            return wall.astimezone(UTC)  # a naive time is local
        return wall.replace(tzinfo=self.timezone).astimezone(UTC)

    def allows(self, day: date) -> bool:
        """Whether windows may start on local date ``day``."""
        if self.days is not None and day.weekday() not in self.days:
            return False
        return self.calendar is None or self.calendar.is_open(day)

    def _intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The UTC intervals of the windows starting on ``day`` (none when it is not allowed)."""
        if not self.allows(day):
            return
        for window in self.windows or (Window(0, DAY_SECONDS),):
            yield self._instant(day, window.start), self._instant(day, window.start + window.length)

    def is_open(self, at: datetime) -> bool:
        """Whether the DAG should run at ``at`` (aware, or naive server-local time)."""
        if self.always:
            return True
        now = _utc(at)
        today = self._local_date(now)
        for day in (today - timedelta(days=1), today):
            if any(start <= now < end for start, end in self._intervals(day)):
                return True
        return False

    def _merged(self, first: date) -> Iterator[tuple[datetime, datetime]]:
        """Open periods from the windows starting on ``first`` onwards, overlapping ones joined, in order."""
        current: tuple[datetime, datetime] | None = None
        for offset in range(SEARCH_DAYS):
            for start, end in self._intervals(first + timedelta(days=offset)):
                if current is None:
                    current = (start, end)
                elif start <= current[1]:
                    current = (current[0], max(current[1], end))
                else:
                    yield current
                    current = (start, end)
        if current is not None:
            yield current

    def next_change(self, at: datetime) -> datetime | None:
        """The next instant after ``at`` when :meth:`is_open` flips (UTC); None when it never does."""
        if self.always:
            return None
        now = _utc(at)
        for start, end in self._merged(self._local_date(now) - timedelta(days=1)):
            if now < start:
                return start
            if now < end:
                return end
        return None

    def next_times(self, at: datetime) -> tuple[datetime | None, datetime | None]:
        """``(next_start, next_stop)`` after ``at``, in the schedule's time zone: when closed the
        coming start and the stop after it, when open the coming stop and the start after it."""
        first = self.next_change(at)
        second = self.next_change(first) if first is not None else None
        zone = self.timezone
        shown = tuple((t.astimezone(zone) if zone else t.astimezone()) if t else None for t in (first, second))
        return (shown[1], shown[0]) if self.is_open(at) else (shown[0], shown[1])

    def describe(self) -> str:
        """A short human description, e.g. ``mon-fri XNYS 09:30-16:00 America/New_York`` or ``always``."""
        if self.always:
            return "always"
        parts = []
        if self.days is not None and len(self.days) < 7:
            parts.append(",".join(DAY_NAMES[d] for d in sorted(self.days)))
        if self.calendar is not None:
            parts.append(self.calendar.name)
        for w in self.windows:
            end = (w.start + w.length) % DAY_SECONDS
            parts.append(f"{w.start // 3600:02d}:{w.start % 3600 // 60:02d}-{end // 3600:02d}:{end % 3600 // 60:02d}")
        parts.append(str(self.timezone) if self.timezone else "server time")
        return " ".join(parts)
