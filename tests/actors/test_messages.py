"""The wire format between a DAG's actors (``actors/messages.py``).

Covered: every message type survives ``encode``/``decode`` as the same type with the same
fields, and each kind has its own tag on the wire; record batches survive
``encode_records``/``decode_records`` (nested values, non-string keys, bytes, NaN) and every
decode gives a fresh copy; what cannot be encoded raises on ``encode`` and is refused by
``encodable``; ``Control`` requests are plain strings and never encoded.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest

from actors.messages import (
    FLAG_CHECKPOINT,
    KINDS,
    RUN_RECORDS,
    RUN_TICK,
    Ack,
    Commit,
    Control,
    Epoch,
    Ingest,
    Message,
    Poll,
    Publish,
    State,
    Tick,
    decode,
    decode_records,
    encodable,
    encode,
    encode_records,
)

RECORDS: list[dict[str, Any]] = [{"price": 2.5, "qty": 3}, {"name": "café", "tags": ["a", "b"], "nested": {"x": None}}]
PAYLOAD = encode_records(RECORDS)

MESSAGES: dict[str, Message] = {
    "ingest": Ingest("orders", 2, {"offset": 120, "inode": 7}, PAYLOAD),
    "ingest-no-position": Ingest("clock", 0, None, encode_records([])),
    "epoch-root": Epoch(7, FLAG_CHECKPOINT, [[41, RUN_RECORDS, PAYLOAD], [43, RUN_TICK, {"tick": 1}]], "coordinator"),
    "epoch-empty": Epoch(0, 0, [], "coordinator"),
    "epoch-changes": Epoch(3, 0, [[4, 9], [{"v": 1}, {"v": 2}]], "value"),
    "publish": Publish(3, FLAG_CHECKPOINT, [[4], [{"v": 1}]], "pub"),
    "ack": Ack(7, "publisher:out"),
    "state": State(9, "value", {"input": {"a": 1}, "output": {"b": 2}, "latest": None}),
    "tick": Tick("clock", {"message": "tick", "tick": 3}),
    "tick-no-record": Tick("clock", None),
    "poll": Poll(),
    "commit": Commit({"partition": 0, "offset": 99}),
    "commit-int": Commit(12345),
}


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_every_message_round_trips_as_its_own_type(message: Message) -> None:
    decoded = decode(encode(message))
    assert type(decoded) is type(message)
    assert decoded == message
    assert decoded._fields == message._fields


def test_every_kind_is_covered_and_has_its_own_tag_on_the_wire() -> None:
    assert {type(m) for m in MESSAGES.values()} == set(KINDS)
    tags = {type(m): msgpack.unpackb(encode(m))[0] for m in MESSAGES.values()}
    assert sorted(tags.values()) == list(range(len(KINDS)))
    assert all(KINDS[tag] is cls for cls, tag in tags.items())


def test_a_message_is_a_msgpack_array_of_its_tag_and_fields() -> None:
    assert msgpack.unpackb(encode(Ack(7, "publisher:out"))) == [KINDS.index(Ack), 7, "publisher:out", None]


def test_the_records_inside_an_ingest_stay_encoded_bytes() -> None:
    message = decode(encode(MESSAGES["ingest"]))
    assert isinstance(message, Ingest)
    assert isinstance(message.records, bytes)
    assert decode_records(message.records) == RECORDS


def test_records_round_trip() -> None:
    records: list[Any] = [
        {},
        {"int": -(2**63), "big": 2**64 - 1, "float": 1.5, "bool": True, "none": None},
        {"list": [1, [2, {"deep": "x"}]], "bytes": b"\x00\xff", "unicode": "\u2603"},
        {1: "an int key survives decoding", "s": "and a string key"},
    ]
    assert decode_records(encode_records(records)) == records
    assert decode_records(encode_records([])) == []


def test_tuples_come_back_as_lists() -> None:
    assert decode_records(encode_records([{"t": (1, 2)}])) == [{"t": [1, 2]}]


def test_nan_survives_the_round_trip() -> None:
    (record,) = decode_records(encode_records([{"x": float("nan")}]))
    assert math.isnan(record["x"])


def test_every_decode_is_a_fresh_copy() -> None:
    data = encode_records(RECORDS)
    first, second = decode_records(data), decode_records(data)
    first[1]["tags"].append("changed")
    first[0]["price"] = 0
    assert second == RECORDS
    assert decode_records(data) == RECORDS
    message = encode(Epoch(1, 0, [[0], [{"v": [1]}]], "n"))
    mine = decode(message)
    mine.changes[1][0]["v"].append(2)
    assert decode(message).changes == [[0], [{"v": [1]}]]


@pytest.mark.parametrize("value", [
    {"a": 1}, [], {"nested": [{"x": 1.5}, None, True]}, {"b": b"raw"}, {"n": float("nan")}, {1: 2},
], ids=repr)
def test_encodable_values(value: Any) -> None:
    assert encodable(value)


@pytest.mark.parametrize("value", [
    {"a": {1, 2}}, {"a": object()}, {"too big": 2**64}, {"too small": -(2**63) - 1},
    {"x": complex(1, 2)},
], ids=repr)
def test_unencodable_values(value: Any) -> None:
    assert not encodable(value)
    with pytest.raises((TypeError, ValueError, OverflowError)):
        encode_records([value])
    with pytest.raises((TypeError, ValueError, OverflowError)):
        encode(Epoch(0, 0, [[0], [value]], "n"))


def test_what_encodable_accepts_a_receiver_can_decode() -> None:
    output = {(1, 2): "a calculator's tuple key", ((3, (4,)),): 1}
    assert encodable(output)
    message = decode(encode(Epoch(0, 0, [[0], [output]], "n")))
    assert isinstance(message, Epoch) and message.changes == [[0], [output]]


def test_control_requests_are_plain_strings() -> None:
    assert {c.value for c in Control} == {"pause", "resume", "drain", "ready", "saved", "idle"}
    assert Control.DRAIN == "drain" and Control("ready") is Control.READY
    with pytest.raises(KeyError):
        encode(Control.DRAIN)  # type: ignore[arg-type]  # not a message: asked within the process
