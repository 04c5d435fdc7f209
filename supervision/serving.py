"""The production WSGI server the web UI, API and ``/metrics`` run on (SPEC §7).

Plain HTTP is served by waitress; with TLS (``tls_cert``/``tls_key`` in the config) by
cheroot's WSGI server with its built-in SSL adapter, since waitress speaks no TLS. Both
answer from a pool of threads (a slow page never blocks ``/metrics`` or ``/healthz``),
bound request sizes (a body over :data:`MAX_BODY` is 413 on both, chunked or not) and close idle
connections; neither is Werkzeug's development server.

Usage::

    server = WebServer(app, "127.0.0.1", 8080)     # OSError when the address is taken
    server.start()                                   # serves on a background thread
    server.url                                       # "http://127.0.0.1:8080"
    server.stop()

    WebServer(app, "0.0.0.0", 8443, tls=("cert.pem", "key.pem")).url   # "https://0.0.0.0:8443"
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import errors, wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from waitress.server import create_server

THREADS = 8  # requests answered at once; the rest wait in line
MAX_BODY = 4 << 20  # bytes: a DAG file upload is far smaller
CHUNK_FRAMING = 2  # cheroot counts a chunked body's framing too: let it read this many times MAX_BODY
HANDSHAKE_TIMEOUT = 5.0  # seconds a client may take for its TLS handshake
IDLE_TIMEOUT = 60.0  # seconds a connection may sit silent in the middle of a request
STOP_TIMEOUT = 5.0  # seconds stop() waits for the serving thread to end
log = logging.getLogger("dagserver.web")


class WebServer:
    """The WSGI ``app`` served on ``host:port`` from a daemon thread; over TLS when ``tls`` is
    ``(certificate chain PEM, private key PEM)``."""

    def __init__(self, app: Any, host: str, port: int, threads: int = THREADS,
                 tls: tuple[str, str] | None = None) -> None:
        self.host, self.port, self.tls = host, port, tls
        if tls is None:
            self.server: Any = create_server(app, host=host, port=port, threads=threads, ident="dagserver",
                                             max_request_body_size=MAX_BODY, channel_timeout=IDLE_TIMEOUT,
                                             expose_tracebacks=False)
            run = self.server.run
        else:
            self.server = tls_server(app, host, port, threads, *tls)
            run = self.server.serve
        self._thread = threading.Thread(target=run, name="web", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the connections and the thread pool, and wait for the thread to end.

        waitress's sockets are closed on its own loop thread (woken through its trigger): closed
        from here while the loop polls them, the thread died of a bad file descriptor."""
        if self.tls is None:
            if self._thread.is_alive():
                try:
                    self.server.trigger.pull_trigger(self._close_all)
                except OSError:  # its trigger is closed already: the loop is closing its sockets itself
                    log.debug("web server: trigger already closed at stop")
                self._thread.join(STOP_TIMEOUT)  # the loop ends once nothing is left to poll
            else:
                self.server.close()
            self.server.task_dispatcher.shutdown(timeout=5)
        else:
            self.server.stop()

    def _close_all(self) -> None:
        """On waitress's loop thread: close the listening socket, every connection and the trigger."""
        for dispatcher in list(self.server._map.values()):
            dispatcher.close()


class _LoggingServer(wsgi.Server):  # type: ignore[misc]
    """cheroot's WSGI server, writing its complaints (dropped handshakes, plain HTTP sent to the
    TLS port, errors) to the ``dagserver.web`` logger instead of stderr."""

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        log.log(level, "%s", msg, exc_info=traceback)


class _HandshakeTimeoutAdapter(BuiltinSSLAdapter):  # type: ignore[misc]
    """The built-in SSL adapter with a short handshake deadline: cheroot shakes hands on its
    accepting thread, so a client that connects and stays silent must not hold it for long."""

    def wrap(self, sock: Any) -> Any:
        sock.settimeout(HANDSHAKE_TIMEOUT)  # cheroot sets its own timeout again after the handshake
        return super().wrap(sock)


class BoundedChunkedBodies:
    """WSGI middleware for cheroot: a chunked body (no Content-Length to refuse it by) is read here, at most
    ``limit`` bytes, before ``app`` runs; over the limit it is 413. (cheroot's own limit fails mid-read,
    inside the app, which then answered 500 or 400.) A body with a Content-Length passes untouched: the
    app refuses one over the limit with 413 before reading it (``create_app(max_body=...)``)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self.app(environ, start_response)
        try:
            body: bytes | None = environ["wsgi.input"].read(self.limit + 1)
        except errors.MaxSizeExceeded:
            body = None
        if body is None or len(body) > self.limit:
            answer = json.dumps({"error": f"the request body is over the limit of {self.limit} bytes"}).encode()
            start_response("413 Request Entity Too Large", [("Content-Type", "application/json"),
                                                            ("Content-Length", str(len(answer))),
                                                            ("Connection", "close")])
            return [answer]
        environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


def tls_server(app: Any, host: str, port: int, threads: int, cert: str, key: str) -> wsgi.Server:
    """A cheroot WSGI server for ``app`` speaking only HTTPS with ``cert``/``key``, already listening
    (OSError when the address is taken; ssl.SSLError, an OSError too, when the PEM files are no good)."""
    server = _LoggingServer((host, port), BoundedChunkedBodies(app), numthreads=threads, server_name="dagserver",
                            request_queue_size=64, timeout=IDLE_TIMEOUT, shutdown_timeout=5)
    server.ssl_adapter = _HandshakeTimeoutAdapter(cert, key)
    server.max_request_body_size = MAX_BODY * CHUNK_FRAMING  # a Content-Length over MAX_BODY: the app says 413
    server.prepare()  # binds and listens now, like waitress's create_server
    return server
