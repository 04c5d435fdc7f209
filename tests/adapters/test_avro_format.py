"""``format: "avro"`` encoding (SPEC §14): one schemaless Avro record per message; bad bytes are rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.base import RejectedRecord, parse_uri
from adapters.formats import decode_record, encode_record, endpoint_format


@pytest.fixture
def avro(tmp_path: Path) -> str:
    path = tmp_path / "priced.avsc"
    path.write_text(json.dumps({"type": "record", "name": "Priced", "fields": [
        {"name": "price", "type": "double"}, {"name": "label", "type": ["null", "string"], "default": None}]}))
    return endpoint_format({"format": "avro", "avro_schema": str(path)}, parse_uri("kafka://topic/t"), "kafka")


def test_a_record_round_trips_and_is_smaller_than_json(avro: str) -> None:
    record = {"price": 12.5, "label": "x"}
    data = encode_record(record, avro)
    assert decode_record(data, avro) == record
    assert len(data) < len(encode_record(record, "json"))


def test_bytes_that_are_not_a_record_of_the_schema_are_rejected(avro: str) -> None:
    for bad in (b"", b"\x01", encode_record({"price": 1.0}, "json")):
        rejected = decode_record(bad, avro)
        assert isinstance(rejected, RejectedRecord) and rejected.reason.startswith("not avro"), rejected


def test_a_record_the_schema_cannot_hold_is_an_encoding_error(avro: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode_record({"price": "abc"}, avro)


def test_avro_needs_a_schema_file() -> None:
    with pytest.raises(ValueError, match='needs "avro_schema"'):
        endpoint_format({"format": "avro"}, parse_uri("redis://stream/s"), "redis")
