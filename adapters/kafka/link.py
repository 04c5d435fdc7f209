"""What the Kafka source and sink share (adapters/kafka.py): the client library, an endpoint's
settings, the client config (``${VAR}`` resolved), the connection check, and :class:`Opener`,
which makes a client in the background while no broker answers (SPEC §6: an outage at
``open()`` leaves the endpoint ``reconnecting``, it never fails the DAG).

Usage::

    opener = Opener(endpoint, make_consumer, on_made=use_consumer)
    opener.start(wait=5.0)     # made within 5 s: connected; else reconnecting, retried until made
    ...
    opener.close()
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import CONNECTED, RECONNECTING, ParsedUri, from_environment, kind_and_name, setting
from adapters.formats import endpoint_format
from adapters.registry import AdapterNotAvailable

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 10.0  # seconds between two attempts to make a client (SPEC §6: capped at 10 s)
BACKOFF_MAX_MS = int(BACKOFF_MAX * 1000)  # the same cap on kafka-python's own reconnections
CLOSE_TIMEOUT = 2.0  # seconds close() may wait for the last commits, acks and the group leave
OPEN_WAIT = 5.0  # seconds open() waits for its client before saying ``reconnecting`` and going on
# what a consumer / producer gets unless consumer_config / producer_config say otherwise
CONSUMER_DEFAULTS: dict[str, Any] = {"reconnect_backoff_max_ms": BACKOFF_MAX_MS, "bootstrap_timeout_ms": 10_000,
                                     "metrics_enabled": False}
PRODUCER_DEFAULTS: dict[str, Any] = {**CONSUMER_DEFAULTS, "linger_ms": 5}
# what the broker (or the producer, before sending) refuses for one record alone: the rest of its batch goes
RECORD_ERRORS = ("MessageSizeTooLargeError", "RecordListTooLargeError", "CorruptRecordError", "InvalidRecordError",
                 "InvalidTimestampError")
TOO_LARGE = ("MessageSizeTooLargeError", "RecordListTooLargeError")


def check_kafka_uri(parsed: ParsedUri) -> str | None:
    return kind_and_name(parsed, ("topic",))


def load_kafka() -> Any:
    """The kafka-python package (3 or newer), or a clear error naming the extra that installs it."""
    try:
        import kafka
    except ImportError as exc:
        raise AdapterNotAvailable("kafka:// needs the Python package kafka-python: "
                                  "pip install 'dagserver[kafka]'") from exc
    if not hasattr(kafka, "AsyncConsumerRebalanceListener"):  # what 3.x added and this adapter relies on
        raise AdapterNotAvailable(f"kafka:// needs kafka-python 3 or newer, not {kafka.__version__}: "
                                  "pip install -U 'dagserver[kafka]' 'kafka-python>=3'")
    return kafka


def endpoint_settings(config: Mapping[str, Any], parsed: ParsedUri) -> tuple[str, list[str], str]:
    """The topic, the bootstrap servers and the format of an endpoint (config first, else the URI query)."""
    if problem := check_kafka_uri(parsed):
        raise ValueError(problem)
    servers = setting(config, parsed, "bootstrap_servers", "localhost:9092")
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    fmt = endpoint_format(config, parsed, "kafka")
    return parsed.parts[1], list(servers), fmt


def given_client_config(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``config[key]`` (``consumer_config`` / ``producer_config``) with every ``"${VAR}"`` string value
    replaced by the environment variable it names (SPEC §6: SASL/SSL passwords may be given so)."""
    given = config.get(key) or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"kafka {key!r} must be an object of client settings, not {given!r}")
    return {name: from_environment(value, f"kafka {key} {name!r}") for name, value in given.items()}


def client_config(cls: Any, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` the installed client knows, overlaid with the user's ``consumer_config``/``producer_config``."""
    known = getattr(cls, "DEFAULT_CONFIG", None)
    out = {k: v for k, v in defaults.items() if known is None or k in known}
    out.update(given)
    return out


def connected(client: Any, grouped: bool = False) -> bool:
    """Whether a consumer/producer has a live broker connection (and, ``grouped``, knows its group coordinator).
    kafka-python's public API does not say: this reads its connection manager (3.x layout); True when
    that layout is not found, leaving poll errors as the only signal."""
    coordinator = getattr(client, "_coordinator", None)
    if grouped and coordinator is not None and coordinator.coordinator_unknown():
        return False
    manager = getattr(client, "_manager", None) or getattr(getattr(getattr(client, "_sender", None), "_client", None),
                                                           "_manager", None)
    conns = getattr(manager, "_conns", None)
    if not isinstance(conns, dict):
        return True
    return any(getattr(conn, "connected", False) for conn in list(conns.values()))


def is_outage(kafka: Any, exc: BaseException) -> bool:
    """Whether ``exc`` (raised making a client) says no broker could be reached, rather than a mistake."""
    errors = kafka.errors  # a failed bootstrap is a KafkaTimeoutError, which is retriable
    return isinstance(exc, errors.KafkaConnectionError | OSError) or (
        isinstance(exc, errors.KafkaError) and bool(getattr(exc, "retriable", False)))


def make_client(cls: Any, settings: dict[str, Any]) -> Any:
    """``cls(**settings)`` (a KafkaConsumer or KafkaProducer). When that raises, the network client it had
    started is closed: kafka-python leaves its thread running when the bootstrap fails."""
    made: list[Any] = []
    factory = settings.get("kafka_client") or cls.DEFAULT_CONFIG["kafka_client"]

    def recording(**config: Any) -> Any:
        made.append(factory(**config))
        return made[-1]

    try:
        return cls(**{**settings, "kafka_client": recording})
    except BaseException:
        for client in made:
            try:
                client.close()
            except Exception as exc:  # it never connected: nothing is lost by a failed close
                log.debug("closing a client that did not start: %r", exc)
        raise


class Opener:
    """Makes an endpoint's kafka-python client on a helper thread, again and again (backoff 1 s doubling,
    capped at 10 s) while no broker answers; ``on_made(client)`` gets it. Meanwhile the endpoint's
    status is ``reconnecting``. A failure that is not an outage (say, a setting kafka-python does not
    know) ends the attempts: :meth:`start` raises it when it comes first, else it waits in ``failure``.
    (kafka-python reports a broker refusing the credentials as a bootstrap timeout: that one is retried.)"""

    def __init__(self, endpoint: Any, kafka: Any, make: Callable[[], Any], on_made: Callable[[Any], None]) -> None:
        self.endpoint = endpoint  # a Source or a Sink: ``status`` and ``uri``
        self.kafka = kafka
        self.make = make
        self.on_made = on_made
        self.made = threading.Event()  # set once on_made ran
        self.failure: BaseException | None = None
        self.failures = 0  # attempts that found no broker
        self._tried = threading.Event()  # the first attempt is over
        self._closing = threading.Event()
        self._lock = threading.Lock()  # close() and handing the client over never cross
        self._thread: threading.Thread | None = None

    def start(self, wait: float = OPEN_WAIT) -> None:
        """Start the attempts and wait up to ``wait`` seconds for the first one (``reconnecting`` after)."""
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"kafka-open-{self.endpoint.uri}")
        self._thread.start()
        self._tried.wait(wait)
        if self.failure is not None:
            raise self.failure
        if not self.made.is_set():
            self.endpoint.status = RECONNECTING

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closing.is_set():
            try:
                client = self.make()
            except Exception as exc:
                if not is_outage(self.kafka, exc):
                    log.error("%s: cannot open: %s", self.endpoint.uri, exc)
                    self.failure = exc
                    self._tried.set()
                    return
                self.failures += 1
                self.endpoint.status = RECONNECTING
                (log.warning if self.failures in (1, 10) or self.failures % 100 == 0 else log.debug)(
                    "%s: no broker answers (attempt %d: %s); trying again in %.0f s", self.endpoint.uri,
                    self.failures, exc, delay)
                self._tried.set()
                self._closing.wait(min(BACKOFF_MAX, delay * (1.0 + 0.2 * random.random())))
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            with self._lock:
                if self._closing.is_set():  # closed while it was being made
                    client.close()
                    return
                if self.failures:
                    log.warning("%s: connected after %d failed attempts", self.endpoint.uri, self.failures)
                self.on_made(client)
                self.endpoint.status = CONNECTED
                self.made.set()
            self._tried.set()
            return

    def raise_failure(self) -> None:
        """Raise what ended the attempts, if anything did (the endpoint's next read or write fails with it)."""
        if self.failure is not None:
            raise RuntimeError(f"{self.endpoint.uri}: cannot open: {self.failure}") from self.failure

    def close(self) -> None:
        """No more attempts; one under way closes what it makes (this does not wait for it). Once this
        returns, ``on_made`` has run or never will."""
        with self._lock:
            self._closing.set()
