"""Record schemas and Avro on kafka:// against a real broker (SPEC §14): a JSON Schema rejecting at ingress,
and an Avro round trip equal to the JSON one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from actors.runtime import DagRuntime
from adapters.base import parse_uri
from adapters.formats import decode_record, endpoint_format
from tests.adapters.kafka.test_kafka import Reader, first_seen, kafka_dag, priced, unique, write, write_raw
from tests.support.waiting import wait_until

PRICE_SCHEMA = {"type": "object", "required": ["price", "qty"],
                "properties": {"price": {"type": "number"}, "qty": {"type": "integer"}}}


def test_a_schemad_subscriber_rejects_and_dead_letters_the_invalid_one_percent(kafka_broker, runtimes) -> None:
    bootstrap = kafka_broker.bootstrap
    source, target, letters = unique("sch-in"), unique("sch-out"), unique("sch-dl")
    for topic in (source, target, letters):
        kafka_broker.create_topic(topic, 1)
    inputs: list[dict[str, Any]] = priced(10_000)
    for i in range(0, 10_000, 100):  # every hundredth record: a price that is not a number
        inputs[i] = {**inputs[i], "price": f"p{i}"}
    write(bootstrap, source, inputs)
    dag = kafka_dag(unique("schemad"), bootstrap, source,
                    {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap},
                    dead_letter=f"kafka://topic/{letters}?bootstrap_servers={bootstrap}",
                    subscriber_extra={"schema": PRICE_SCHEMA})
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    out, dead = Reader(bootstrap, target), Reader(bootstrap, letters)
    try:
        assert out.until(lambda values: len(first_seen(values)) >= 9_900), len(out.values)
        assert wait_until(lambda: runtime.details()["subscribers"]["in"]["rejected"] == 100, timeout=30)
        assert runtime.stop(timeout=15)  # the last checkpoint writes the dead letters out
        assert dead.until(lambda values: len(values) >= 100)
        assert len(first_seen(out.values)) == 9_900
        assert len(dead.values) == 100
        for letter in dead.values:
            assert letter["subscriber"] == "in"
            assert "$.price: 'p" in letter["error"] and "is not of type 'number'" in letter["error"], letter
        assert runtime.details()["subscribers"]["in"]["records"] == 9_900
    finally:
        out.close()
        dead.close()


def avro_files(tmp_path: Path) -> tuple[str, str]:
    """Schema files for the priced inputs and the computed outputs."""
    inputs = {"type": "record", "name": "Priced", "fields": [
        {"name": "id", "type": "long"}, {"name": "price", "type": "double"}, {"name": "qty", "type": "long"}]}
    outputs = {"type": "record", "name": "Valued", "fields": [{"name": "value", "type": "double"}]}
    (tmp_path / "in.avsc").write_text(json.dumps(inputs))
    (tmp_path / "out.avsc").write_text(json.dumps(outputs))
    return str(tmp_path / "in.avsc"), str(tmp_path / "out.avsc")


def run_through(kafka_broker, runtimes, inputs: list[dict[str, Any]], fmt: dict[str, Any], out_fmt: dict[str, Any],
                garbage: list[bytes]) -> tuple[list[Any], int]:
    """Records written in ``fmt``, a DAG reading and publishing them, the outputs decoded, and its rejects."""
    bootstrap = kafka_broker.bootstrap
    source, target = unique("fmt-in"), unique("fmt-out")
    kafka_broker.create_topic(source, 1)
    kafka_broker.create_topic(target, 1)
    write(bootstrap, source, inputs, **fmt)
    write_raw(bootstrap, source, garbage)
    dag = kafka_dag(unique("fmt"), bootstrap, source,
                    {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap, **out_fmt},
                    subscriber_extra=fmt)
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    fmt_out = endpoint_format(out_fmt, parse_uri(f"kafka://topic/{target}"), "kafka")
    consumer = KafkaConsumer(target, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    values: list[Any] = []

    def read() -> bool:
        for messages in consumer.poll(timeout_ms=100, max_records=10_000).values():
            values.extend(decode_record(m.value, fmt_out) for m in messages)
        return len(values) >= len(inputs)

    try:
        assert wait_until(read, timeout=60, interval=0), len(values)
        assert wait_until(lambda: runtime.details()["subscribers"]["in"]["rejected"] == len(garbage), timeout=30)
        assert runtime.stop(timeout=15)
        return values, runtime.details()["subscribers"]["in"]["rejected"]
    finally:
        consumer.close()


def test_avro_round_trip_kafka_dag_kafka_equals_the_json_run(kafka_broker, runtimes, tmp_path: Path) -> None:
    in_schema, out_schema = avro_files(tmp_path)
    inputs = priced(2_000)
    json_out, json_rejected = run_through(kafka_broker, runtimes, inputs, {}, {}, [])
    avro_out, avro_rejected = run_through(
        kafka_broker, runtimes, inputs, {"format": "avro", "avro_schema": in_schema},
        {"format": "avro", "avro_schema": out_schema}, [b"\xff\x01not avro at all"])
    assert json_rejected == 0 and avro_rejected == 1  # the message that does not decode: rejected, not a crash
    assert len(json_out) == len(inputs)
    assert avro_out == json_out
