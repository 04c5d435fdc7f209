"""Record schemas and Avro on kafka:// against a real broker (SPEC §14): a JSON Schema rejecting at ingress,
and an Avro round trip equal to the JSON one."""

from __future__ import annotations

from typing import Any

from actors.runtime import DagRuntime
from tests.adapters.kafka.test_kafka import Reader, first_seen, kafka_dag, priced, unique, write
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
