"""``dagserver check`` on a DAG's ``schedule``: names and times, each with a suggestion when one is close."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.dag_check import base, check_doc, line_at

MARKET = {"timezone": "America/New_York", "days": ["mon", "tue", "wed", "thu", "fri"], "calendar": "XNYS",
          "windows": [{"start": "0930", "end": "1600"}, {"start": "2200", "end": "0200"}]}


def scheduled(**changes: Any) -> dict[str, Any]:
    doc = base()
    doc["schedule"] = {**MARKET, **changes}
    return doc


def test_a_valid_schedule_passes(tmp_path: Path) -> None:
    code, _, err, _ = check_doc(tmp_path, scheduled())
    assert (code, err) == (0, "")
    code, _, err, _ = check_doc(tmp_path, scheduled(calendar="holidays:US-NY", windows=None))
    assert (code, err) == (0, "")


@pytest.mark.parametrize(("changes", "where", "expected"), [
    ({"timezone": "America/New_Yrok"}, "schedule.timezone", "unknown time zone 'America/New_Yrok'"
     " (did you mean 'America/New_York'?)"),
    ({"days": ["mon", "thurs"]}, "schedule.days[1]", "unknown day 'thurs' (did you mean 'thu'?)"),
    ({"days": []}, "schedule.days", "schedule.days is empty"),
    ({"calendar": "XNYSS"}, "schedule.calendar", "(did you mean 'XNYS'?)"),
    ({"calendar": "holidays:UX"}, "schedule.calendar", "unknown country 'UX'"),
    ({"windows": [{"start": "0930", "end": "1660"}]}, "schedule.windows[0].end",
     "bad end: expected a time as 'HHMM'"),
    ({"windows": [{"start": "930", "end": "1600"}]}, "schedule.windows[0].start", "bad start"),
    ({"windows": [{"start": "0930", "end": "0930"}]}, "schedule.windows[0]", "start equals end"),
    ({"windows": [{"start": "0930"}]}, "schedule.windows[0].end", 'a window needs "end"'),
    ({"windows": [{"start": "0930", "stop": "1600"}]}, "schedule.windows[0].stop", "allowed keys: start, end"),
    ({"windows": []}, "schedule.windows", "schedule.windows is empty, so the DAG would never run"),
    ({"timezon": "UTC"}, "schedule.timezon", "(did you mean 'timezone'?)"),
])
def test_schedule_problems_name_the_path_and_suggest(tmp_path: Path, changes: dict[str, Any], where: str,
                                                     expected: str) -> None:
    code, _, err, file = check_doc(tmp_path, scheduled(**changes))
    assert code == 2
    assert expected in line_at(err, file, where)


def test_a_schedule_and_a_seed_window_together_are_refused(tmp_path: Path) -> None:
    doc = scheduled()
    doc["start_time"] = "0930"
    code, _, err, file = check_doc(tmp_path, doc)
    assert code == 2
    assert "a DAG with a schedule cannot also have start_time" in line_at(err, file, "start_time")
