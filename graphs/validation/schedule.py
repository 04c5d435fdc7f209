"""Validation of a DAG's ``schedule`` (SPEC §14): time zone, days, calendar and windows, with suggestions.

Usage::

    check_schedule(col, data)      # adds a Problem for each thing wrong with data["schedule"]
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from graphs.calendars import CalendarError, open_calendar
from graphs.schedule import DAY_NAMES, parse_window
from graphs.suggest import mean_phrase
from graphs.validation.base import Collector, check_keys, expect_object, expect_string, item_path, key_path, kind_of
from graphs.window import parse_hhmm

SCHEDULE_KEYS = ("timezone", "days", "calendar", "windows")
WINDOW_KEYS = ("start", "end")
SEED_WINDOW_KEYS = ("start_time", "end_time", "duration")


@cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names this machine knows."""
    return frozenset(available_timezones())


def check_schedule(col: Collector, data: dict[str, Any]) -> None:
    """Report what is wrong with ``data["schedule"]`` (nothing when it is absent)."""
    schedule = data.get("schedule")
    if schedule is None:
        return
    for key in SEED_WINDOW_KEYS:
        if data.get(key) is not None:
            col.add(key, f"a DAG with a schedule cannot also have {key}: the schedule's windows say when it runs",
                    data[key], f"drop {key}, or put the window in schedule.windows")
    if not expect_object(col, schedule, "schedule", "schedule"):
        return
    check_keys(col, schedule, "schedule", SCHEDULE_KEYS, "a schedule")
    _check_timezone(col, schedule.get("timezone"))
    _check_days(col, schedule.get("days"))
    _check_calendar(col, schedule.get("calendar"))
    _check_windows(col, schedule.get("windows"))


def _check_timezone(col: Collector, zone: Any) -> None:
    if zone is None or not expect_string(col, zone, "schedule.timezone", "schedule.timezone"):
        return
    if zone not in time_zones():
        col.add("schedule.timezone", f"unknown time zone {zone!r}", zone,
                mean_phrase(zone, time_zones()) or "use an IANA name such as 'America/New_York' or 'UTC'")


def _check_days(col: Collector, days: Any) -> None:
    if days is None:
        return
    if not isinstance(days, list):
        col.add("schedule.days", f"schedule.days must be a list of day names, not {kind_of(days)}", days,
                'such as ["mon", "tue", "wed", "thu", "fri"]')
        return
    if not days:
        col.add("schedule.days", "schedule.days is empty, so the DAG would never run", days,
                "list the days it runs on, or drop days to run every day")
    for index, day in enumerate(days):
        path = item_path("schedule.days", index)
        if not isinstance(day, str) or day.lower() not in DAY_NAMES:
            col.add(path, f"unknown day {day!r}", day,
                    mean_phrase(day, DAY_NAMES) or f"use one of {', '.join(DAY_NAMES)}")


def _check_calendar(col: Collector, calendar: Any) -> None:
    if calendar is None or not expect_string(col, calendar, "schedule.calendar", "schedule.calendar"):
        return
    try:
        open_calendar(calendar)
    except CalendarError as exc:
        suggestion = f"did you mean {exc.suggestions[0]!r}?" if exc.suggestions else None
        col.add("schedule.calendar", str(exc), calendar, suggestion)


def _check_windows(col: Collector, windows: Any) -> None:
    if windows is None:
        return
    if not isinstance(windows, list):
        col.add("schedule.windows", f"schedule.windows must be a list, not {kind_of(windows)}", windows,
                'such as [{"start": "0930", "end": "1600"}]')
        return
    if not windows:
        col.add("schedule.windows", "schedule.windows is empty, so the DAG would never run", windows,
                'add a window such as {"start": "0930", "end": "1600"}, or drop windows to run all day')
    for index, window in enumerate(windows):
        path = item_path("schedule.windows", index)
        if not expect_object(col, window, path, "a window"):
            continue
        check_keys(col, window, path, WINDOW_KEYS, "a window")
        bad = False
        for key in WINDOW_KEYS:
            value = window.get(key)
            if value is None:
                col.add(key_path(path, key), f'a window needs "{key}"', suggestion='as "HHMM", e.g. "0930"')
                bad = True
                continue
            try:
                parse_hhmm(value)
            except ValueError as exc:
                col.add(key_path(path, key), f"bad {key}: {exc}", value)
                bad = True
        if not bad:
            try:
                parse_window(window)
            except ValueError as exc:
                col.add(path, f"bad window: {exc}", window,
                        "a window from midnight to midnight is what omitting windows means")
