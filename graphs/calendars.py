"""Day calendars for schedules (SPEC §14): which local dates a DAG may run on.

Two kinds, named as in a DAG's ``schedule.calendar``:

* ``"XNYS"`` (any exchange code ``exchange-calendars`` knows): the exchange's trading sessions.
  Only the days are taken; the times come from the schedule's windows (an early close such as
  the day after Thanksgiving is not applied).
* ``"holidays:US"`` or ``"holidays:US-NY"`` (a country, optionally a subdivision, as the
  ``holidays`` package names them): the country's business days, i.e. neither its weekend nor a
  public holiday.

Both libraries come with the ``calendars`` extra (``pip install 'dagserver[calendars]'``); a
missing one is a :class:`CalendarError` that names it. Each calendar is asked once per year:
the year's days are cached as a set, so :meth:`DayCalendar.is_open` is a set lookup.

Usage::

    calendar = open_calendar("XNYS")
    calendar.is_open(date(2026, 11, 26))     # False: Thanksgiving
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from datetime import date, timedelta
from functools import cache
from typing import Any

from graphs.suggest import did_you_mean

HOLIDAYS_PREFIX = "holidays:"
EXTRA_HINT = "install the calendars extra: pip install 'dagserver[calendars]'"


class CalendarError(ValueError):
    """A calendar that cannot be used: unknown name (``suggestions`` holds close ones) or missing library."""

    def __init__(self, message: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.suggestions = suggestions


class DayCalendar:
    """The open dates of one calendar, computed a year at a time and cached."""

    def __init__(self, name: str, year_days: Callable[[int], frozenset[date]]) -> None:
        self.name = name
        self._year_days = year_days
        self._years: dict[int, frozenset[date]] = {}
        self._lock = threading.Lock()

    def days_of(self, year: int) -> frozenset[date]:
        """Every open date of ``year``."""
        days = self._years.get(year)
        if days is None:
            days = self._year_days(year)
            with self._lock:
                self._years[year] = days
        return days

    def is_open(self, day: date) -> bool:
        """Whether ``day`` is a session (exchange) or a business day (country)."""
        return day in self.days_of(day.year)


def _import(module: str, package: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise CalendarError(f"calendars need the {package!r} package, which is not installed; {EXTRA_HINT}") from exc


@cache
def exchange_names() -> tuple[str, ...]:
    """The exchange codes ``exchange-calendars`` knows (CalendarError when it is not installed)."""
    return tuple(sorted(_import("exchange_calendars", "exchange-calendars").get_calendar_names(include_aliases=True)))


@cache
def country_codes() -> dict[str, tuple[str, ...]]:
    """Country code → its subdivision codes, as ``holidays`` knows them."""
    countries = _import("holidays", "holidays").list_supported_countries()
    return {code: tuple(subdivisions) for code, subdivisions in countries.items()}


def _exchange_days(name: str) -> Callable[[int], frozenset[date]]:
    xcals = _import("exchange_calendars", "exchange-calendars")

    def year_days(year: int) -> frozenset[date]:
        try:
            with warnings.catch_warnings():  # the library's own deprecation notices from pandas
                warnings.simplefilter("ignore")
                calendar = xcals.get_calendar(name, start=f"{year}-01-01", end=f"{year}-12-31")
        except Exception:  # outside the years the exchange's rules cover: no session known
            return frozenset()
        return frozenset(session.date() for session in calendar.sessions)

    return year_days


def _country_days(country: str, subdivision: str | None) -> Callable[[int], frozenset[date]]:
    holidays = _import("holidays", "holidays")

    def year_days(year: int) -> frozenset[date]:
        table = holidays.country_holidays(country, subdiv=subdivision, years=year)
        weekend = set(getattr(table, "weekend", None) or {5, 6})
        day, days = date(year, 1, 1), set()
        while day.year == year:
            if day.weekday() not in weekend and day not in table:
                days.add(day)
            day += timedelta(days=1)
        return frozenset(days)

    return year_days


def _close(name: str, known: tuple[str, ...]) -> tuple[str, ...]:
    found = did_you_mean(name, known)
    return (found,) if found else ()


@cache
def open_calendar(name: str) -> DayCalendar:
    """The calendar ``name`` (``"XNYS"``, ``"holidays:US"``, ``"holidays:US-NY"``); CalendarError when unknown."""
    if name.startswith(HOLIDAYS_PREFIX):
        code = name[len(HOLIDAYS_PREFIX):]
        country, _, subdivision = code.partition("-")
        countries = country_codes()
        if country not in countries:
            close = _close(country.upper(), tuple(countries))
            raise CalendarError(f"unknown country {country!r} for holidays", tuple(HOLIDAYS_PREFIX + c for c in close))
        if subdivision and subdivision not in countries[country]:
            close = _close(subdivision.upper(), countries[country])
            raise CalendarError(f"unknown subdivision {subdivision!r} of {country} for holidays",
                                tuple(f"{HOLIDAYS_PREFIX}{country}-{c}" for c in close))
        return DayCalendar(name, _country_days(country, subdivision or None))
    names = exchange_names()
    if name not in names:
        close = _close(name.upper(), names)
        raise CalendarError(f"unknown exchange calendar {name!r} (or give a country as 'holidays:US')", close)
    return DayCalendar(name, _exchange_days(name))
