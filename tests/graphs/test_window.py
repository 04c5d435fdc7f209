"""The daily active window: parsing, midnight crossing, end by end_time or duration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from graphs.loader import load_dag_dict
from graphs.window import DAY_SECONDS, ActiveWindow, parse_duration, parse_hhmm


def at(hhmm: str, day: int = 10, second: int = 0) -> datetime:
    return datetime(2024, 3, day, int(hhmm[:2]), int(hhmm[2:]), second)


@pytest.mark.parametrize(("text", "seconds"), [("0000", 0), ("0930", 34200), ("2359", 86340)])
def test_parse_hhmm(text: str, seconds: int) -> None:
    assert parse_hhmm(text) == seconds


@pytest.mark.parametrize("text", ["2400", "1260", "930", "09:30", "", "abcd", None, 930, "\uff10\uff19\uff13\uff10"])
def test_parse_hhmm_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="HHMM"):
        parse_hhmm(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6h30m", 23400), ("45m", 2700), ("2h", 7200), ("90s", 90), ("1h1m1s", 3661), ("24h", DAY_SECONDS),
     ("1440m", DAY_SECONDS)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "30m6h", "0h", "0m0s", "25h", "24h1s", "-1h", "1.5h", 5, None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_no_window_is_always_active() -> None:
    window = ActiveWindow.from_values(None)
    assert window.always
    assert all(window.is_active(at(t)) for t in ("0000", "1200", "2359"))
    assert window.next_change(at("1200")) is None
    assert window.describe() == "always"


def test_daytime_window() -> None:
    window = ActiveWindow.from_values("0900", "1730")
    assert not window.is_active(at("0859", second=59))
    assert window.is_active(at("0900"))
    assert window.is_active(at("1729", second=59))
    assert not window.is_active(at("1730"))
    assert window.next_change(at("0800")) == at("0900")
    assert window.next_change(at("1000")) == at("1730")
    assert window.next_change(at("1800")) == at("0900", day=11)
    assert window.describe() == "09:00 for 8h30m"


def test_window_crossing_midnight() -> None:
    window = ActiveWindow.from_values("2200", "0200")
    assert window.is_active(at("2300")) and window.is_active(at("0130"))
    assert window.is_active(at("2200")) and not window.is_active(at("0200"))
    assert not window.is_active(at("1200"))
    assert window.next_change(at("2300")) == at("0200", day=11)
    assert window.next_change(at("0100")) == at("0200")
    assert window.next_change(at("0300")) == at("2200")


def test_window_by_duration() -> None:
    window = ActiveWindow.from_values("2300", duration="6h30m")
    assert window.is_active(at("2330")) and window.is_active(at("0529"))
    assert not window.is_active(at("0530")) and not window.is_active(at("2259"))
    assert window.next_change(at("2300")) == at("0530", day=11)


def test_full_day_duration_and_start_only() -> None:
    assert ActiveWindow.from_values("0600", duration="24h").always
    until_midnight = ActiveWindow.from_values("1800")
    assert until_midnight.is_active(at("2359")) and not until_midnight.is_active(at("0000"))
    assert until_midnight.next_change(at("2000")) == at("0000", day=11)


def test_from_values_rejects_inconsistent_bounds() -> None:
    with pytest.raises(ValueError):
        ActiveWindow.from_values(None, "1000")
    with pytest.raises(ValueError):
        ActiveWindow.from_values("0900", "1000", "1h")
    with pytest.raises(ValueError):
        ActiveWindow.from_values("0900", "0900")


def test_aware_datetimes_use_their_wall_clock() -> None:
    window = ActiveWindow.from_values("0900", "1000")
    zone = timezone(timedelta(hours=5))
    now = datetime(2024, 3, 10, 9, 30, tzinfo=zone)
    assert window.is_active(now)
    assert window.next_change(now) == datetime(2024, 3, 10, 10, 0, tzinfo=zone)


def test_from_dag() -> None:
    doc = {
        "name": "w", "start_time": "2200", "duration": "3h",
        "subscribers": [{"name": "s", "config": {"source": "mem://queue/s"}}],
        "nodes": [{"name": "n", "type": "SubscriptionNode", "subscriber": "s"}],
    }
    window = ActiveWindow.from_dag(load_dag_dict(doc))
    assert (window.start, window.length) == (22 * 3600, 3 * 3600)
    assert window.is_active(at("0059")) and not window.is_active(at("0100"))
    del doc["start_time"], doc["duration"]
    assert ActiveWindow.from_dag(load_dag_dict(doc)).always
