"""``format: "avro"`` on a Redis stream and an ActiveMQ queue (SPEC §14): records written by the sink come back
from the source; a message that is not Avro of the schema is rejected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.activemq import ActiveMQSource
from adapters.base import RejectedRecord
from adapters.redis.streams import StreamSink, StreamSource
from tests.adapters.activemq.test_activemq import drain, priced, unique, write
from tests.adapters.redis.test_redis import read_all
from tests.support.activemq_broker import ActiveMQBroker, require_activemq, send_raw


@pytest.fixture
def avro(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "priced.avsc"
    path.write_text(json.dumps({"type": "record", "name": "Priced", "fields": [
        {"name": "id", "type": "long"}, {"name": "price", "type": "double"}, {"name": "qty", "type": "long"}]}))
    return {"format": "avro", "avro_schema": str(path)}


@pytest.fixture(scope="module")
def activemq_broker() -> Iterator[ActiveMQBroker]:
    require_activemq()
    with ActiveMQBroker() as broker:
        yield broker


def test_avro_round_trips_a_redis_stream(redis_keys, avro: dict[str, Any]) -> None:
    name = redis_keys.name("avro")
    sink = StreamSink(f"redis://stream/{name}", {**redis_keys.config, **avro})
    sink.open()
    try:
        sink.write_batch(priced(50))
    finally:
        sink.close()
    redis_keys.client.xadd(name, {"data": b"\x00\x01junk"})
    identity = {"_dag": "d", "_subscriber": "in", "_server": "srv", "_replica": 0}
    source = StreamSource(f"redis://stream/{name}", {**redis_keys.config, **identity, **avro})
    source.open(None)
    try:
        got = read_all(source, 51)
        assert got[:50] == priced(50)
        assert isinstance(got[50], RejectedRecord) and got[50].reason.startswith("not avro")
    finally:
        source.close()


def test_avro_round_trips_an_activemq_queue(activemq_broker: ActiveMQBroker, avro: dict[str, Any]) -> None:
    queue = unique("avro")
    write(activemq_broker, f"activemq://queue/{queue}", priced(200), **avro)
    send_raw(activemq_broker, f"/queue/{queue}", [b"{not avro"])
    source = ActiveMQSource(f"activemq://queue/{queue}", activemq_broker.config(**avro))
    source.open(None)
    try:
        got = drain(source, 201)
        assert got[:200] == priced(200)
        assert isinstance(got[200], RejectedRecord) and got[200].reason.startswith("not avro")
    finally:
        source.close()
