"""Signing in to a running ``dagserver serve`` the way a browser does: the login form's CSRF token, cookies.

A :class:`FormClient` keeps its own cookies, never follows redirects (a 302 is an answer to
look at) and can hand its session cookie to another client, as a thief with a copy would::

    client = FormClient(server.base_url, context=server.tls_context)
    assert client.login("viewer", "pw-viewer") == 302
    thief = FormClient(server.base_url, cookie=client.session_cookie())
    thief.request("GET", "/api/workers")[0]        # 200 while the session lives
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

COOKIE = "dagserver_session"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class FormClient:
    """One browser-like client of ``base_url``; ``cookie``: a session cookie value to start with."""

    def __init__(self, base_url: str, *, context: ssl.SSLContext | None = None, cookie: str | None = None) -> None:
        self.base_url = base_url
        self.jar = CookieJar()
        handlers: list[Any] = [_NoRedirect, urllib.request.HTTPCookieProcessor(self.jar)]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)
        self.extra_cookie = cookie

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
        """``(status, headers, body text)``; error statuses are returned, not raised."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers or {})
        if self.extra_cookie is not None:
            req.add_header("Cookie", f"{COOKIE}={self.extra_cookie}")
        try:
            with self.opener.open(req, timeout=30) as response:
                return int(response.status), response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return int(error.code), error.headers, error.read().decode("utf-8", "replace")

    def form_token(self, path: str = "/login") -> str:
        """The CSRF token of the form on ``path`` (a GET, which also sets the pre-login cookie)."""
        status, _, text = self.request("GET", path)
        found = CSRF_FIELD.search(text)
        assert status == 200 and found, (status, text[:500])
        return found.group(1)

    def login(self, name: str, password: str, **form: str) -> int:
        """Fill and send the login form; the status (302 when signed in)."""
        return self.request("POST", "/login", {"csrf_token": self.form_token(), "username": name,
                                               "password": password, **form})[0]

    def session_cookie(self) -> str:
        """The value of this client's session cookie (what a thief would copy)."""
        return next(c.value for c in self.jar if c.name == COOKIE and c.value is not None)

    def csrf(self) -> str:
        """The signed-in session's CSRF token, from the dashboard."""
        status, _, text = self.request("GET", "/")
        found = re.search(r'data-csrf="([^"]+)"', text)
        assert status == 200 and found, (status, text[:500])
        return found.group(1)


def oversized_post_status(server: Any, path: str, size: int = 5 << 20, chunked: bool = False) -> int:
    """The status a POST of a ``size``-byte JSON body to ``path`` gets (admin token; over TLS when the server
    speaks it; ``chunked``: sent without a Content-Length, in chunks). The server may answer before the body
    is all sent and close: the answer is read all the same."""
    host, port = "127.0.0.1", int(server.port)
    raw = socket.create_connection((host, port), timeout=30)
    sock = server.tls_context.wrap_socket(raw, server_hostname=host) if server.tls_context else raw
    with sock:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {server.tokens['admin']}\r\n{length}\r\n\r\n")
        sock.sendall(head.encode())
        chunk, sent = b" " * 65536, 0
        with contextlib.suppress(OSError):  # refused early: the server stops reading and may reset
            while sent < size:
                piece = chunk[: size - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        reply = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in reply:
                more = sock.recv(4096)
                if not more:
                    break
                reply += more
    status = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    assert status, reply[:200]
    return int(status.group(1))
