"""What every ``redis://`` endpoint shares: its URI's kind and name, its settings, and a link that reconnects.

A URI names one of four kinds (SPEC §6): ``redis://list/NAME``, ``redis://stream/NAME``,
``redis://channel/NAME`` and ``redis://key`` (the seed's bare ``redis://`` too), optionally
after a ``HOST[:PORT]`` part (``redis://cache:6380/stream/NAME``); the seed's
``redischannel://NAME`` is a channel. :func:`target_of` reads that.

:class:`RedisLink` owns one endpoint's redis-py client. The client never retries by
itself and has socket timeouts, so a lost or hung connection surfaces at once as an error;
the link then sets the endpoint's ``status`` to ``reconnecting`` and spaces the next tries
out (exponential backoff capped at 10 s). redis-py reconnects on the next command.

Usage::

    target = target_of(parse_uri("redis://stream/events"))     # Target(kind='stream', name='events', ...)
    link = RedisLink(source, endpoint_settings(config, parsed, target))
    client = link.connect()
    if link.ready(timeout=0.05):                               # False while backing off (waits <= timeout)
        try:
            n = client.llen("jobs"); link.ok()
        except link.errors as exc:
            link.lost(exc)                                     # status reconnecting, next try later
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.base import (
    CLOSED,
    CONNECTED,
    RECONNECTING,
    ParsedUri,
    Sink,
    Source,
    from_environment,
    publish_limit,
    setting,
)
from adapters.formats import endpoint_format
from adapters.redis.liveness import Liveness
from adapters.registry import AdapterNotAvailable
from graphs.suggest import mean_phrase

log = logging.getLogger("adapters.redis")

KINDS = ("list", "stream", "channel", "key")
SHAPES = "redis://list/NAME, redis://stream/NAME, redis://channel/NAME or redis://key"
BACKOFF_FIRST = 0.1  # seconds before the first retry; doubled per failure ...
BACKOFF_MAX = 10.0  # ... up to this (SPEC §6)
SOCKET_TIMEOUT = 5.0  # a command (or a connect) with no answer for this long is a lost connection
HEALTH_CHECK_INTERVAL = 2  # seconds idle after which redis-py pings a pooled connection before using it


def load_redis() -> Any:
    """The redis-py package, or a clear error naming the extra that installs it."""
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:
        raise AdapterNotAvailable("redis:// needs the Python package redis: pip install 'dagserver[redis]'") from exc
    return redis


@dataclass(frozen=True)
class Target:
    """What a URI names: its kind, the list/stream/channel name (empty for keys), and a host in the URI."""

    kind: str
    name: str = ""
    host: str | None = None
    port: int | None = None


def _host_part(part: str, raw: str) -> tuple[str, int | None]:
    host, colon, port = part.partition(":")
    if not colon:
        return host, None
    if not port.isdigit():
        raise ValueError(f"redis URI {raw!r}: bad port {port!r}")
    return host, int(port)


def target_of(parsed: ParsedUri) -> Target:
    """The :class:`Target` a ``redis://`` or ``redischannel://`` URI names; ValueError saying what is wrong.

    >>> target_of(parse_uri("redis://list/jobs"))
    Target(kind='list', name='jobs', host=None, port=None)
    >>> target_of(parse_uri("redis://")).kind, target_of(parse_uri("redischannel://news")).name
    ('key', 'news')
    """
    parts, raw = parsed.parts, parsed.raw
    if parsed.scheme == "redischannel":
        if len(parts) != 1:
            raise ValueError(f"redischannel URI {raw!r} must look like redischannel://NAME")
        return Target("channel", parts[0])
    host: str | None = None
    port: int | None = None
    if len(parts) in (2, 3) and parts[0] not in KINDS and parts[1] in KINDS:  # redis://HOST[:PORT]/KIND/...
        host, port = _host_part(parts[0], raw)
        parts = parts[1:]
    elif len(parts) == 1 and ":" in parts[0]:  # redis://HOST:PORT, the key sink
        host, port = _host_part(parts[0], raw)
        parts = ()
    if not parts or parts == ("key",):
        return Target("key", "", host, port)
    if len(parts) == 2 and parts[0] in KINDS[:3]:
        return Target(parts[0], parts[1], host, port)
    hint = mean_phrase(parts[0], KINDS)
    raise ValueError(f"redis URI {raw!r} must look like {SHAPES}" + (f" ({hint})" if hint else ""))


def resolve_secret(value: Any, key: str) -> str | None:
    """``value``, or the environment variable it names as ``"${NAME}"`` (ValueError naming it when unset)."""
    if value is None or value == "":
        return None
    return str(from_environment(str(value), f"redis {key!r}"))


@dataclass(frozen=True)
class Settings:
    """How to reach the server, and how records are encoded."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    password: str | None = None
    username: str | None = None
    format: str = "json"
    socket_timeout: float = SOCKET_TIMEOUT

    @property
    def block(self) -> float:
        """The longest a blocking read may block: well inside the socket timeout."""
        return self.socket_timeout / 2


def endpoint_settings(config: Mapping[str, Any], parsed: ParsedUri, target: Target) -> Settings:
    """An endpoint's :class:`Settings`: config first, else the URI query, else a host in the URI, else defaults."""
    fmt = endpoint_format(config, parsed, "redis")
    settings = Settings(
        host=str(setting(config, parsed, "host", target.host or "localhost")),
        port=setting(config, parsed, "port", target.port or 6379, int),
        db=setting(config, parsed, "db", 0, int),
        password=resolve_secret(setting(config, parsed, "password", None), "password"),
        username=resolve_secret(setting(config, parsed, "username", None), "username"),
        format=fmt,
        socket_timeout=setting(config, parsed, "socket_timeout", SOCKET_TIMEOUT, float),
    )
    if settings.db < 0 or not 0 < settings.port < 65536 or settings.socket_timeout <= 0:
        raise ValueError(f"redis URI {parsed.raw!r}: 'db' must be >= 0, 'port' a TCP port, 'socket_timeout' > 0")
    return settings


def consumer_name(config: Mapping[str, Any], parsed: ParsedUri) -> str:
    """This reader's name at the server: ``consumer``, else ``SERVER.DAG.SUBSCRIBER.REPLICA`` from the runtime,
    else the host name (give ``consumer`` when using a source outside a DAG)."""
    given = setting(config, parsed, "consumer", "")
    if given:
        return str(given)
    if config.get("_dag") is not None:
        return f"{config.get('_server') or socket.gethostname()}.{config['_dag']}.{config.get('_subscriber')}." \
               f"{config.get('_replica') or 0}"
    return f"dagserver@{socket.gethostname()}"


class RedisUnavailable(ConnectionError):
    """A sink could not reach the server for its whole ``publish_timeout``."""


class RedisLink:
    """One endpoint's client, and the endpoint's connection ``status`` with the backoff between tries."""

    def __init__(self, endpoint: Any, settings: Settings) -> None:
        self.endpoint = endpoint  # a Source or a Sink: its ``status`` is kept here
        self.settings = settings
        self.client: Any = None
        self.errors: tuple[type[BaseException], ...] = (OSError,)  # the connection failed: retry later
        self.server_errors: tuple[type[BaseException], ...] = ()  # the server refused a command
        self._fatal: tuple[type[BaseException], ...] = ()
        self._delay = BACKOFF_FIRST
        self._retry_at = 0.0

    def connect(self) -> Any:
        """Make the client (no round trip: the first command connects). Status ``connected`` until told otherwise."""
        redis = load_redis()
        exc = redis.exceptions
        self.errors = (exc.ConnectionError, exc.TimeoutError, exc.ReadOnlyError, OSError)  # read-only: a failover
        self._fatal = (exc.AuthenticationError, exc.AuthenticationWrongNumberOfArgsError)
        self.server_errors = (exc.ResponseError,)
        s = self.settings
        self.client = redis.Redis(host=s.host, port=s.port, db=s.db, password=s.password, username=s.username,
                                  socket_timeout=s.socket_timeout, socket_connect_timeout=s.socket_timeout,
                                  health_check_interval=HEALTH_CHECK_INTERVAL,
                                  retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0))
        self._delay, self._retry_at = BACKOFF_FIRST, 0.0
        self.endpoint.status = CONNECTED
        return self.client

    def waiting(self) -> float:
        """Seconds until the next try is due (0: now)."""
        return max(0.0, self._retry_at - time.monotonic())

    def ready(self, timeout: float) -> bool:
        """Whether a try is due, waiting up to ``timeout`` for it."""
        wait = self.waiting()
        if wait > 0:
            time.sleep(min(wait, max(0.0, timeout)))
        return self.client is not None and self.waiting() == 0

    def ok(self) -> None:
        """A command went through."""
        if self.endpoint.status == RECONNECTING:
            log.info("%s: connected again", self.endpoint.uri)
        self._delay, self._retry_at = BACKOFF_FIRST, 0.0
        self.endpoint.status = CONNECTED

    def refused(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the server refusing the credentials: a mistake to report, not an outage."""
        return isinstance(exc, self._fatal)

    def lost(self, exc: BaseException) -> None:
        """A command failed on the connection: ``reconnecting``, next try after the backoff. A refused
        password is not an outage: it is raised again."""
        if self.refused(exc):
            raise exc
        if self.endpoint.status != RECONNECTING:
            log.warning("%s: connection to %s:%s lost (%s); reconnecting", self.endpoint.uri, self.settings.host,
                        self.settings.port, exc)
        self.endpoint.status = RECONNECTING
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, BACKOFF_MAX)

    def deliver(self, build: Callable[[Any], None], limit: float, atomic: bool = True) -> None:
        """Run the commands ``build`` queues on a pipeline (``atomic``: as one transaction); retry while the
        server is away, raise :class:`RedisUnavailable` once ``limit`` seconds passed without success."""
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if self.waiting() > 0:
                time.sleep(max(0.0, min(self.waiting(), left)))
            try:
                pipe = self.client.pipeline(transaction=atomic)
                build(pipe)
                pipe.execute()
            except self.errors as exc:
                self.lost(exc)
                if time.monotonic() >= deadline:
                    raise RedisUnavailable(f"{self.endpoint.uri}: not written for {limit:g}s "
                                           f"(publish_timeout): {exc}") from exc
                continue
            self.ok()
            return

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing a dead connection may complain; nothing is lost by it
                log.debug("%s: close: %s", self.endpoint.uri, exc)
        self.endpoint.status = CLOSED


def chunks(items: list[Any], size: int = 1000) -> list[list[Any]]:
    """``items`` in runs of at most ``size`` (one command each)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


class LinkedSource(Source):
    """What the redis sources share: the URI's target (one of ``kinds``), the settings and the link; a
    consumer that others take over once it is dead also keeps its ``liveness`` key fresh while open."""

    kinds: tuple[str, ...] = ()
    liveness: Liveness | None = None

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.target = _expect(target_of(self.parsed), self.kinds, uri, "source")
        self.name = self.target.name
        self.settings = endpoint_settings(self.config, self.parsed, self.target)
        self.link = RedisLink(self, self.settings)

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        """Up to ``max_records`` items from :meth:`_take`; ``[]`` (and ``reconnecting``) while the server is away."""
        if self.link.client is None:
            raise RuntimeError(f"{self!r} is not open")
        if not self.link.ready(timeout):
            return []
        try:
            if self.liveness is not None:
                self.liveness.refresh(self.link.client)
            items = self._take(max(1, max_records), timeout)
        except self.link.errors as exc:
            self._lost(exc)
            return []
        self.link.ok()
        return items

    def keep_alive(self) -> None:
        """While the DAG is too busy to read: keep the liveness key fresh, so nobody takes over."""
        if self.liveness is None or self.link.client is None or self.link.waiting() > 0:
            return
        try:
            self.liveness.refresh(self.link.client)
        except self.link.errors as exc:
            self._lost(exc)

    def _take(self, n: int, timeout: float) -> list[Any]:
        """At most ``n`` items, waiting at most ``timeout`` for the first (the kind's own reading)."""
        raise NotImplementedError

    def _lost(self, exc: BaseException) -> None:
        """A command failed on the connection; kinds that must recount what they read extend this."""
        if self.liveness is not None:
            self.liveness.again()
        self.link.lost(exc)

    def close(self) -> None:
        self.link.close()


class LinkedSink(Sink):
    """What the redis sinks share; ``write_batch`` retries for ``publish_timeout`` (:meth:`RedisLink.deliver`)."""

    kinds: tuple[str, ...] = ()

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.target = _expect(target_of(self.parsed), self.kinds, uri, "sink")
        self.name = self.target.name
        self.settings = endpoint_settings(self.config, self.parsed, self.target)
        self.link = RedisLink(self, self.settings)
        self.limit = publish_limit(self.config)

    def open(self) -> None:
        self.link.connect()

    def deliver(self, build: Callable[[Any], None], atomic: bool = True) -> None:
        if self.link.client is None:
            raise RuntimeError(f"{self!r} is not open")
        self.link.deliver(build, self.limit, atomic)

    def close(self) -> None:
        self.link.close()


def _expect(target: Target, kinds: tuple[str, ...], uri: str, role: str) -> Target:
    if target.kind not in kinds:
        raise ValueError(f"{uri!r} names a redis {target.kind}, which this {role} does not handle")
    return target
