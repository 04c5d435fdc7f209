"""URI scheme -> the adapter module that declares it; and the questions asked of adapters by scheme.

Each adapter module declares an :class:`~adapters.base.Adapter` named ``ADAPTER`` (its URI
rules, config keys, shareability and classes). This module only maps schemes to those
modules, importing one when its scheme is first used, so importing the registry pulls in
no adapter and no broker client. Adding a scheme is one new module and one line below.

The module-level functions answer validation's questions (:func:`check_uri`,
:func:`config_keys`, :func:`is_shareable`: the module itself is the ``uris`` rules
:mod:`graphs.validation` takes) and build sources and sinks for the runtime.

Usage::

    from adapters import registry

    registry.check_uri("memm://queue/x", "source")   # "unknown URI scheme 'memm' (did you mean 'mem'?)"
    registry.is_shareable("mem://queue/jobs")         # True: replicas compete for its records
    sink = registry.open_sink("file:///tmp/out.jsonl", {})
    sink.open()

A third-party adapter registers itself::

    registry.register(Adapter("myq", check_uri=lambda u: None, source=MyQueueSource))
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any

from adapters.base import DESTINATION, SOURCE, Adapter, ConfigProblem, ParsedUri, Sink, Source, parse_uri
from graphs.dotted import DottedPathError
from graphs.suggest import did_you_mean

MODULES: dict[str, str] = {
    "mem": "adapters.builtin.mem",
    "file": "adapters.builtin.file",
    "metronome": "adapters.builtin.metronome",
    "custom": "adapters.builtin.custom",
    "kafka": "adapters.kafka",
    "activemq": "adapters.activemq",
    "redis": "adapters.redis",
    "redischannel": "adapters.redis.redischannel",
    "sql": "adapters.sql",
    "aerospike": "adapters.aerospike",
}
# what every subscriber config may hold, besides its adapter's keys: the seed's max_depth is accepted on
# every subscriber (SPEC §6); an adapter that uses it lists it too, the others ignore it; schema: SPEC §14
SUBSCRIBER_KEYS = ("source", "max_depth", "schema")
PUBLISHER_KEYS = ("destination", "publish_timeout")  # publish_timeout: SPEC §4, actors/incarnation.py
ROLES = {"source": SOURCE, "destination": DESTINATION, "sink": DESTINATION}

_lock = threading.Lock()
_adapters: dict[str, Adapter] = {}


class AdapterNotAvailable(NotImplementedError):
    """No adapter can be loaded for a scheme (not written yet, or a client library is missing)."""


def register(adapter: Adapter) -> None:
    """Make ``adapter.scheme`` URIs use ``adapter`` (replaces an earlier registration)."""
    with _lock:
        _adapters[adapter.scheme.lower()] = adapter


def register_source(scheme: str, cls: type[Source]) -> None:
    """Register ``cls`` as the source of a third-party ``scheme`` (any URI shape, any config key)."""
    _register_class(scheme, source=cls)


def register_sink(scheme: str, cls: type[Sink]) -> None:
    """Register ``cls`` as the sink of a third-party ``scheme`` (any URI shape, any config key)."""
    _register_class(scheme, sink=cls)


def _register_class(scheme: str, **classes: Any) -> None:
    known = _adapters.get(scheme.lower())
    source = classes.get("source", known.source if known else None)
    sink = classes.get("sink", known.sink if known else None)
    roles = tuple(role for role, cls in ((SOURCE, source), (DESTINATION, sink)) if cls is not None)
    shareable = bool(getattr(source, "shareable", False))
    register(Adapter(scheme.lower(), check_uri=lambda u: None, source=source, sink=sink, roles=roles,
                     source_keys=None, sink_keys=None, shareable=lambda u: shareable))


def adapter_for(scheme: str) -> Adapter:
    """The adapter declared for ``scheme``; ValueError naming close schemes when there is none."""
    scheme = scheme.lower()
    with _lock:
        found = _adapters.get(scheme)
    if found is not None:
        return found
    module = MODULES.get(scheme)
    if module is None:
        raise ValueError(_unknown_scheme(scheme))
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise AdapterNotAvailable(f"no adapter for URI scheme {scheme!r} is available") from exc
        raise AdapterNotAvailable(f"URI scheme {scheme!r} needs the Python package {exc.name!r}, "
                                  "which is not installed") from exc
    declared: Adapter = loaded.ADAPTER
    with _lock:
        return _adapters.setdefault(scheme, declared)


def _unknown_scheme(scheme: str) -> str:
    known = sorted(set(MODULES) | set(_adapters))
    close = did_you_mean(scheme, known)
    hint = f" (did you mean {close!r}?)" if close else f" (known: {', '.join(known)})"
    return f"unknown URI scheme {scheme!r}{hint}"


# -- what validation asks ----------------------------------------------------------------------
def check_uri(uri: str, role: str) -> str | None:
    """One line describing what is wrong with ``uri`` used as ``role``, or None if it looks fine.

    ``role`` is ``"source"`` or ``"destination"``. The check is structural and cheap: it
    imports no client library or user code, so a custom class that cannot be imported is
    only reported when the DAG starts.

    >>> check_uri("memm://queue/x", "source")
    "unknown URI scheme 'memm' (did you mean 'mem'?)"
    >>> check_uri("metronome", "source") is None
    True
    """
    if role not in ROLES:
        raise ValueError(f"role must be 'source' or 'destination', not {role!r}")
    if not isinstance(uri, str):
        return f"URI must be a string, got {type(uri).__name__}"
    try:
        parsed = parse_uri(uri)
        adapter = adapter_for(parsed.scheme)
    except (ValueError, AdapterNotAvailable) as exc:
        return str(exc)
    if ROLES[role] not in adapter.roles:
        if adapter.roles == (SOURCE,):
            return f"URI scheme {parsed.scheme!r} can only be a source, not a {role}"
        return f"URI scheme {parsed.scheme!r} cannot be used as a {role}"
    problem = adapter.check_uri(parsed)
    if problem is None and adapter.check_role is not None:
        problem = adapter.check_role(parsed, ROLES[role])
    return problem


def config_keys(uri: str, role: str) -> tuple[str, ...] | None:
    """The config keys an endpoint reading (``source``) or writing ``uri`` accepts; None: any."""
    adapter = adapter_for(parse_uri(uri).scheme)
    if ROLES[role] == SOURCE:
        return None if adapter.source_keys is None else tuple(dict.fromkeys((*SUBSCRIBER_KEYS, *adapter.source_keys)))
    return None if adapter.sink_keys is None else (*PUBLISHER_KEYS, *adapter.sink_keys)


def check_config(uri: str, config: Mapping[str, Any], role: str,
                 dag_settings: Mapping[str, int]) -> list[ConfigProblem]:
    """What is wrong with an endpoint's ``config`` in its DAG (``dag_settings``: see ``adapters.base.DAG_SETTINGS``),
    beyond its keys: the adapter's own ``check_config``; [] when it has none or the URI is not valid."""
    try:
        parsed = parse_uri(uri)
        adapter = adapter_for(parsed.scheme)
    except (ValueError, AdapterNotAvailable):
        return []
    if adapter.check_config is None:
        return []
    return adapter.check_config(parsed, config, ROLES[role], dag_settings)


def is_shareable(uri: str) -> bool:
    """True if replicas of one DAG may read ``uri`` together (each record goes to one of them).

    >>> is_shareable("mem://queue/jobs"), is_shareable("mem://topic/news")
    (True, False)
    """
    try:
        parsed = parse_uri(uri)
        return bool(adapter_for(parsed.scheme).shareable(parsed))
    except (ValueError, AdapterNotAvailable, DottedPathError):
        return False


# -- what the runtime asks ---------------------------------------------------------------------
def source_class(uri: str) -> type[Source]:
    """The class that :func:`open_source` would build for ``uri``."""
    return _class_for(parse_uri(uri), SOURCE)


def sink_class(uri: str) -> type[Sink]:
    """The class that :func:`open_sink` would build for ``uri``."""
    return _class_for(parse_uri(uri), DESTINATION)


def _class_for(parsed: ParsedUri, role: str) -> Any:
    adapter = adapter_for(parsed.scheme)
    if role not in adapter.roles:
        raise ValueError(check_uri(parsed.raw, role))
    cls = adapter.source if role == SOURCE else adapter.sink
    if cls is None:
        extra = f" (pip install 'dagserver[{adapter.extra}]' once it is)" if adapter.extra else ""
        raise AdapterNotAvailable(f"no {'source' if role == SOURCE else 'sink'} adapter for URI scheme "
                                  f"{parsed.scheme!r} is available yet{extra}")
    return cls


def open_source(uri: str, config: Mapping[str, Any] | None = None) -> Source:
    """Construct (not open) the source for ``uri``. The caller calls ``open(position)``."""
    return source_class(uri)(uri, dict(config or {}))


def open_sink(uri: str, config: Mapping[str, Any] | None = None) -> Sink:
    """Construct (not open) the sink for ``uri``. The caller calls ``open()``."""
    return sink_class(uri)(uri, dict(config or {}))


def read_back(uri: str, limit: int) -> list[tuple[str, Any]]:
    """At most ``limit`` ``(id, record)`` pairs of what the destination ``uri`` holds, oldest first, without
    consuming them (how a DAG's dead letters are listed, SPEC §13); ValueError when its scheme cannot say.

    >>> read_back("mem://queue/nothing-here", 10)
    []
    """
    parsed = parse_uri(uri)
    adapter = adapter_for(parsed.scheme)
    if adapter.read_back is None:
        raise ValueError(f"what {parsed.scheme}:// destinations hold cannot be read back; use file://, mem://queue/, "
                         "redis://list/, redis://stream/ or kafka:// for dead letters that can be listed and redriven")
    return adapter.read_back(parsed, limit)
