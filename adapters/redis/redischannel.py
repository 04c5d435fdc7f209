"""The seed's ``redischannel://NAME``: Redis pub/sub, the same as ``redis://channel/NAME`` (SPEC §6).

At-most-once: see :mod:`adapters.redis.channels` (a bounded buffer whose overflow is counted
in the source's ``dropped``). Keys: those of ``redis://`` endpoints that concern a channel.

Usage::

    from adapters.registry import open_source

    src = open_source("redischannel://ticks", {"host": "cache", "max_buffer": 1000})   # a ChannelSource
"""

from __future__ import annotations

from adapters.base import Adapter, ParsedUri, never_shared
from adapters.redis.channels import ChannelSink, ChannelSource
from adapters.redis.link import target_of

KEYS = ("host", "port", "db", "password", "username", "format", "avro_schema", "socket_timeout")


def check_redischannel_uri(parsed: ParsedUri) -> str | None:
    """What is wrong with a ``redischannel://`` URI's shape, or None."""
    try:
        target_of(parsed)
    except ValueError as exc:
        return str(exc)
    return None


ADAPTER = Adapter("redischannel", check_redischannel_uri, source=ChannelSource, sink=ChannelSink,
                  source_keys=(*KEYS, "max_buffer", "max_depth"), sink_keys=KEYS,
                  shareable=never_shared,  # each replica would receive every message
                  extra="redis")
