"""URI scheme -> adapter class, plus cheap URI checks used by DAG validation.

Built-in adapter modules are imported only when their scheme is first opened, so
importing this module never pulls in a broker client.

Usage::

    from adapters.registry import check_uri, is_shareable, open_sink, open_source

    check_uri("memm://queue/x", "source")   # "unknown URI scheme 'memm' (did you mean 'mem'?)"
    is_shareable("mem://queue/jobs")         # True: replicas compete for its records
    sink = open_sink("file:///tmp/out.jsonl", {})
    sink.open()

A third-party adapter registers itself::

    register_source("myq", MyQueueSource)
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import ParsedUri, Sink, Source, parse_uri

KNOWN_SCHEMES: frozenset[str] = frozenset(
    {"mem", "file", "metronome", "kafka", "activemq", "redis", "sql", "aerospike", "custom"}
)

# Where each built-in scheme's adapter lives; imported on first use.
_BUILTIN_MODULES = {scheme: f"adapters.{scheme}" for scheme in KNOWN_SCHEMES}
_SOURCE_ONLY = frozenset({"metronome"})
_ROLES = {"source": "source", "destination": "sink", "sink": "sink"}

_lock = threading.RLock()
_sources: dict[str, type[Source]] = {}
_sinks: dict[str, type[Sink]] = {}


class AdapterNotAvailable(NotImplementedError):
    """No adapter can be loaded for a scheme (not written yet, or a client library is missing)."""


def register_source(scheme: str, cls: type[Source]) -> None:
    """Make ``scheme://`` URIs open ``cls`` as a source (replaces an earlier registration)."""
    with _lock:
        _sources[scheme.lower()] = cls


def register_sink(scheme: str, cls: type[Sink]) -> None:
    """Make ``scheme://`` URIs open ``cls`` as a sink (replaces an earlier registration)."""
    with _lock:
        _sinks[scheme.lower()] = cls


def _load_builtin(scheme: str) -> None:
    module = _BUILTIN_MODULES.get(scheme)
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise AdapterNotAvailable(f"no adapter for URI scheme {scheme!r} is available yet") from exc
        raise AdapterNotAvailable(
            f"URI scheme {scheme!r} needs the Python package {exc.name!r}, which is not installed"
        ) from exc


def _lookup(table: Mapping[str, type[Any]], scheme: str, role: str) -> type[Any]:
    with _lock:
        if scheme not in table:
            _load_builtin(scheme)
        cls = table.get(scheme)
    if cls is not None:
        return cls
    if scheme not in KNOWN_SCHEMES:
        raise ValueError(_unknown_scheme(scheme))
    if scheme in _SOURCE_ONLY and role == "sink":
        raise ValueError(f"URI scheme {scheme!r} can only be a source")
    raise AdapterNotAvailable(f"no {role} adapter for URI scheme {scheme!r} is available yet")


def source_class(uri: str) -> type[Source]:
    """The class that :func:`open_source` would build for ``uri``."""
    return _lookup(_sources, parse_uri(uri).scheme, "source")


def sink_class(uri: str) -> type[Sink]:
    """The class that :func:`open_sink` would build for ``uri``."""
    return _lookup(_sinks, parse_uri(uri).scheme, "sink")


def open_source(uri: str, config: Mapping[str, Any] | None = None) -> Source:
    """Construct (not open) the source for ``uri``. The caller calls ``open(position)``."""
    return source_class(uri)(uri, dict(config or {}))


def open_sink(uri: str, config: Mapping[str, Any] | None = None) -> Sink:
    """Construct (not open) the sink for ``uri``. The caller calls ``open()``."""
    return sink_class(uri)(uri, dict(config or {}))


# --- validation -------------------------------------------------------------------------


def _unknown_scheme(scheme: str) -> str:
    known = sorted(KNOWN_SCHEMES | set(_sources) | set(_sinks))
    close = difflib.get_close_matches(scheme.lower(), known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return f"unknown URI scheme {scheme!r}{hint}"


def _kind_name(u: ParsedUri, kinds: tuple[str, ...]) -> str | None:
    shapes = " or ".join(f"{u.scheme}://{k}/NAME" for k in kinds)
    if len(u.parts) != 2 or u.parts[0] not in kinds:
        return f"{u.scheme} URI {u.raw!r} must look like {shapes}"
    return None


def _positive(u: ParsedUri, key: str) -> str | None:
    if key not in u.params:
        return None
    try:
        ok = float(u.params[key]) > 0
    except ValueError:
        ok = False
    return None if ok else f"{key!r} in {u.raw!r} must be a positive number, got {u.params[key]!r}"


_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def _check_mem(u: ParsedUri) -> str | None:
    return _kind_name(u, ("queue", "topic")) or _positive(u, "max_size")


def _check_file(u: ParsedUri) -> str | None:
    return None if u.body.strip("/") else f"file URI {u.raw!r} has no path (use file:///abs/path.jsonl)"


def _check_metronome(u: ParsedUri) -> str | None:
    if u.body:
        return f"metronome URI {u.raw!r} takes no path (use metronome://?interval=SECONDS)"
    return _positive(u, "interval")


def _check_custom(u: ParsedUri) -> str | None:
    target = u.body.replace(":", ".")
    if not _DOTTED.match(target):
        return f"custom URI {u.raw!r} must name a class as custom://package.module.Class"
    return None


def _check_named(what: str) -> Callable[[ParsedUri], str | None]:
    def check(u: ParsedUri) -> str | None:
        return None if u.parts else f"{u.scheme} URI {u.raw!r} must name {what}"

    return check


def _check_aerospike(u: ParsedUri) -> str | None:
    if len(u.parts) != 2:
        return f"aerospike URI {u.raw!r} must look like aerospike://NAMESPACE/SET"
    return None


_CHECKS: dict[str, Callable[[ParsedUri], str | None]] = {
    "mem": _check_mem,
    "file": _check_file,
    "metronome": _check_metronome,
    "custom": _check_custom,
    "kafka": lambda u: _kind_name(u, ("topic",)),
    "activemq": lambda u: _kind_name(u, ("queue", "topic")),
    "redis": _check_named("a list, channel or stream"),
    "sql": _check_named("a connection label (sql://LABEL)"),
    "aerospike": _check_aerospike,
}


def check_uri(uri: str, role: str) -> str | None:
    """One line describing what is wrong with ``uri`` used as ``role``, or None if it looks fine.

    ``role`` is ``"source"`` or ``"destination"``. The check is structural and cheap: it
    imports no adapter or user code, so a custom class that cannot be imported is only
    reported when the DAG starts.

    >>> check_uri("memm://queue/x", "source")
    "unknown URI scheme 'memm' (did you mean 'mem'?)"
    >>> check_uri("metronome", "source") is None
    True
    """
    if role not in _ROLES:
        raise ValueError(f"role must be 'source' or 'destination', not {role!r}")
    if not isinstance(uri, str):
        return f"URI must be a string, got {type(uri).__name__}"
    try:
        u = parse_uri(uri)
    except ValueError as exc:
        return str(exc)
    scheme = u.scheme
    registered = _sources if _ROLES[role] == "source" else _sinks
    if scheme not in KNOWN_SCHEMES:
        if scheme in registered:
            return None
        if scheme in _sources or scheme in _sinks:
            return f"URI scheme {scheme!r} cannot be used as a {role}"
        return _unknown_scheme(scheme)
    if scheme in _SOURCE_ONLY and role != "source":
        return f"URI scheme {scheme!r} can only be a source, not a {role}"
    return _CHECKS[scheme](u)


# --- sharing between replicas ------------------------------------------------------------

_STATIC_SHAREABLE: dict[str, Callable[[ParsedUri], bool]] = {
    "mem": lambda u: u.part(0) == "queue",
    "file": lambda u: False,
    "metronome": lambda u: False,
    "kafka": lambda u: True,
    "activemq": lambda u: u.part(0) == "queue",
    "redis": lambda u: "group" in u.params or u.part(0) in ("list", "stream"),
    "sql": lambda u: False,
    "aerospike": lambda u: False,
}


def is_shareable(uri: str) -> bool:
    """True if replicas of one DAG may read ``uri`` together (each record goes to one of them).

    Built-in schemes are answered without importing their adapters; ``custom://`` looks at
    the user class's ``shareable`` attribute; a registered third-party scheme asks its class.

    >>> is_shareable("mem://queue/jobs"), is_shareable("mem://topic/news")
    (True, False)
    """
    try:
        u = parse_uri(uri)
    except ValueError:
        return False
    rule = _STATIC_SHAREABLE.get(u.scheme)
    if rule is not None:
        return rule(u)
    try:
        cls = _lookup(_sources, u.scheme, "source")
    except (ValueError, NotImplementedError):
        return False
    try:
        return bool(cls.shareable_for(u))
    except Exception:  # a user class that cannot be imported is simply not shareable
        return False
