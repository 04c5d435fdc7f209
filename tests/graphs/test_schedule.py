"""Schedules (SPEC §14): an XNYS 09:30-16:00 New York schedule across a weekend, a market holiday,
both daylight-saving changes and midnight-crossing windows, driven by explicit instants."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from graphs import calendars
from graphs.calendars import CalendarError, open_calendar
from graphs.loader import load_dag_dict
from graphs.schedule import Schedule

NY = ZoneInfo("America/New_York")
MARKET = {"timezone": "America/New_York", "calendar": "XNYS", "windows": [{"start": "0930", "end": "1600"}]}


def ny(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=NY)


def transitions(schedule: Schedule, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    """Every start and stop between ``start`` and ``end``, as the runtime would meet them."""
    found: list[tuple[str, datetime]] = []
    at = start
    while True:
        change = schedule.next_change(at)
        if change is None or change > end:
            return found
        found.append(("start" if schedule.is_open(change) else "stop", change.astimezone(NY)))
        assert schedule.is_open(change - timedelta(microseconds=1)) != schedule.is_open(change)
        at = change


def test_market_hours_across_a_weekend() -> None:
    schedule = Schedule.from_config(MARKET)
    assert schedule.is_open(ny(2026, 11, 6, 15, 59, 59))       # Friday
    assert not schedule.is_open(ny(2026, 11, 6, 16, 0))
    assert not schedule.is_open(ny(2026, 11, 7, 12, 0))        # Saturday
    assert not schedule.is_open(ny(2026, 11, 8, 12, 0))        # Sunday
    assert not schedule.is_open(ny(2026, 11, 9, 9, 29, 59))    # Monday, before the open
    assert schedule.is_open(ny(2026, 11, 9, 9, 30))
    assert transitions(schedule, ny(2026, 11, 6, 12, 0), ny(2026, 11, 9, 23, 0)) == [
        ("stop", ny(2026, 11, 6, 16, 0)), ("start", ny(2026, 11, 9, 9, 30)), ("stop", ny(2026, 11, 9, 16, 0))]


def test_thanksgiving_is_skipped_and_the_next_day_runs() -> None:
    schedule = Schedule.from_config(MARKET)
    assert not schedule.is_open(ny(2026, 11, 26, 12, 0))       # Thanksgiving: NYSE closed
    assert schedule.is_open(ny(2026, 11, 27, 12, 0))           # Friday after: a session
    assert transitions(schedule, ny(2026, 11, 25, 17, 0), ny(2026, 11, 27, 23, 0)) == [
        ("start", ny(2026, 11, 27, 9, 30)), ("stop", ny(2026, 11, 27, 16, 0))]


@pytest.mark.parametrize(("day", "offset_before", "offset_after"), [
    ((2026, 3, 6), -5, -4),    # clocks go forward on Sunday 8 March
    ((2026, 10, 30), -4, -5),  # and back on Sunday 1 November
])
def test_the_window_keeps_its_wall_clock_times_across_a_dst_change(day: tuple[int, int, int], offset_before: int,
                                                                   offset_after: int) -> None:
    schedule = Schedule.from_config(MARKET)
    friday = datetime(*day, 12, tzinfo=NY)
    found = transitions(schedule, friday, friday + timedelta(days=3, hours=8))
    assert [(kind, t.strftime("%a %H:%M")) for kind, t in found] == [
        ("stop", "Fri 16:00"), ("start", "Mon 09:30"), ("stop", "Mon 16:00")]
    utc_hours = [t.astimezone(UTC).hour for _, t in found]
    assert utc_hours == [16 - offset_before, 9 - offset_after, 16 - offset_after]  # 09:30 EDT is 13:30 UTC


def test_a_midnight_crossing_window_belongs_to_the_day_it_started() -> None:
    schedule = Schedule.from_config({"timezone": "America/New_York", "calendar": "XNYS",
                                     "windows": [{"start": "2200", "end": "0200"}]})
    assert schedule.is_open(ny(2026, 11, 6, 23, 0))             # Friday night
    assert schedule.is_open(ny(2026, 11, 7, 1, 59))             # Saturday early: Friday's window
    assert not schedule.is_open(ny(2026, 11, 7, 2, 0))
    assert not schedule.is_open(ny(2026, 11, 9, 1, 0))          # Monday early: Sunday started nothing
    assert not schedule.is_open(ny(2026, 11, 26, 23, 0))        # Thanksgiving night: no window starts
    assert schedule.is_open(ny(2026, 11, 26, 0, 30))            # but Wednesday's runs into Thursday
    assert transitions(schedule, ny(2026, 11, 6, 12, 0), ny(2026, 11, 9, 23, 30)) == [
        ("start", ny(2026, 11, 6, 22, 0)), ("stop", ny(2026, 11, 7, 2, 0)), ("start", ny(2026, 11, 9, 22, 0))]


def test_a_window_crossing_midnight_on_the_night_clocks_change() -> None:
    schedule = Schedule.from_config({"timezone": "America/New_York", "windows": [{"start": "2300", "end": "0300"}]})
    start, stop = ny(2026, 3, 7, 23, 0), ny(2026, 3, 8, 3, 0)
    assert schedule.next_change(ny(2026, 3, 7, 22, 0)) == start
    assert schedule.next_change(start) == stop
    assert stop.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=3)  # an hour short in real time


def test_days_several_windows_and_next_times() -> None:
    schedule = Schedule.from_config({"timezone": "UTC", "days": ["mon", "Wed"],
                                     "windows": [{"start": "0800", "end": "1000"}, {"start": "1000", "end": "1100"},
                                                 {"start": "1400", "end": "1500"}]})
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    assert schedule.next_change(monday + timedelta(hours=9)) == monday + timedelta(hours=11)  # joined windows
    assert not schedule.is_open(monday + timedelta(days=1, hours=9))                          # Tuesday
    start, stop = schedule.next_times(monday + timedelta(hours=12))
    assert (start, stop) == (monday + timedelta(hours=14), monday + timedelta(hours=15))
    start, stop = schedule.next_times(monday + timedelta(hours=14, minutes=30))
    assert (stop, start) == (monday + timedelta(hours=15), monday + timedelta(days=2, hours=8))
    assert start is not None and start.utcoffset() == timedelta(0)


def test_the_seed_window_is_one_window_in_server_time() -> None:
    dag = load_dag_dict({"name": "seed", "start_time": "2300", "duration": "2h",
                         "nodes": [{"name": "n", "type": "MetronomeNode", "config": {"interval": 1}}]})
    schedule = Schedule.from_dag(dag)
    assert schedule.is_open(datetime(2026, 1, 1, 23, 30)) and schedule.is_open(datetime(2026, 1, 2, 0, 59))
    assert not schedule.is_open(datetime(2026, 1, 2, 1, 0))
    assert schedule.next_change(datetime(2026, 1, 2, 0, 0)) == datetime(2026, 1, 2, 1, 0).astimezone(UTC)
    always = Schedule.from_dag(load_dag_dict({"name": "a", "nodes": [{"name": "n", "type": "MetronomeNode"}]}))
    assert always.always and always.next_change(datetime.now(UTC)) is None and always.next_times(datetime.now(UTC)) \
        == (None, None)


def test_country_business_days_from_holidays() -> None:
    schedule = Schedule.from_config({"timezone": "America/New_York", "calendar": "holidays:US"})
    assert not schedule.is_open(ny(2026, 11, 26, 12))           # Thanksgiving
    assert not schedule.is_open(ny(2026, 11, 28, 12))           # Saturday
    assert schedule.is_open(ny(2026, 11, 27, 0, 0))             # a business day, all day without windows
    assert schedule.next_change(ny(2026, 11, 27, 12)) == ny(2026, 11, 28, 0, 0)


def test_calendar_days_are_cached_per_year() -> None:
    calendar = open_calendar("XNYS")
    calendar.is_open(datetime(2026, 1, 5).date())
    assert 2026 in calendar._years
    first = calendar.days_of(2026)
    assert calendar.days_of(2026) is first and len(first) == 251


def test_unknown_calendars_suggest_a_close_name() -> None:
    with pytest.raises(CalendarError) as raised:
        open_calendar("XNYSS")
    assert raised.value.suggestions == ("XNYS",)
    with pytest.raises(CalendarError, match="unknown country"):
        open_calendar("holidays:ZZ")


def test_a_missing_calendar_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for cached in (calendars.exchange_names, calendars.country_codes, calendars.open_calendar):
        cached.cache_clear()
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "holidays", None)
    try:
        for name in ("XNYS", "holidays:US"):
            with pytest.raises(CalendarError, match=r"not installed; install the calendars extra: "
                                                    r"pip install 'dagserver\[calendars\]'"):
                open_calendar(name)
    finally:
        for cached in (calendars.exchange_names, calendars.country_codes, calendars.open_calendar):
            cached.cache_clear()


def test_a_time_missing_or_doubled_by_a_dst_change() -> None:
    gap = Schedule.from_config({"timezone": "America/New_York", "windows": [{"start": "0230", "end": "0400"}]})
    assert gap.next_change(ny(2026, 3, 8, 0, 0)).astimezone(NY) == ny(2026, 3, 8, 3, 30)   # 02:30 read as 03:30
    fold = Schedule.from_config({"timezone": "America/New_York", "windows": [{"start": "0130", "end": "0300"}]})
    first = fold.next_change(ny(2026, 11, 1, 0, 0))
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)                                 # the first 01:30 (EDT)
    assert fold.next_change(first) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)                # 03:00 EST
