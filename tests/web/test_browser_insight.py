"""Live charts, dead letters and the audit log in Debian's Chromium, against a real ``dagserver serve`` (SPEC §13).

The dashboard and a DAG page draw the last 15 minutes as SVG (``web/static/charts.js``) and the
points appear within seconds; the DAG page lists the dead letters and redrives the ones ticked;
the audit page shows who did it. Pictures go to a temporary folder, or to ``docs/screenshots``
under ``make screenshots``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import chromium, require_chromium
from tests.support.supervised import ROOT, SupervisedServer, metronome_dag
from tests.support.waiting import wait_until
from tests.web.test_browser import SHOTS, TIMEOUT_MS, shoot, signed_in


def faulty_dag(tmp: Path) -> dict[str, Any]:
    """Reads in.jsonl; its calculator raises for every record with ``boom``; letters go to dead.jsonl."""
    return {
        "name": "faulty", "description": "a calculator that raises for some records",
        "dead_letter": f"file://{tmp}/dead.jsonl", "checkpoint": {"every_epochs": 1},
        "subscribers": [{"name": "orders", "config": {"source": f"file://{tmp}/in.jsonl"}}],
        "publishers": [{"name": "out", "config": {"destination": f"file://{tmp}/out.jsonl"}}],
        "calculators": [{"name": "price", "type": "tests.support.userclasses.RaisingCalculator"}],
        "nodes": [{"name": "read", "type": "SubscriptionNode", "subscriber": "orders"},
                  {"name": "price", "calculator": "price"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "read", "to_node": "price"}, {"from_node": "price", "to_node": "publish"}],
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("insight")
    SHOTS["folder"] = Path(os.environ.get("DAGSERVER_SCREENSHOTS") or tmp / "screenshots")
    records = [{"order": 1, "qty": 2}, {"order": 2, "boom": "no price for sku 7"}, {"order": 3, "qty": 1},
               {"order": 4, "boom": "no price for sku 9"}, {"order": 5, "qty": 4}]
    (tmp / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    dags = {"faulty": faulty_dag(tmp), "clock": metronome_dag("clock", tmp / "clock.jsonl", interval=0.05)}
    with SupervisedServer(tmp, dags, workers=1) as running:
        running.wait_dags("running")
        yield running


@pytest.fixture(scope="module")
def browser(server: SupervisedServer) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def wait_for_points(page: Page, chart: str, at_least: int) -> None:
    """Until the chart's first line has ``at_least`` points drawn."""
    page.wait_for_function("""([chart, least]) => {
        const path = document.querySelector(`.charts svg.chart-${chart} path.series`);
        return path && Number(path.dataset.points) >= least; }""", arg=[chart, at_least], timeout=TIMEOUT_MS)


def test_the_dashboard_and_a_dag_page_chart_the_last_minutes(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "viewer")
    wait_for_points(page, "rates", 3)
    for chart in ("rates", "errors", "latency"):
        expect(page.locator(f".charts svg.chart-{chart}")).to_have_count(1)
    assert page.locator(".charts svg.chart-rates path.series-in").get_attribute("d").count("L") >= 2
    expect(page.locator(".charts svg.chart-rates text.legend.series-in")).to_contain_text("in")
    shoot(page, "charts")
    page.goto(f"http://127.0.0.1:{server.port}/dags/clock")
    wait_for_points(page, "rates", 3)
    in_rate = page.locator(".charts svg.chart-rates text.legend.series-in").text_content() or ""
    assert float(in_rate.split()[1]) > 0, in_rate  # the metronome ticks every 50 ms
    page.context.close()


def test_dead_letters_are_listed_and_redriven_from_the_dag_page(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "admin")
    page.on("dialog", lambda dialog: dialog.accept())
    # the letters are written at the next checkpoint: the page is opened once they are there
    assert wait_until(lambda: len(server.get_ok("/api/dags/faulty/deadletters")["letters"]) == 2, timeout=20)
    page.goto(f"http://127.0.0.1:{server.port}/dags/faulty")
    rows = page.locator("table.dead-letters tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("no price for sku 9")  # the newest first
    expect(page.locator("table.dead-letters")).to_contain_text("from orders")
    expect(page.locator("table.errors")).to_contain_text("boom in price")  # the last errors name their error
    wait_for_points(page, "errors", 2)
    page.locator("#dead-letters").scroll_into_view_if_needed()
    shoot(page, "deadletters")
    page.check("input[name=ids][value='0']")
    page.click("form.dead-letters button:not([name])")
    expect(page.locator(".flash")).to_contain_text("1 dead letter(s) redriven")
    page.goto(f"http://127.0.0.1:{server.port}/admin/audit")
    expect(page.locator("table.audit tbody tr").first).to_contain_text("/dags/faulty/deadletters/redrive")
    expect(page.locator("table.audit tbody tr").first).to_contain_text("ok")
    shoot(page, "audit")
    page.context.close()


def test_a_viewer_sees_the_letters_but_no_redrive_and_no_audit(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "viewer")
    page.goto(f"http://127.0.0.1:{server.port}/dags/faulty")
    expect(page.locator("table.dead-letters tbody tr").first).to_be_visible()
    assert page.locator("form.dead-letters button").count() == 0
    assert page.locator("input[name=ids]").count() == 0
    response = page.goto(f"http://127.0.0.1:{server.port}/admin/audit")
    assert response is not None and response.status == 403
    page.context.close()


def test_the_pictures_are_in_the_readme_and_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    docs = (ROOT / "docs" / "DEADLETTERS.md").read_text()
    for name in ("charts", "deadletters", "audit"):
        assert f"docs/screenshots/{name}.png" in readme and f"screenshots/{name}.png" in docs
        assert (ROOT / "docs" / "screenshots" / f"{name}.png").exists()
