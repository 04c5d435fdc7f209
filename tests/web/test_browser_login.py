"""The login form against a hostile web in Debian's Chromium, driven by Playwright (SPEC §7).

* Login CSRF: a page served from another origin (another local port: the same *site*, so a
  SameSite=Lax cookie would still be sent) auto-submits the login form with the attacker's
  credentials; the visitor must not end up signed in as the attacker.
* Open redirect: ``/login?next=/%09/evil.com`` plants a ``next`` the browser would turn into
  ``//evil.com`` (it drops tabs); after signing in the browser must stay on the server.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route

from tests.support.browser import chromium, require_chromium
from tests.support.supervised import SupervisedServer, free_port, metronome_dag

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser-login")
    with SupervisedServer(tmp, {"clock": metronome_dag("clock", tmp / "clock.jsonl", interval=0.5)},
                          workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: SupervisedServer) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def attacker_site(html: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A web server on another local port answering every GET with ``html``; (server, its URL)."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site, f"http://127.0.0.1:{site.server_address[1]}/"


def test_a_cross_site_auto_submitted_login_signs_nobody_in(browser: Browser, server: SupervisedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/login")  # the visitor has been here before: a pre-login cookie exists
    site, url = attacker_site(f"""<!doctype html><html><body>
        <form id="f" method="post" action="{base}/login">
          <input name="username" value="viewer"><input name="password" value="pw-viewer">
          <input name="csrf_token" value="guessed"><input name="next" value="/">
        </form>
        <script>document.getElementById("f").submit();</script></body></html>""")
    try:
        with page.expect_response(f"{base}/login") as answer:
            page.goto(url)
        assert answer.value.status == 403
        page.goto(f"{base}/")
        assert page.url.startswith(f"{base}/login")  # not signed in: sent to the login page
        status = page.evaluate("async () => (await fetch('/api/workers')).status")
        assert status == 401
    finally:
        site.shutdown()
        context.close()


def test_a_planted_next_with_a_tab_stays_on_the_server(browser: Browser, server: SupervisedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    context = browser.new_context()
    visited: list[str] = []

    def evil(route: Route) -> None:
        visited.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>evil</p>")

    context.route(re.compile(r"^https?://evil\.com(:\d+)?(/|$)"), evil)  # the network is never asked
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/login?next=/%09/evil.com")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "pw-viewer")
    with page.expect_response(lambda r: r.url == f"{base}/login" and r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 302 and answer.value.headers["location"] == "/", answer.value.headers
    page.wait_for_url(f"{base}/")
    assert visited == [] and page.url == f"{base}/", (page.url, visited)
    context.close()
