"""Stopping the web server (supervision/serving.py ``WebServer.stop``) ends its thread cleanly.

Closing waitress's sockets from another thread while its loop polls them made the ``web``
thread die now and then with ``OSError: [Errno 9] Bad file descriptor`` ("Exception in
thread web" in the server's log at shutdown). Many start/request/stop rounds: the thread
ends every time, and no thread raised.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from supervision.serving import WebServer
from tests.support.supervised import free_port

ROUNDS = 40  # the race showed in about 1 round in 10


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def thread_errors() -> Iterator[list[str]]:
    errors: list[str] = []
    before = threading.excepthook
    threading.excepthook = lambda args: errors.append(f"{args.thread.name if args.thread else '?'}: "
                                                      f"{args.exc_type.__name__}: {args.exc_value}")
    yield errors
    threading.excepthook = before


def test_stop_ends_the_web_thread_without_an_exception(thread_errors: list[str]) -> None:
    for _round in range(ROUNDS):
        server = WebServer(hello, "127.0.0.1", free_port())
        server.start()
        with urllib.request.urlopen(f"{server.url}/", timeout=5) as response:
            assert response.read() == b"ok"
        server.stop()
        assert not server._thread.is_alive(), "the web thread still runs after stop()"
    assert thread_errors == []


def test_a_server_never_started_stops_too() -> None:
    WebServer(hello, "127.0.0.1", free_port()).stop()
