"""Messages between a DAG's actors: one named type per kind, msgpack bytes on the wire.

Every message an actor tells another is one of the types below, encoded once per hop
(``encode``) as a msgpack array whose first element is its kind, and decoded by the
receiver (``decode``) back into its type::

    Ingest(subscriber, count, position, records, counted)  subscriber -> coordinator
    Epoch(epoch, flags, changes, sender)             coordinator -> root node, node -> child node
    Publish(epoch, flags, changes, sender)           node -> publisher
    Ack(epoch, sender, sink_state)                   publisher or terminal node -> coordinator
    State(epoch, node, state, counted)               node -> coordinator, on checkpoint epochs
    Tick(node, record)                               ticker -> coordinator (a MetronomeNode fires)
    Poll()                                           subscriber -> itself (read again)
    Commit(position)                                 coordinator -> subscriber

``Ingest.records`` is the msgpack encoding of the batch's record list, made once by the
subscriber; the coordinator never decodes it, it hands it on inside a root's run
``[first_seq, RUN_RECORDS, records]`` (or ``[seq, RUN_TICK, tick_record]``) and the root
node decodes it. A node's ``changes`` are two parallel lists, sequence numbers and outputs.
Decoding gives every receiver its own copy of the records, so no actor can change what
another actor holds; nothing else needs to copy them.

Control requests sent with ``ask`` inside the process (pause, resume, drain, ready), and the
checkpoint saver's ``saved`` told to its coordinator, are :class:`Control` values, never encoded.

Usage::

    data = encode(Ack(7, "publisher:out"))
    message = decode(data)           # Ack(epoch=7, sender='publisher:out')
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

import msgpack

FLAG_CHECKPOINT = 1
FLAG_DROPPED = 2  # on a node's Epoch: outputs of this epoch were dropped (msgpack could not carry them)
RUN_RECORDS = 0
RUN_TICK = 1


class Ingest(NamedTuple):
    subscriber: str
    count: int
    position: Any
    records: bytes
    counted: Any = None  # the subscriber's counts, this batch included (actors/counting.py)


class Epoch(NamedTuple):
    epoch: int
    flags: int
    changes: Any  # roots: a list of runs; other nodes: [seqs, outputs]
    sender: str


class Publish(NamedTuple):
    epoch: int
    flags: int
    changes: Any  # [seqs, outputs]
    sender: str


class Ack(NamedTuple):
    epoch: int
    sender: str
    sink_state: Any = None  # a publisher's, on checkpoint epochs: its sink's checkpoint_state() (SPEC §12)


class State(NamedTuple):
    epoch: int
    node: str
    state: dict[str, Any]
    counted: Any = None  # the node's counts at the end of the epoch (actors/counting.py)


class Tick(NamedTuple):
    node: str
    record: dict[str, Any] | None  # None: the coordinator makes the tick record


class Poll(NamedTuple):
    pass


class Commit(NamedTuple):
    position: Any


class Control(StrEnum):
    """Requests asked of (or told to) an actor within the process (not encoded)."""

    PAUSE = "pause"  # a subscriber stops reading; answered once no read is running
    RESUME = "resume"
    DRAIN = "drain"  # the coordinator cuts what is pending and reports when all completed
    READY = "ready"  # answered once the actor opened what it needs
    SAVED = "saved"  # told to the coordinator by its checkpoint saver after each checkpoint written
    IDLE = "idle"  # told to the coordinator by its idle timer: epochs waited checkpoint.idle_seconds


Message = Ingest | Epoch | Publish | Ack | State | Tick | Poll | Commit
KINDS: tuple[type, ...] = (Epoch, Publish, Ack, State, Ingest, Tick, Poll, Commit)  # position = kind on the wire
_KIND_OF: dict[type, int] = {cls: kind for kind, cls in enumerate(KINDS)}


def encode(message: Message) -> bytes:
    """msgpack-encode one message (raises TypeError/ValueError for unencodable values)."""
    return msgpack.packb([_KIND_OF[type(message)], *message], use_bin_type=True)


def decode(data: bytes) -> Message:
    kind, *fields = _unpack(data)
    return KINDS[kind]._make(fields)  # type: ignore[no-any-return]


def encode_records(records: list[Any]) -> bytes:
    """A batch of records as it travels inside :class:`Ingest` (raises for unencodable values)."""
    return msgpack.packb(records, use_bin_type=True)


def decode_records(data: bytes) -> list[Any]:
    return _unpack(data)  # type: ignore[no-any-return]


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except TypeError:  # a map key that was a tuple arrives as a list: make it a tuple again
        return msgpack.unpackb(data, raw=False, strict_map_key=False, object_pairs_hook=_hashable_keys)


def _hashable_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    return {_hashable(key): value for key, value in pairs}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def encodable(value: Any) -> bool:
    """Whether msgpack can carry ``value`` (a node output about to be sent on)."""
    try:
        msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return False
    return True
