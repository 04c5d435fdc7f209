"""The bundled Kafka example, written the seed's way, checks and runs against a real broker (SPEC §6).

``examples/dags/kafka/orders.json`` uses the seed's keys: ``bootstrap_servers`` as a list,
``group_id`` and ``max_depth`` on the Kafka subscriber, a Kafka publisher, and a ``file://``
publisher with ``publish_interval`` and ``batch_size``. ``dagserver check`` accepts it as it
is; pointed at the test broker (and fresh topic names), it prices order lines end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.runtime import DagRuntime
from adapters import registry
from graphs.loader import load_dag_dict
from supervision.check import run_check
from tests.adapters.kafka.test_kafka import Reader, unique, write
from tests.support.waiting import wait_until

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "dags" / "kafka" / "orders.json"


def test_the_seed_style_example_checks_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check([str(EXAMPLE)]) == 0, capsys.readouterr().err


def test_the_seed_style_example_runs_against_the_broker(kafka_broker, runtimes, tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE.read_text())
    orders, priced, archive = unique("orders"), unique("priced"), tmp_path / "priced.jsonl"
    kafka_broker.create_topic(orders, 2)
    kafka_broker.create_topic(priced, 2)
    source = doc["subscribers"][0]["config"]
    source.update(source=f"kafka://topic/{orders}", bootstrap_servers=[kafka_broker.bootstrap],
                  group_id=unique("pricing"), consumer_config={"session_timeout_ms": 3000,
                                                                "heartbeat_interval_ms": 500})
    doc["publishers"][0]["config"].update(destination=f"kafka://topic/{priced}",
                                          bootstrap_servers=kafka_broker.bootstrap)
    doc["publishers"][1]["config"]["destination"] = f"file://{archive}"
    runtime = DagRuntime(load_dag_dict(doc, uris=registry))
    runtimes.append(runtime)
    runtime.start()
    lines = [{"id": i, "customer": f"c{i % 5}", "price": float(i + 1), "qty": None if i % 3 else 2, "note": "x"}
             for i in range(100)]
    write(kafka_broker.bootstrap, orders, lines, key_attribute="customer")
    reader = Reader(kafka_broker.bootstrap, priced)
    try:
        assert reader.until(lambda values: len(values) >= 100, timeout=60), len(reader.values)
        expected = {(line["customer"], line["price"] * (line["qty"] or 1)) for line in lines}
        assert {(v["customer"], v["value"]) for v in reader.values} == expected
        assert wait_until(lambda: archive.exists() and archive.read_text().count("\n") >= 100, timeout=30)
    finally:
        reader.close()
