"""The contract every adapter meets (SPEC §6): a :class:`Source`, a :class:`Sink`, and the :class:`Adapter`
declaring them.

An adapter's ``ADAPTER = Adapter("scheme", check_uri, source=..., sink=...)`` states its URI shape, config
keys and sharing; :mod:`adapters.registry` maps the scheme to it (a guide: the top of docs/ADAPTERS.md).

The runtime drives a source from its subscriber's actor thread, in this order::

    from adapters.registry import open_source

    src = open_source("mem://queue/prices", {"max_size": 1000})   # checks settings, connects to nothing
    src.open(None)                       # or the position a checkpoint saved
    batch = src.read_batch(500, timeout=0.05)     # [] if nothing came in time
    pos = src.position()                 # msgpack-encodable, just after the batch
    ...                                  # the batch goes through the DAG; a checkpoint saves pos
    src.commit(pos)                      # only now: up to pos is done, never to be redelivered
    src.keep_alive()                     # instead of read_batch while the DAG is too busy to take more
    src.backlog(), src.status, src.dropped, src.commit_errors     # read after every poll: the figures
    src.close()

and a sink from its publisher's::

    sink = open_sink("file:///tmp/out.jsonl", {})
    sink.open()
    refused = sink.write_batch(records)  # returns once the system accepted them, or raises
    sink.flush()                         # on checkpoint epochs: durable and visible
    sink.close()

The rules (each method says more):

* never block the caller longer than the timeout it was given;
* an outage is a status, not an exception: ``status`` is :data:`CONNECTED`, :data:`RECONNECTING` while the
  system cannot be reached (retrying with a backoff capped at 10 s, at ``open()`` too), :data:`CLOSED` after
  ``close()``; other threads read it at any time, to show it while a call hangs;
* input that does not parse is handed out as a :class:`RejectedRecord`, never raised;
* a record the sink's system refuses for itself alone comes back from ``write_batch``; the rest is written;
* a failed commit or ack adds one to ``commit_errors`` and is retried at the next commit, never raised;
* records a source loses by its nature (an at-most-once channel's overflow) are counted in ``dropped``;
* a sink that can write each output once keeps what it needs in checkpoints (``checkpoint_state``).

A minimal source::

    class Countdown(Source):
        def open(self, position):  self.n = position or 0
        def read_batch(self, max_records, timeout):
            out = [{"n": self.n + i} for i in range(min(max_records, 3))]
            self.n += len(out)
            return out
        def position(self):        return self.n
        def close(self):           self.status = CLOSED
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

CONNECTED = "connected"
RECONNECTING = "reconnecting"
CLOSED = "closed"
STATUSES = (CONNECTED, RECONNECTING, CLOSED)

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")  # "${NAME}"

T = TypeVar("T")


@dataclass(frozen=True)
class ParsedUri:
    """A URI split into the pieces adapters care about.

    >>> u = parse_uri("mem://queue/prices?max_size=10")
    >>> (u.scheme, u.parts, u.params)
    ('mem', ('queue', 'prices'), {'max_size': '10'})
    >>> parse_uri("file:///tmp/out.jsonl").body
    '/tmp/out.jsonl'
    >>> parse_uri("metronome").parts
    ()
    """

    raw: str
    scheme: str
    body: str = ""  # everything between "://" and "?", percent-decoded
    parts: tuple[str, ...] = ()  # body split on "/", empty pieces dropped
    params: dict[str, str] = field(default_factory=dict)  # query string, last value wins

    def part(self, index: int, default: str = "") -> str:
        """The ``index``-th path part, or ``default`` when there are fewer parts."""
        return self.parts[index] if index < len(self.parts) else default


def parse_uri(uri: str) -> ParsedUri:
    """Split ``uri`` into scheme, body, path parts and query parameters.

    A bare scheme (``"metronome"``) is accepted; anything else needs ``scheme://``.
    Raises ValueError for a malformed URI.

    >>> parse_uri("kafka://topic/trades?group=g1").params
    {'group': 'g1'}
    >>> parse_uri("custom://pkg.mod.Reader").parts
    ('pkg.mod.Reader',)
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("empty URI")
    if uri != uri.strip():
        raise ValueError(f"URI {uri!r} has leading or trailing spaces")
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
    else:
        scheme, _, query = uri.partition("?")
        if not _SCHEME_RE.match(scheme):
            raise ValueError(f"malformed URI {uri!r} (expected scheme://...)")
        return ParsedUri(raw=uri, scheme=scheme.lower(), params=dict(parse_qsl(query, True)))
    if not _SCHEME_RE.match(scheme):
        raise ValueError(f"malformed URI {uri!r}: bad scheme {scheme!r}")
    body, _, query = rest.partition("?")
    body = unquote(body.partition("#")[0])
    try:
        params = dict(parse_qsl(query.partition("#")[0], keep_blank_values=True, strict_parsing=False))
    except ValueError as exc:  # pragma: no cover - parse_qsl is lenient
        raise ValueError(f"malformed query in URI {uri!r}: {exc}") from exc
    parts = tuple(p for p in body.split("/") if p)
    return ParsedUri(raw=uri, scheme=scheme.lower(), body=body, parts=parts, params=params)


def setting(
    config: Mapping[str, Any],
    uri: ParsedUri,
    key: str,
    default: T,
    convert: Callable[[Any], T] | None = None,
) -> T:
    """A setting taken from ``config`` first, else the URI query, else ``default``.

    ``convert`` (e.g. ``float``) is applied to a found value; a bad value raises
    ValueError naming the key.

    >>> setting({}, parse_uri("metronome://?interval=0.5"), "interval", 1.0, float)
    0.5
    """
    if key in config and config[key] is not None:
        value: Any = config[key]
    elif key in uri.params:
        value = uri.params[key]
    else:
        return default
    if convert is None:
        return value
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value for {key!r} in {uri.raw!r}: {value!r}") from exc


DEFAULT_PUBLISH_TIMEOUT = 30.0  # seconds a sink call may take before its publisher counts as failed


def publish_limit(config: Mapping[str, Any]) -> float:
    """How long a sink keeps retrying a batch: the publisher's ``publish_timeout`` (its watchdog's limit)."""
    return float(config.get("publish_timeout") or DEFAULT_PUBLISH_TIMEOUT)


def default_group(config: Mapping[str, Any], name: str) -> str:
    """The consumer group (or client id) a shared source takes unless told: ``dagserver.DAG.SUBSCRIBER`` in a
    DAG (the runtime's ``_dag``/``_subscriber``), else ``dagserver.NAME``."""
    dag, subscriber = config.get("_dag"), config.get("_subscriber")
    return f"dagserver.{dag}.{subscriber}" if dag and subscriber else f"dagserver.{name}"


def positive_setting(config: Mapping[str, Any], parsed: ParsedUri, key: str, default: int | None) -> int | None:
    """An integer :func:`setting` that must be positive when given."""
    value = setting(config, parsed, key, default, int)
    if value is not None and value <= 0:
        raise ValueError(f"{key!r} must be a positive integer, not {value!r}")
    return value


def from_environment(value: Any, where: str) -> Any:
    """``value``, or the environment variable it names when it reads ``"${NAME}"`` (SPEC §6: passwords
    may be given so). An unset NAME is a ValueError starting with ``where`` (say, ``"redis 'password'"``).

    >>> os.environ["DOC_SECRET"] = "s3cret"; from_environment("${DOC_SECRET}", "password")
    's3cret'
    >>> from_environment("plain", "password")
    'plain'
    """
    found = _ENV_REFERENCE.match(value) if isinstance(value, str) else None
    if found is None:
        return value
    name = found.group(1)
    if name not in os.environ:
        raise ValueError(f"{where} names the environment variable {name}, which is not set "
                         "(set it in the server's environment)")
    return os.environ[name]


@dataclass(frozen=True)
class RejectedRecord:
    """Input a source could not parse (say, a file line that is not JSON).

    Sources return it in place of a record; the runtime counts and dead-letters it.
    Items that parse but are not maps are returned as they are; the runtime rejects them.
    """

    raw: Any
    reason: str


def never_shared(uri: ParsedUri) -> bool:
    return False


def always_shared(uri: ParsedUri) -> bool:
    return True


SOURCE, DESTINATION = "source", "destination"
# the DAG settings an Adapter's check_config is given, defaults applied: "section.key" -> value
DAG_SETTINGS = ("checkpoint.every_epochs", "epochs.max_records", "epochs.max_inflight")


@dataclass(frozen=True)
class ConfigProblem:
    """What is wrong with one key of an endpoint's config, and what to do about it."""

    key: str
    message: str
    suggestion: str | None = None

BOTH_ROLES = (SOURCE, DESTINATION)


@dataclass(frozen=True)
class Adapter:
    """What an adapter module declares about its scheme (SPEC §6: each adapter owns its rules).

    ``check_uri`` returns one line saying what is wrong with a URI of this scheme, or None.
    ``source_keys`` / ``sink_keys`` are the config keys a subscriber / publisher of this
    scheme accepts besides the URI itself (None: any key, e.g. for user classes).
    ``source`` / ``sink`` are None while the adapter has no implementation for that role.
    ``shareable`` says whether replicas of one DAG may read a URI together, each record going to one
    of them (a queue, a consumer group); ``extra`` names the ``pip install 'dagserver[EXTRA]'`` extra
    holding its client library; ``check_role`` refuses a URI in one role (a sink-only URI read).
    Usage: ``ADAPTER = Adapter("countdown", check_countdown_uri, source=Countdown, roles=(SOURCE,))``.
    """

    scheme: str
    check_uri: Callable[[ParsedUri], str | None]
    source: type[Source] | None = None
    sink: type[Sink] | None = None
    roles: tuple[str, ...] = BOTH_ROLES
    source_keys: tuple[str, ...] | None = ()
    sink_keys: tuple[str, ...] | None = ()
    shareable: Callable[[ParsedUri], bool] = never_shared
    extra: str = ""  # the ``pip install 'dagserver[EXTRA]'`` extra holding its client library
    # a URI's problem in one role (SOURCE or DESTINATION), beyond its shape: e.g. a sink-only URI read
    check_role: Callable[[ParsedUri, str], str | None] | None = None
    # problems of an endpoint's config that depend on its DAG (``dagserver check``): called with the URI, the
    # endpoint's config, the role and the DAG's effective settings (:data:`DAG_SETTINGS` keys); returns one
    # :class:`ConfigProblem` per problem (e.g. an ActiveMQ prefetch too small for the checkpoint interval)
    check_config: Callable[[ParsedUri, Mapping[str, Any], str, Mapping[str, int]], list[ConfigProblem]] | None = None
    # what a destination holds, read back without consuming it (dead letters, SPEC §13): called with the URI and
    # a limit, returns at most that many ``(id, record)`` pairs, oldest first; ``id`` names the record's place
    # (a line number, an entry id) and stays the same while the record is there. None: cannot be read back
    read_back: Callable[[ParsedUri, int], list[tuple[str, Any]]] | None = None


def positive_param(u: ParsedUri, key: str) -> str | None:
    """A problem with the query parameter ``key`` unless it is absent or a positive number."""
    if key not in u.params:
        return None
    try:
        ok = float(u.params[key]) > 0
    except ValueError:
        ok = False
    return None if ok else f"{key!r} in {u.raw!r} must be a positive number, got {u.params[key]!r}"


def kind_and_name(u: ParsedUri, kinds: tuple[str, ...]) -> str | None:
    """A problem unless the URI is ``scheme://KIND/NAME`` with KIND one of ``kinds``."""
    shapes = " or ".join(f"{u.scheme}://{k}/NAME" for k in kinds)
    if len(u.parts) != 2 or u.parts[0] not in kinds:
        return f"{u.scheme} URI {u.raw!r} must look like {shapes}"
    return None


class Source(ABC):
    """Where records come from. Subclasses set ``status`` as their connection changes.

    ``read_batch`` waits at most ``timeout`` seconds for the first item and then returns
    what is immediately available, never more than ``max_records``; ``[]`` if nothing came.

    To write: ``open``, ``read_batch``, ``position``, ``close``; ``commit`` when the system must be
    told what is done (an ack, a group offset), ``backlog`` when it can tell, ``keep_alive`` when it
    drops a reader that goes quiet. Whether replicas may share it is the :class:`Adapter`'s ``shareable``.
    All calls come from one thread, so a source needs no lock of its own for them.
    """

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.uri = uri
        self.config: dict[str, Any] = dict(config or {})
        self.parsed = parse_uri(uri)
        self.status: str = CLOSED
        self.dropped = 0  # records lost by the source's nature (an at-most-once channel's overflow), counted
        self.commit_errors = 0  # commits/acks that failed and will be retried (dagserver_commit_errors_total)

    @abstractmethod
    def open(self, position: Any | None) -> None:
        """Connect; resume just after ``position`` (None: from the start or the committed point)."""

    @abstractmethod
    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        """Up to ``max_records`` items (records or :class:`RejectedRecord`), ``[]`` on timeout."""

    @abstractmethod
    def position(self) -> Any:
        """A msgpack-encodable position just after the last item ``read_batch`` returned."""

    def backlog(self) -> int | None:
        """Records known to be waiting at the source, or None when the source cannot tell."""
        return None

    def commit(self, position: Any) -> None:  # noqa: B027 - optional hook
        """Everything up to ``position`` is done and must not be redelivered.

        A commit the external system refuses (a broker that is away, a failed ACK) must not raise:
        the source adds one to ``commit_errors`` and tries again at its next commit, which covers
        everything up to the newer position."""

    def keep_alive(self) -> None:  # noqa: B027 - optional hook
        """Called instead of ``read_batch`` while the DAG is too busy to take more (backpressure):
        a source whose broker expects to hear from it (a consumer group) keeps its membership."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect and release resources; ``status`` becomes ``closed``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri} {self.status}>"


class Sink(ABC):
    """Where records go. ``write_batch`` raises on failure; ``flush`` makes writes durable.

    To write: ``open``, ``write_batch``, ``close``; ``flush`` when writes need a further step to
    be durable or visible (an fsync, a transaction's commit). Retry an outage inside
    ``write_batch`` (``status`` :data:`RECONNECTING` meanwhile) for at most
    :func:`publish_limit` seconds, then raise: the DAG restarts from its checkpoint and replays.

    A minimal sink, refusing the records it can never write::

        class Keep(Sink):
            def open(self):            self.kept, self.status = [], CONNECTED
            def write_batch(self, records):
                self.kept += [r for r in records if "id" in r]
                return [RejectedRecord(r, "no 'id'") for r in records if "id" not in r]
            def close(self):           self.status = CLOSED
    """

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.uri = uri
        self.config: dict[str, Any] = dict(config or {})
        self.parsed = parse_uri(uri)
        self.status: str = CLOSED

    @abstractmethod
    def open(self) -> None:
        """Connect; ``status`` becomes ``connected``."""

    @abstractmethod
    def write_batch(self, records: list[dict]) -> list[RejectedRecord] | None:
        """Write all ``records`` in order, or raise.

        A record this sink can never write (say, one without the attribute its key comes
        from) is not a failure of the sink: it is left out and returned as a
        :class:`RejectedRecord` (``raw`` = the record), which the runtime counts as a publish
        error and dead-letters. Return None (or ``[]``) when everything was written.
        """

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything written so far durable / visible (no-op by default)."""

    def checkpoint_state(self) -> Any:  # noqa: B027 - optional hook (None: nothing to keep)
        """What a checkpoint keeps of this sink (a file's length: SPEC §12), asked after a checkpoint's flush."""

    def resume_from(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Before ``open``, on a restart from a checkpoint: what ``checkpoint_state`` gave for it."""

    @abstractmethod
    def close(self) -> None:
        """Flush what is pending and disconnect; ``status`` becomes ``closed``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri} {self.status}>"
