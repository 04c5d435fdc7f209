"""Redis (SPEC §6) through redis-py, imported only when an endpoint opens: four kinds of URI.

* ``redis://list/NAME`` — a reliable queue (:mod:`adapters.redis.lists`): items move atomically
  to a per-consumer processing list, leave it on commit, are replayed from it after a crash;
  a gone consumer's list is adopted by the checkpoint naming it or reclaimed once the consumer
  is dead (:mod:`adapters.redis.liveness`). Sink: ``RPUSH``. Shareable.
* ``redis://stream/NAME`` — a consumer group (:mod:`adapters.redis.streams`), ``XACK`` on commit,
  pending entries read first after a restart, a dead consumer's claimed (never a live one's).
  Sink: ``XADD``. Shareable.
* ``redis://channel/NAME`` (and ``redischannel://NAME``, :mod:`adapters.redis.redischannel`) — pub/sub
  (:mod:`adapters.redis.channels`), at-most-once, overflow counted. Sink: ``PUBLISH``. Not shareable.
* ``redis://key`` (and the seed's bare ``redis://``) — sink only: ``SET`` each record under its
  ``key_attribute``.

A ``HOST[:PORT]`` part may come first (``redis://cache:6380/list/jobs``); config ``host`` /
``port`` win over it. Connection loss: status ``reconnecting``, retries with a backoff capped
at 10 s; a sink gives up after ``publish_timeout``. Keys and guarantees: docs/ADAPTERS.md.

Usage::

    from adapters.registry import open_sink, open_source

    src = open_source("redis://stream/events", {"group": "billing"})   # a StreamSource
    src.open(None); batch = src.read_batch(500, timeout=0.05); src.commit(src.position())
    sink = open_sink("redis://key", {"key_attribute": "id"})           # a KeySink
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import DESTINATION, SOURCE, Adapter, ParsedUri, Sink, Source, parse_uri
from adapters.redis.channels import ChannelSink, ChannelSource
from adapters.redis.link import target_of
from adapters.redis.lists import KeySink, ListSink, ListSource
from adapters.redis.readback import read_back_redis
from adapters.redis.streams import StreamSink, StreamSource

KEYS = ("host", "port", "db", "password", "username", "format", "avro_schema", "socket_timeout")
SOURCE_KEYS = (*KEYS, "field", "group", "claim_idle_ms", "consumer", "max_buffer", "max_depth")
SINK_KEYS = (*KEYS, "field", "maxlen", "key_attribute")
SOURCES: dict[str, type[Source]] = {"list": ListSource, "stream": StreamSource, "channel": ChannelSource}
SINKS: dict[str, type[Sink]] = {"list": ListSink, "stream": StreamSink, "channel": ChannelSink, "key": KeySink}


def check_redis_uri(parsed: ParsedUri) -> str | None:
    """What is wrong with a ``redis://`` URI's shape, or None."""
    try:
        target_of(parsed)
    except ValueError as exc:
        return str(exc)
    return None


def check_redis_role(parsed: ParsedUri, role: str) -> str | None:
    """What is wrong with using the URI as ``role`` (``source`` / ``destination``): keys are written only."""
    problem = check_redis_uri(parsed)
    if problem is None and role == SOURCE and target_of(parsed).kind == "key":
        return (f"{parsed.raw!r} is a key sink (SET per record) and cannot be a source; "
                "read redis://list/NAME, redis://stream/NAME or redis://channel/NAME")
    return problem


def is_redis_shareable(parsed: ParsedUri) -> bool:
    """Lists and streams spread their items over competing replicas; a channel gives each all of them."""
    try:
        return target_of(parsed).kind in ("list", "stream")
    except ValueError:
        return False


class RedisSource(Source):
    """Any ``redis://`` source: constructing one builds the source of the URI's kind (a :class:`ListSource`,
    :class:`StreamSource` or :class:`ChannelSource`); ValueError for ``redis://key``."""

    def __new__(cls, uri: str, config: Mapping[str, Any]) -> Any:
        parsed = parse_uri(uri)
        problem = check_redis_role(parsed, SOURCE)
        if problem:
            raise ValueError(problem)
        return SOURCES[target_of(parsed).kind](uri, config)


class RedisSink(Sink):
    """Any ``redis://`` sink: constructing one builds the sink of the URI's kind (:class:`ListSink`,
    :class:`StreamSink`, :class:`ChannelSink` or :class:`KeySink`)."""

    def __new__(cls, uri: str, config: Mapping[str, Any]) -> Any:
        parsed = parse_uri(uri)
        problem = check_redis_role(parsed, DESTINATION)
        if problem:
            raise ValueError(problem)
        return SINKS[target_of(parsed).kind](uri, config)


# Adapter.check_role (a URI's problem in one role) is what refuses redis://key as a source at validation;
# an Adapter without that field still refuses it when the DAG starts (RedisSource above).
_ROLE_CHECK = {"check_role": check_redis_role} if "check_role" in getattr(Adapter, "__dataclass_fields__", {}) else {}

ADAPTER = Adapter("redis", check_redis_uri, source=RedisSource, sink=RedisSink,
                  source_keys=SOURCE_KEYS, sink_keys=SINK_KEYS, shareable=is_redis_shareable, extra="redis",
                  read_back=read_back_redis, **_ROLE_CHECK)
