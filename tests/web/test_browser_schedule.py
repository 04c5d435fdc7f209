"""The dashboard in Chromium shows a scheduled DAG's rule and its next start (SPEC §14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from graphs.schedule import DAY_NAMES
from tests.support.browser import chromium, require_chromium
from tests.support.supervised import SupervisedServer, metronome_dag
from tests.web.test_browser import signed_in

pytestmark = pytest.mark.timeout(120)


def test_the_dashboard_shows_the_schedule_and_its_next_start(tmp_path: Path) -> None:
    require_chromium()
    later = datetime.now(UTC) + timedelta(days=2)
    day = DAY_NAMES[later.weekday()]
    dag = metronome_dag("waiting", tmp_path / "waiting.jsonl", schedule={
        "timezone": "UTC", "days": [day], "windows": [{"start": "0930", "end": "1600"}]})
    with SupervisedServer(tmp_path, {"waiting": dag}, workers=1) as server:
        server.wait_dags("suspended")
        next_start = server.get_ok("/api/dags")[0]["next_start"]
        assert next_start == f"{later.date().isoformat()}T09:30:00+00:00"
        with chromium() as browser:
            page = signed_in(browser, server, "viewer")
            row = page.locator("tr[data-dag=waiting]")
            expect(row).to_contain_text(f"{day} 09:30-16:00 UTC (next start {next_start})")

