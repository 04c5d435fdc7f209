"""What a ``redis://list/NAME`` or ``redis://stream/NAME`` destination holds, read without consuming it.

This is how a DAG's dead letters kept in Redis are listed (SPEC §13): ``LRANGE`` for a list
(ids: positions from the head), ``XRANGE`` for a stream (ids: the entry ids). Channels keep
nothing and keys are not ordered, so neither can be read back. The connection settings are
the URI's own (a DAG's ``dead_letter`` is a bare URI).

Usage::

    read_back_redis(parse_uri("redis://list/dead"), 100)     # [("0", {...}), ("1", {...})]
"""

from __future__ import annotations

from typing import Any

from adapters.base import ParsedUri, RejectedRecord, setting
from adapters.formats import decode_record
from adapters.redis.link import endpoint_settings, load_redis, target_of
from adapters.redis.streams import DEFAULT_FIELD


def _letter(value: bytes | None, fmt: str) -> Any:
    record = decode_record(value, fmt)
    return {"line": str(record.raw), "error": record.reason} if isinstance(record, RejectedRecord) else record


def read_back_redis(parsed: ParsedUri, limit: int) -> list[tuple[str, Any]]:
    """At most ``limit`` ``(id, record)`` pairs of the list or stream, oldest first."""
    target = target_of(parsed)
    if target.kind not in ("list", "stream"):
        raise ValueError(f"{parsed.raw!r} keeps no records in order to read back; use redis://list/NAME or "
                         "redis://stream/NAME for dead letters")
    settings = endpoint_settings({}, parsed, target)
    client = load_redis().Redis(host=settings.host, port=settings.port, db=settings.db, password=settings.password,
                                username=settings.username, socket_timeout=settings.socket_timeout,
                                socket_connect_timeout=settings.socket_timeout)
    try:
        if limit <= 0:
            return []
        if target.kind == "list":
            items = client.lrange(target.name, 0, limit - 1)
            return [(str(i), _letter(value, settings.format)) for i, value in enumerate(items)]
        field = str(setting({}, parsed, "field", DEFAULT_FIELD)).encode("utf-8")
        return [(entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
                 _letter(fields.get(field), settings.format))
                for entry_id, fields in client.xrange(target.name, "-", "+", count=limit)]
    finally:
        client.close()
