"""The web UI in Debian's Chromium, driven by Playwright against a real ``dagserver serve`` (SPEC §7).

One server and one browser for the module; each test signs in as the role it needs in a
fresh browser context. The pages are photographed into a temporary folder; ``make screenshots``
sets ``DAGSERVER_SCREENSHOTS=docs/screenshots`` to renew the README's pictures.
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

SHOTS: dict[str, Path] = {}  # "folder": where shoot() writes (the server fixture chooses it)
XSS = "<script>alert(1)</script>"
TIMEOUT_MS = 15_000


def diamond_dag(out: Path) -> dict[str, Any]:
    """clock → a → (b, c) → d → sink; the edge a→b goes through the ``rename`` transformer."""
    return {
        "name": "diamond", "description": "a diamond: one source, two branches, one join",
        "subscribers": [{"name": "clock", "config": {"source": "metronome", "interval": 0.2, "message": "tick"}}],
        "publishers": [{"name": "sink", "config": {"destination": f"file://{out}"}}],
        "transformers": [{"name": "rename", "type": "PassthruDataTransformer"}],
        "nodes": [{"name": "a", "type": "SubscriptionNode", "subscriber": "clock"}, {"name": "b"}, {"name": "c"},
                  {"name": "d", "type": "PublicationNode", "publishers": ["sink"]}],
        "edges": [{"from_node": "a", "to_node": "b", "data_transformer": "rename"}, {"from_node": "a", "to_node": "c"},
                  {"from_node": "b", "to_node": "d"}, {"from_node": "c", "to_node": "d"}],
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    SHOTS["folder"] = Path(os.environ.get("DAGSERVER_SCREENSHOTS") or tmp / "screenshots")
    dags = {"clock": metronome_dag("clock", tmp / "clock.jsonl", interval=0.3),
            "diamond": diamond_dag(tmp / "diamond.jsonl"),
            "ops": metronome_dag("ops", tmp / "ops.jsonl", interval=0.5,  # a stateful node for the State column
                                 calculator={"name": "ticks", "type": "AggregateCalculator",
                                             "config": {"aggregates": {"ticks": {"op": "count"}}}})}
    dags["clock"]["subscribers"][0]["config"]["message"] = XSS
    with SupervisedServer(tmp, dags, workers=1) as running:
        running.wait_dags("running")
        yield running


@pytest.fixture(scope="module")
def browser(server: SupervisedServer) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def signed_in(browser: Browser, server: SupervisedServer, role: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"http://127.0.0.1:{server.port}/login")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", f"pw-{role}")
    page.click("button[type=submit]")
    page.wait_for_url(f"http://127.0.0.1:{server.port}/")
    return page


def shoot(page: Page, name: str) -> None:
    SHOTS["folder"].mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS["folder"] / f"{name}.png"), full_page=True)


def post_from_page(page: Page, path: str, csrf: bool) -> int:
    """A POST made by the page's own script (same origin, session cookie), with or without the CSRF header."""
    return int(page.evaluate("""async ([path, csrf]) => {
        const headers = csrf ? {"X-CSRF-Token": document.body.dataset.csrf} : {};
        return (await fetch(path, {method: "POST", headers, credentials: "same-origin"})).status;
    }""", [path, csrf]))


def test_a_wrong_password_is_refused(browser: Browser, server: SupervisedServer) -> None:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{server.port}/")
    assert "/login" in page.url  # not signed in: sent to the login page
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong user name or password.")
    assert "/login" in page.url
    shoot(page, "login")
    page.close()


def test_admin_sees_every_dag_with_its_state(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "admin")
    for name in ("clock", "diamond", "ops"):
        expect(page.locator(f"tr[data-dag='{name}'] .badge")).to_have_text("running")
    expect(page.locator("#worker-rows tr")).to_have_count(1)
    expect(page.locator("#server-role")).to_contain_text("leader")
    shoot(page, "dashboard")
    page.context.close()


def test_operator_suspends_and_resumes_without_a_reload(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "operator")
    page.evaluate("window.notReloaded = true")
    page.click("button[data-dag='ops'][data-action='suspend']")
    expect(page.locator("tr[data-dag='ops'] .badge")).to_have_text("suspended")
    assert server.states()["ops"] == "suspended"
    page.click("button[data-dag='ops'][data-action='resume']")
    expect(page.locator("tr[data-dag='ops'] .badge")).to_have_text("running")
    assert page.evaluate("window.notReloaded") is True
    page.context.close()


def test_a_viewer_has_no_buttons_and_a_forged_post_is_403(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "viewer")
    expect(page.locator("tr[data-dag='ops'] .badge")).to_have_text("running")
    assert page.locator("button[data-action]").count() == 0
    assert post_from_page(page, "/api/dags/ops/stop", csrf=True) == 403
    page.goto(f"http://127.0.0.1:{server.port}/dags/ops")
    assert page.locator("button[data-action]").count() == 0 and page.locator(".admin").count() == 0
    assert server.states()["ops"] == "running"
    page.context.close()


def test_a_post_without_the_csrf_token_is_403(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "operator")
    assert post_from_page(page, "/api/dags/ops/suspend", csrf=False) == 403
    assert server.states()["ops"] == "running"
    page.context.close()


def test_the_graph_shows_every_node_and_edge_of_a_diamond(browser: Browser, server: SupervisedServer) -> None:
    page = signed_in(browser, server, "admin")
    page.goto(f"http://127.0.0.1:{server.port}/dags/diamond")
    svg = page.locator("svg#graph")
    for key in ("subscriber:clock", "node:a", "node:b", "node:c", "node:d", "publisher:sink"):
        expect(svg.locator(f"g.box[data-key='{key}']")).to_have_count(1)
    arrows = [("subscriber:clock", "node:a"), ("node:a", "node:b"), ("node:a", "node:c"), ("node:b", "node:d"),
              ("node:c", "node:d"), ("node:d", "publisher:sink")]
    for source, target in arrows:
        expect(svg.locator(f"g.arrow[data-from='{source}'][data-to='{target}'] path")).to_have_count(1)
    expect(svg.locator("g.arrow")).to_have_count(len(arrows))
    expect(svg.locator("g.arrow[data-from='node:a'][data-to='node:b'] text.transformer")).to_have_text("rename")
    expect(svg.locator("g.box[data-key='node:d'] .computes")).not_to_have_text("0")  # live counts
    # failed commits back to the source (SPEC §6): a subscriber's column, none for a metronome
    expect(page.locator("tr[data-endpoint='subscriber:clock'] .commit_errors")).to_have_text("0")
    xs = [float(page.locator(f"g.box[data-key='node:{n}']").get_attribute("transform").split("(")[1].split(",")[0])
          for n in "abcd"]
    assert xs[0] < xs[1] == xs[2] < xs[3]  # layered left to right
    shoot(page, "dag")
    page.goto(f"http://127.0.0.1:{server.port}/dags/diamond/clone")
    shoot(page, "clone")
    page.context.close()


def test_the_state_page_shows_output_changing_live_and_values_as_text(browser: Browser,
                                                                        server: SupervisedServer) -> None:
    page = signed_in(browser, server, "viewer")
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(f"http://127.0.0.1:{server.port}/dags/clock/state")
    output = page.locator("tr[data-node='tick'] td.output pre")
    expect(output).to_contain_text(XSS)  # the markup shows as the characters it is made of
    first = output.inner_text()
    page.wait_for_function("""([selector, first]) => {
        const cell = document.querySelector(selector); return cell && cell.innerText !== first; }""",
                           arg=["tr[data-node='tick'] td.output pre", first], timeout=TIMEOUT_MS)
    assert page.locator("main script").count() == 0 and alerts == []
    shoot(page, "state")
    page.goto(f"http://127.0.0.1:{server.port}/dags/ops/state")  # a stateful node shows its groups (SPEC §11)
    expect(page.locator("tr[data-node='tick'] td.held")).to_contain_text("1 groups", timeout=TIMEOUT_MS)
    expect(page.locator("tr[data-node='out'] td.held")).to_have_text("")
    page.goto(f"http://127.0.0.1:{server.port}/dags/clock")
    expect(page.locator("pre.config")).to_contain_text(XSS)
    assert page.locator("main script").count() == 0 and alerts == []
    page.context.close()


def test_an_uploaded_broken_dag_shows_its_check_lines_and_is_not_saved(browser: Browser,
                                                                       server: SupervisedServer) -> None:
    page = signed_in(browser, server, "admin")
    page.goto(f"http://127.0.0.1:{server.port}/admin/add")
    broken = {**metronome_dag("broken", server.tmp / "b.jsonl"), "edges": [{"from_node": "tick", "to_node": "nope"}]}
    broken["nodes"][0]["calculater"] = "x"
    page.set_input_files("input[name=file]", files=[{"name": "broken.json", "mimeType": "application/json",
                                                      "buffer": json.dumps(broken).encode()}])
    page.click("main button[type=submit]")
    problems = page.locator("#problems")
    expect(problems).to_contain_text("broken.json: edges[0].to_node")
    expect(problems).to_contain_text("did you mean 'calculator'?")
    assert not (server.dag_dir / "broken.json").exists() and "broken" not in server.states()
    assert sorted(p.name for p in server.dag_dir.glob("*.json")) == ["clock.json", "diamond.json", "ops.json"]
    shoot(page, "add")
    page.context.close()


def test_screenshots_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("login", "dashboard", "dag", "state", "add", "clone"):
        assert f"docs/screenshots/{name}.png" in readme
