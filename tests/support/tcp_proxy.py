"""A small TCP forwarder for outage tests: clients connect to it, it connects them to the target.

``cut()`` closes every forwarded connection and the listening socket, so a client sees its
connection drop and new connections refused (ECONNREFUSED), as when a broker goes away;
``restore()`` listens again on the same port. ``stall()`` keeps every connection open but
forwards nothing (a hung service, a black-holed network) until ``unstall()``. Threads only, no asyncio; everything is
closed by ``close()`` (also usable as a context manager).

Usage::

    with TcpProxy(("127.0.0.1", broker_port)) as proxy:
        client_connects_to(proxy.address)      # "127.0.0.1:PORT"
        proxy.cut()                            # the outage
        proxy.restore()                        # the broker is back
        proxy.stall(); proxy.unstall()         # a service that stops answering, then answers
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

CHUNK = 1 << 16


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TcpProxy:
    """Forwards ``host:port`` (a free port by default) to ``target``."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self.host = host
        self.port = port or free_port(host)
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._closed = False
        self._flowing = threading.Event()  # cleared while stalled
        self._flowing.set()
        self.connections = 0  # connections accepted so far (for tests that want to see reconnects)
        self.restore()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- outages --------------------------------------------------------------------------------
    def cut(self) -> None:
        """Drop every forwarded connection and refuse new ones until :meth:`restore`."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            _close(listener)
        for a, b in pairs:
            _close(a)
            _close(b)
        if self._acceptor is not None:
            self._acceptor.join(5)
            self._acceptor = None

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        with self._lock:
            if self._closed or self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(64)
            listener.settimeout(0.1)
            self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True,
                                          name=f"tcp-proxy-{self.port}")
        self._acceptor.start()

    def stall(self) -> None:
        """Keep connections (and accept new ones) but forward no byte until :meth:`unstall`."""
        self._flowing.clear()

    def unstall(self) -> None:
        """Forward again what was held back, and everything after."""
        self._flowing.set()

    @property
    def is_stalled(self) -> bool:
        return not self._flowing.is_set()

    def close(self) -> None:
        self._flowing.set()
        self.cut()
        with self._lock:
            self._closed = True

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    # -- forwarding -----------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._pairs.add(pair)
                self.connections += 1
            threading.Thread(target=self._pump, args=(pair,), daemon=True,
                             name=f"tcp-proxy-{self.port}-pump").start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Copy bytes both ways until either side closes (or :meth:`cut` closes both)."""
        client, upstream = pair
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            try:
                selector.register(client, selectors.EVENT_READ)
                selector.register(upstream, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select(timeout=0.5):
                        data = key.fileobj.recv(CHUNK)  # type: ignore[union-attr]
                        if not data:
                            return
                        while not self._flowing.wait(0.1):
                            with self._lock:
                                if pair not in self._pairs:
                                    return
                        peer[key.fileobj].sendall(data)  # type: ignore[index]
                    with self._lock:
                        if pair not in self._pairs:
                            return
            except (OSError, ValueError):
                return
            finally:
                with self._lock:
                    self._pairs.discard(pair)
                _close(client)
                _close(upstream)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
