"""One STOMP connection to an ActiveMQ broker at a time, for the ``activemq://`` source and sink.

:class:`StompLink` wraps stomp.py (imported by :func:`load_stomp`, only when an endpoint
opens). Every connection it makes gets a new *generation* number; frames are sent for a
generation (:meth:`StompLink.call`) and refused with :class:`LinkLost` once that connection
is gone, so an ACK or a COMMIT never reaches a connection that did not deliver the message.
Heartbeats (both ways) tell a dead broker from a quiet one. The link does not reconnect by
itself: its owner runs :func:`keep_connected` on a helper thread, which calls it again with
a backoff capped at 10 s.

:func:`endpoint` reads the keys both roles share (``host``, ``port``, ``username``,
``password``, ``heartbeats``, ``format``); a credential written ``"${VAR}"`` is taken from
the environment.

Usage::

    link = StompLink(load_stomp(), endpoint(config, parse_uri(uri)), label=uri, on_message=got)
    gen = link.connect()                           # raises ConnectionError / BrokerRefused
    link.call(gen, "subscribe", "/queue/x", id="1", ack="client-individual")
    link.close()
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import CONNECTED, RECONNECTING, ParsedUri, from_environment, kind_and_name, setting
from adapters.formats import endpoint_format
from adapters.registry import AdapterNotAvailable

log = logging.getLogger(__name__)

DEFAULT_PORT = 61613
DEFAULT_HEARTBEATS = 4000  # ms, both ways: a broker silent for twice that long is taken for dead
CONNECT_TIMEOUT = 5.0  # seconds a connection attempt may take, socket and CONNECTED frame together
CLOSE_TIMEOUT = 2.0  # seconds close() waits for the broker to confirm the DISCONNECT
WRITE_TIMEOUT = 5.0  # seconds a socket write may go without progress before the connection counts as lost
BACKOFF_INITIAL, BACKOFF_MAX = 0.2, 10.0  # seconds between reconnection attempts (doubling, SPEC §6 cap)


class LinkLost(ConnectionError):
    """The connection a frame was meant for is gone (or was never there)."""


class BrokerRefused(ConnectionError):
    """The broker answered CONNECT with an ERROR frame for good (wrong credentials, say).

    A client id still in use (a durable subscriber's previous connection) is a plain
    ConnectionError: retried, as the broker frees it once that connection is gone.
    """


class ClosedAtOnce(ConnectionError):
    """The broker closed a new connection without a word: its ERROR frame may have been lost with
    the connection's reset, so one more attempt tells a refusal from a hiccup."""


def connect_first(link: StompLink, attempts: int = 3) -> int:
    """The first connection of an endpoint: like :meth:`StompLink.connect`, trying again at once when
    the broker closed the connection without saying why."""
    for _ in range(attempts - 1):
        try:
            return link.connect()
        except ClosedAtOnce:
            continue
    return link.connect()


def load_stomp() -> Any:
    """The stomp.py package, or a clear error naming the extra that installs it."""
    try:
        import stomp
    except ImportError as exc:
        raise AdapterNotAvailable("activemq:// needs the Python package stomp.py: "
                                  "pip install 'dagserver[activemq]'") from exc
    return stomp


def check_activemq_uri(parsed: ParsedUri) -> str | None:
    return kind_and_name(parsed, ("queue", "topic"))


def _heartbeats(value: Any) -> int:
    ms = int(value)
    if ms < 0:
        raise ValueError(f"heartbeats must be 0 (off) or a number of milliseconds, not {value!r}")
    return ms


@dataclass(frozen=True)
class Endpoint:
    """Where and how an ``activemq://`` endpoint talks to its broker."""

    host: str
    port: int
    username: str | None
    password: str | None
    heartbeats: int  # ms; 0: none
    format: str
    kind: str  # "queue" or "topic"
    name: str

    @property
    def destination(self) -> str:
        """The STOMP destination: ``/queue/NAME`` or ``/topic/NAME``."""
        return f"/{self.kind}/{self.name}"


def endpoint(config: Mapping[str, Any], parsed: ParsedUri) -> Endpoint:
    """The shared settings of an endpoint (config first, else the URI query); ValueError when one is bad."""
    if problem := check_activemq_uri(parsed):
        raise ValueError(problem)
    fmt = endpoint_format(config, parsed, "activemq")
    username = from_environment(setting(config, parsed, "username", None), "activemq 'username'")
    password = from_environment(setting(config, parsed, "password", None), "activemq 'password'")
    return Endpoint(host=str(setting(config, parsed, "host", "localhost")),
                    port=setting(config, parsed, "port", DEFAULT_PORT, int),
                    username=None if username is None else str(username),
                    password=None if password is None else str(password),
                    heartbeats=setting(config, parsed, "heartbeats", DEFAULT_HEARTBEATS, _heartbeats),
                    format=fmt, kind=parsed.parts[0], name=parsed.parts[1])


class StompLink:
    """The current STOMP connection of one endpoint, numbered by generation.

    ``on_message(generation, frame)`` runs on stomp.py's receiver thread for every MESSAGE
    of the current connection. Thread-safe: the owner's threads and stomp.py's share it.
    """

    def __init__(self, stomp: Any, where: Endpoint, *, label: str, client_id: str | None = None,
                 on_message: Callable[[int, Any], None] | None = None) -> None:
        self._stomp = stomp
        self.where = where
        self.label = label
        self.client_id = client_id
        self.on_message = on_message
        self._cond = threading.Condition()
        self._conn: Any = None
        self._alive = False
        self._receipts: deque[str] = deque(maxlen=1000)  # confirmed, not waited for yet (kept if the link goes)
        self.generation = 0
        self.last_error = ""

    @property
    def alive(self) -> bool:
        return self._alive

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> int:
        """Drop the current connection and make a new one; its generation.

        Raises :class:`BrokerRefused` when the broker says no, ConnectionError when it cannot
        be reached or does not answer within ``timeout``.
        """
        self.drop()
        where = self.where
        with self._cond:
            self.generation += 1
            generation = self.generation
        hb = where.heartbeats
        conn = self._stomp.Connection12(
            [(where.host, where.port)], heartbeats=(hb, hb), heart_beat_receive_scale=2.0, timeout=timeout,
            reconnect_attempts_max=1, reconnect_sleep_initial=0.0, try_loopback_connect=False,
            auto_decode=False, auto_content_length=False)
        listener = _Listener(self, generation)
        conn.set_listener("dagserver", listener)
        headers = {"client-id": self.client_id} if self.client_id else {}
        try:
            conn.connect(where.username, where.password, wait=False, headers=headers)
        except Exception as exc:  # stomp.py raises ConnectFailedException, sockets OSError
            _shut(conn)
            raise ConnectionError(f"{self.label}: cannot reach {where.host}:{where.port} ({exc!r})") from exc
        with self._cond:
            self._conn = conn
            self._cond.wait_for(lambda: listener.state != "connecting", timeout)
            if listener.state == "connected" and self.generation == generation:
                _limit_writes(conn)
                self._alive = True
                return generation
            self._conn = None
        _shut(conn)
        if listener.state == "refused" and "already connected" not in listener.error:
            raise BrokerRefused(f"{self.label}: the broker refused the connection: {listener.error}")
        if listener.state == "refused":  # the client id is still held by a connection going away: retry
            raise ConnectionError(f"{self.label}: {listener.error}")
        if listener.state == "closed":
            raise ClosedAtOnce(f"{self.label}: {where.host}:{where.port} closed the connection at once "
                               f"({self.last_error or 'no reason given'})")
        raise ConnectionError(f"{self.label}: no answer from {where.host}:{where.port} within {timeout:g}s")

    def _current(self, generation: int) -> Any:
        with self._cond:
            if not self._alive or generation != self.generation or self._conn is None:
                raise LinkLost(f"{self.label}: connection {generation} is gone")
            return self._conn

    def call(self, generation: int, method: str, *args: Any, **kwargs: Any) -> None:
        """``connection.METHOD(*args, **kwargs)`` on connection ``generation``; LinkLost when it is gone."""
        conn = self._current(generation)
        try:
            getattr(conn, method)(*args, **kwargs)
        except Exception as exc:  # a send on a dead socket: NotConnectedException, OSError...
            self.lost(generation)
            raise LinkLost(f"{self.label}: {method} failed ({exc!r})") from exc

    def send_frames(self, generation: int, data: bytes) -> None:
        """Write frames made by :func:`frame` to connection ``generation`` in one go.

        One write rather than one per frame: a burst of tiny segments towards a broker busy
        writing to us can overflow its socket's receive memory, and the dropped segments
        stall both directions for seconds.
        """
        conn = self._current(generation)
        try:
            conn.transport.send(data)
        except Exception as exc:  # NotConnectedException, OSError
            self.lost(generation)
            raise LinkLost(f"{self.label}: write failed ({exc!r})") from exc

    def new_receipt(self) -> str:
        return uuid.uuid4().hex

    def wait_receipt(self, generation: int, receipt: str, timeout: float) -> bool:
        """Whether the broker confirmed ``receipt`` within ``timeout``; LinkLost when the connection went first."""
        with self._cond:
            self._cond.wait_for(lambda: receipt in self._receipts or not self._alive
                                or generation != self.generation, max(0.0, timeout))
            if receipt in self._receipts:
                self._receipts.remove(receipt)
                return True
            if not self._alive or generation != self.generation:
                raise LinkLost(f"{self.label}: connection lost before receipt {receipt}")
            return False

    def wait_lost(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the current connection to go; whether it is gone."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._alive, timeout)

    def lost(self, generation: int) -> None:
        """Connection ``generation`` is gone (a receiver, heartbeat or send noticed): forget it."""
        with self._cond:
            if generation != self.generation:
                return
            conn, self._conn, self._alive = self._conn, None, False
            self._cond.notify_all()
        if conn is not None:
            _shut(conn)

    def drop(self) -> None:
        """Close the current connection abruptly (the broker rolls back its open transactions)."""
        self.lost(self.generation)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Say DISCONNECT (the broker confirms once it handled every frame before it), then close."""
        generation = self.generation
        try:
            receipt = self.new_receipt()
            self.call(generation, "send_frame", "DISCONNECT", {"receipt": receipt})
            self.wait_receipt(generation, receipt, timeout)
        except LinkLost:
            pass
        self.lost(generation)

    # -- what the listener reports ------------------------------------------------------------------
    def _event(self, generation: int, update: Callable[[], None]) -> None:
        with self._cond:
            if generation == self.generation:
                update()
            self._cond.notify_all()

    def _receipt(self, generation: int, receipt: str) -> None:
        self._event(generation, lambda: self._receipts.append(receipt))


class _Listener:
    """stomp.py's callbacks for one connection (generation), forwarded to its link."""

    def __init__(self, link: StompLink, generation: int) -> None:
        self.link, self.generation = link, generation
        self.state = "connecting"  # then "connected", "refused" or "closed"
        self.error = ""

    def _set(self, state: str) -> None:
        def update() -> None:
            self.state = state
        self.link._event(self.generation, update)

    def on_connected(self, frame: Any) -> None:
        self._set("connected")

    def on_error(self, frame: Any) -> None:
        message = frame.headers.get("message", "")
        body = frame.body.decode("utf-8", "replace") if isinstance(frame.body, bytes) else str(frame.body or "")
        detail = body.strip().splitlines()[0][:300] if body.strip() else ""  # not the broker's stack trace
        self.error = message if detail in message else f"{message} {detail}".strip()
        self.link.last_error = self.error
        log.warning("%s: broker error: %s", self.link.label, self.error)
        if self.state == "connecting":
            self._set("refused")

    def on_disconnected(self) -> None:
        if self.state == "connecting":
            self._set("closed")
        self.link.lost(self.generation)

    def on_heartbeat_timeout(self) -> None:
        log.warning("%s: no heartbeat from the broker: connection taken for dead", self.link.label)
        self.link.lost(self.generation)

    def on_receipt(self, frame: Any) -> None:
        self.link._receipt(self.generation, frame.headers.get("receipt-id", ""))

    def on_message(self, frame: Any) -> None:
        if self.link.on_message is not None and self.generation == self.link.generation:
            self.link.on_message(self.generation, frame)


def keep_connected(link: StompLink, reconnect: Callable[[], None], set_status: Callable[[str], None],
                   closing: threading.Event, *, check_every: float = 1.0,
                   idle: Callable[[], None] | None = None) -> None:
    """Run on a helper thread until ``closing``: whenever ``link`` loses its connection, say
    ``reconnecting`` and call ``reconnect`` (which raises ConnectionError on failure) with a
    backoff capped at 10 s, then say ``connected``. While connected, ``idle`` runs every
    ``check_every`` seconds."""
    backoff, failures = BACKOFF_INITIAL, 0
    while not closing.is_set():
        if link.alive:
            if not link.wait_lost(check_every) and idle is not None:
                idle()
            continue
        set_status(RECONNECTING)
        try:
            reconnect()
        except ConnectionError as exc:
            failures += 1
            (log.warning if failures in (1, 10) or failures % 100 == 0 else log.debug)(
                "%s: reconnect attempt %d failed: %s", link.label, failures, exc)
            closing.wait(backoff * (1.0 + 0.2 * random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX)
            continue
        if failures:
            log.warning("%s: reconnected after %d failed attempts", link.label, failures)
        if not closing.is_set():
            set_status(CONNECTED)
        backoff, failures = BACKOFF_INITIAL, 0


def _escape(value: str) -> bytes:
    return value.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n").replace(":", "\\c").encode()


def frame(command: str, headers: Mapping[str, str], body: bytes = b"") -> bytes:
    """One STOMP 1.2 frame (headers escaped), ready for :meth:`StompLink.send_frames`.

    >>> frame("ACK", {"id": "ID:1"})
    b'ACK\\nid:ID\\\\c1\\n\\n\\x00'
    """
    return frame_head(command, headers) + b"\n" + body + b"\x00"


def frame_head(command: str, headers: Mapping[str, str]) -> bytes:
    """A frame's command and header lines, escaped, without the blank line that ends them: made once,
    it starts every frame of a batch that share them (``head + more header lines + b"\\n" + body + b"\\0"``)."""
    return command.encode() + b"\n" + b"".join(_escape(k) + b":" + _escape(str(v)) + b"\n" for k, v in headers.items())


def _limit_writes(conn: Any) -> None:
    """Make a write that cannot progress for WRITE_TIMEOUT fail (an OSError, the link is lost) instead of
    blocking for good: stomp.py's socket has no timeout, and a broker that stops reading would otherwise
    hold the writer, and stomp.py's send lock with it, until TCP gives up minutes later. Reads are not
    affected (SO_SNDTIMEO only)."""
    sock = conn.transport.socket
    if sock is not None:
        seconds = int(WRITE_TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                        struct.pack("ll", seconds, int((WRITE_TIMEOUT - seconds) * 1e6)))


def _shut(conn: Any) -> None:
    """Close a stomp.py connection's socket without a DISCONNECT frame, never raising."""
    transport = conn.transport
    transport.running = False
    if transport.socket is None:  # its receiver thread closed it already
        return
    try:
        transport.disconnect_socket()
    except Exception as exc:  # already closed by its receiver thread
        log.debug("closing a stomp socket: %r", exc)
