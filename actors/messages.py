"""Messages between actors: msgpack bytes, one encode per hop per epoch.

Every message is a msgpack array whose first element is its kind::

    [INGEST, subscriber, count, position, records]   subscriber -> coordinator
    [EPOCH, epoch, flags, runs, "coordinator"]       coordinator -> root node
    [EPOCH, epoch, flags, [seqs, outputs], node]     node -> child node
    [PUBLISH, epoch, flags, [seqs, outputs], node]   node -> publisher
    [ACK, epoch, sender]                             publisher or terminal node -> coordinator
    [STATE, epoch, node, state]                      node -> coordinator, on checkpoint epochs
    [TICK, node, record | None]                      ticker -> coordinator (a MetronomeNode fires)
    [COMMIT, position]                               coordinator -> subscriber

``records`` is the msgpack encoding of the batch's record list, made once by the
subscriber; the coordinator never decodes it, it hands it on inside a run
``[first_seq, RUN_RECORDS, records]`` (or ``[seq, RUN_TICK, tick_record]``) and the root
node decodes it. Changes travel as two parallel lists, sequence numbers and outputs.

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
RUN_RECORDS = 0
RUN_TICK = 1



def encode(message: list[Any]) -> bytes:
    """msgpack-encode one message (raises TypeError/ValueError for unencodable values)."""
    return msgpack.packb(message, use_bin_type=True)


def decode(data: bytes) -> list[Any]:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
