"""``file://`` with ``format: "avro"`` (SPEC §14): an Avro container file appended per batch and read back,
resuming at a record count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from adapters.builtin.avrofile import AvroFileSink, AvroFileSource
from adapters.registry import open_sink, open_source
from tests.support.waiting import wait_until


@pytest.fixture
def avro(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "priced.avsc"
    path.write_text(json.dumps({"type": "record", "name": "Priced", "fields": [
        {"name": "id", "type": "long"}, {"name": "price", "type": "double"}]}))
    return {"format": "avro", "avro_schema": str(path)}


def priced(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "price": i / 2} for i in range(start, start + n)]


def read(source: Any, count: int) -> list[Any]:
    got: list[Any] = []
    assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or len(got) >= count, timeout=10), got
    return got


def test_batches_append_to_one_container_read_back_and_resumed(tmp_path: Path, avro: dict[str, Any]) -> None:
    uri = f"file://{tmp_path}/out.avro"
    sink = open_sink(uri, avro)
    assert isinstance(sink, AvroFileSink)
    sink.open()
    sink.write_batch(priced(150))
    sink.close()
    sink = open_sink(uri, avro)  # a second run appends to the same container
    sink.open()
    sink.write_batch(priced(50, 150))
    sink.flush()
    with open(tmp_path / "out.avro", "rb") as handle:
        assert list(fastavro.reader(handle)) == priced(200)  # one valid container
    source = open_source(uri, avro)
    assert isinstance(source, AvroFileSource)
    source.open(None)
    assert read(source, 120)[:120] == priced(120)
    source.close()
    source.open(120)  # a checkpointed position: the record count
    assert read(source, 80) == priced(80, 120)
    sink.write_batch(priced(10, 200))  # the source follows the growing container
    assert read(source, 10) == priced(10, 200)
    assert source.position() == 210
    source.close()
    sink.close()


def test_a_record_the_schema_cannot_hold_fails_the_batch_and_writes_nothing(tmp_path: Path,
                                                                           avro: dict[str, Any]) -> None:
    sink = open_sink(f"file://{tmp_path}/bad.avro", avro)
    sink.open()
    with pytest.raises(ValueError, match="does not fit the avro_schema"):
        sink.write_batch([*priced(3), {"id": "x", "price": 1.0}])
    sink.close()
    with open(tmp_path / "bad.avro", "rb") as handle:
        assert list(fastavro.reader(handle)) == []


def test_other_formats_are_refused_on_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'format' must be one of json, avro"):
        open_source(f"file://{tmp_path}/x", {"format": "msgpack"})
