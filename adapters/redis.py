"""Redis: ``redis://list/NAME``, ``redis://stream/NAME``, ``redis://channel/NAME``, ``redis://key`` (SPEC §6).

The URI rules, config keys and sharing this adapter owns. The source and sink (redis-py,
``pip install 'dagserver[redis]'``) are not written yet: a DAG naming this scheme
validates, and fails to start with a message saying so.
"""

from __future__ import annotations

from adapters.base import Adapter, ParsedUri

KEYS = ("host", "port", "db", "password", "format")


def check_redis_uri(parsed: ParsedUri) -> str | None:
    return None if parsed.parts else f"redis URI {parsed.raw!r} must name a list, channel or stream"


ADAPTER = Adapter("redis", check_redis_uri, source_keys=(*KEYS, "field", "group", "claim_idle_ms"),
                  sink_keys=(*KEYS, "field", "maxlen", "key_attribute"),
                  shareable=lambda u: "group" in u.params or u.part(0) in ("list", "stream"),
                  extra="redis")
