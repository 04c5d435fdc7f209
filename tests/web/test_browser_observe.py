"""Tap, inject and capture in Debian's Chromium, driven by Playwright against a real server (SPEC §13).

An operator opens a DAG, clicks a node and watches its computes arrive in the tap; injects a
record from the page and sees it in the tap and in the file sink; captures 20 records,
downloads the capture, turns it into a test with ``dagserver test --from-capture``, runs it
green, then changes the calculator's config in the DAG file and sees the test fail with a
diff naming the field. The tap and the capture are photographed for the README (``make
screenshots``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import chromium, require_chromium
from tests.support.supervised import DAGSERVER, ROOT, SupervisedServer, metronome_dag, read_jsonl
from tests.support.waiting import wait_until
from tests.web.test_browser import SHOTS, TIMEOUT_MS, post_from_page, shoot, signed_in

LABEL = {"name": "label", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"label": "v1"}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser-observe")
    SHOTS["folder"] = Path(os.environ.get("DAGSERVER_SCREENSHOTS") or tmp / "screenshots")
    dags = {"flow": metronome_dag("flow", tmp / "flow.jsonl", interval=0.2, calculator=LABEL)}
    with SupervisedServer(tmp, dags, workers=1) as running:
        running.wait_dags("running")
        yield running


@pytest.fixture(scope="module")
def browser(server: SupervisedServer) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def dagserver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DAGSERVER), *args], capture_output=True, text=True, timeout=120)


def test_tap_inject_and_a_capture_turned_into_a_test(browser: Browser, server: SupervisedServer,
                                                      tmp_path: Path) -> None:
    page = signed_in(browser, server, "operator")
    page.goto(f"http://127.0.0.1:{server.port}/dags/flow")
    for path in ("/api/dags/flow/subscribers/clock/inject", "/api/dags/flow/capture"):
        assert post_from_page(page, path, csrf=False) == 403  # a browser's POST needs its CSRF token
    page.click("#graph g.box[data-key='node:tick']")
    rows = page.locator("#tap-rows tr")
    expect(page.locator("#tap-node")).to_have_text("tick")
    expect(rows.first).to_be_visible()
    first = rows.count()
    page.wait_for_function("n => document.querySelectorAll('#tap-rows tr').length > n", arg=first,
                           timeout=TIMEOUT_MS)  # records flowing in, live
    expect(rows.first.locator("td.output pre")).to_contain_text('"label":"v1"')

    page.fill("#inject-form textarea[name=records]", '{"message": "from the browser"}')
    page.click("#inject-form button[type=submit]")
    expect(page.locator("#inject-result")).to_have_text("injected 1 record at clock")
    expect(page.locator("#tap-rows td.input pre", has_text="from the browser")).to_have_count(1)
    sink = server.tmp / "flow.jsonl"
    assert wait_until(lambda: {"message": "from the browser", "label": "v1"} in read_jsonl(sink), timeout=10)
    shoot(page, "tap")

    page.fill("#capture-form input[name=records]", "20")
    page.click("#capture-form button[type=submit]")
    expect(page.locator("#capture-download")).to_be_visible(timeout=30_000)
    expect(page.locator("#capture-result")).to_contain_text("done: 20 records in, 20 out")
    shoot(page, "capture")
    with page.expect_download() as info:
        page.click("#capture-download")
    archive = tmp_path / "capture.tar.gz"
    info.value.save_as(archive)
    page.context.close()

    with tarfile.open(archive, mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    folder = next(tmp_path.glob("capture-flow-*"))
    test_file = tmp_path / "flow_test.json"
    made = dagserver("test", "--from-capture", str(folder), "-o", str(test_file))
    assert made.returncode == 0, made.stderr
    green = dagserver("test", str(test_file))
    assert green.returncode == 0 and "1 passed, 0 failed" in green.stdout, green.stdout + green.stderr

    dag_file = folder / "dag.json"
    dag = json.loads(dag_file.read_text())
    dag["calculators"][0]["config"]["defaults"]["label"] = "v2"
    dag_file.write_text(json.dumps(dag))
    red = dagserver("test", str(test_file))
    assert red.returncode == 1, red.stdout + red.stderr
    assert "publisher 'sink'" in red.stdout and "record 1 differs" in red.stdout
    assert 'keys that differ: label: expected "v1", got "v2"' in red.stdout, red.stdout


def test_the_tap_and_capture_screenshots_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("tap", "capture"):
        assert f"docs/screenshots/{name}.png" in readme
