"""Messages between actors: msgpack bytes, one encode per hop per epoch.

Every message is a msgpack array whose first element is its kind::

    [EPOCH, epoch, flags, items]        coordinator -> root node, node -> child node
    [PUBLISH, epoch, flags, node, items] node -> publisher (items: [[seq, record], ...])
    [ACK, epoch, sender]                publisher or terminal node -> coordinator
    [STATE, epoch, node, state]         node -> coordinator, on checkpoint epochs
    [INGEST, subscriber, records, position]  subscriber -> coordinator
    [TICK, node]                        ticker -> coordinator (a MetronomeNode fires)

Decoding gives every receiver its own copy of the records, so no actor can change
what another actor holds; nothing else needs to copy them.
"""

from __future__ import annotations

from typing import Any

import msgpack

EPOCH = 0
PUBLISH = 1
ACK = 2
STATE = 3
INGEST = 4
TICK = 5
POLL = 6
COMMIT = 7

FLAG_CHECKPOINT = 1



def encode(message: list[Any]) -> bytes:
    """msgpack-encode one message (raises TypeError/ValueError for unencodable values)."""
    return msgpack.packb(message, use_bin_type=True)


def decode(data: bytes) -> list[Any]:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
