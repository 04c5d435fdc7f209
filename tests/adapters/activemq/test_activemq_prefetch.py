"""An ActiveMQ subscriber's ``prefetch`` must hold what the DAG reads before a checkpoint lets it acknowledge
(SPEC §6): ``dagserver check`` refuses a smaller one and names the minimum, ``(checkpoint.every_epochs - 1) *
epochs.max_records + 1``; a DAG at exactly that minimum reads a whole backlog from the real broker.

Why that number: messages are acknowledged (ack mode client-individual) only when the checkpoint covering
their epoch was written, and a checkpoint is taken every ``every_epochs`` epochs of at most ``max_records``
records each. After the last acknowledged checkpoint the DAG must cut ``every_epochs`` more epochs to reach
the next one: the first ``every_epochs - 1`` may each take ``max_records`` messages, the checkpoint epoch
needs at least one more. With fewer in the window the broker sends nothing, no epoch is cut, no checkpoint
comes: reading stalls for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import DagRuntime
from adapters import registry
from graphs.loader import load_dag_dict
from tests.support.activemq_broker import ActiveMQBroker, Collector, require_activemq
from tests.support.dag_check import base, check_doc, line_at


def queue_dag(name: str, source: dict[str, Any], destination: dict[str, Any], **settings: Any) -> dict[str, Any]:
    doc = base()
    doc["name"] = name
    doc["subscribers"] = [{"name": "prices", "config": source}]
    doc["publishers"][0]["config"] = destination
    doc.update(settings)
    return doc


def checked(tmp_path: Path, **settings: Any) -> tuple[int, str, str, str]:
    source = {"source": "activemq://queue/prices", **settings.pop("source", {})}
    return check_doc(tmp_path, queue_dag("prices", source, {"destination": "mem://topic/out"}, **settings))


def test_check_refuses_a_prefetch_below_the_checkpoint_span_and_names_the_minimum(tmp_path: Path) -> None:
    code, _, err, file = checked(tmp_path, source={"prefetch": 2000}, checkpoint={"every_epochs": 5},
                                 epochs={"max_records": 500})
    assert code == 2
    line = line_at(err, file, "subscribers[0].config.prefetch")
    assert "2001" in line and "2000" in line  # the minimum, (5 - 1) * 500 + 1, and the value refused
    assert "checkpoint.every_epochs" in line and "epochs.max_records" in line  # where the minimum comes from


def test_check_accepts_the_minimum_and_applies_the_defaults(tmp_path: Path) -> None:
    code, _, err, _ = checked(tmp_path, source={"prefetch": 2001}, checkpoint={"every_epochs": 5},
                                epochs={"max_records": 500})
    assert code == 0, err
    # the default prefetch (20000) against the default settings (10 epochs of 1000): 9001 needed
    code, _, err, _ = checked(tmp_path)
    assert code == 0, err
    code, _, err, file = checked(tmp_path, checkpoint={"every_epochs": 30})  # 29001 needed: the default is short
    assert code == 2 and "29001" in line_at(err, file, "subscribers[0].config.prefetch")
    code, _, err, file = checked(tmp_path, source={"prefetch": "many"})
    assert code == 2 and "positive integer" in line_at(err, file, "subscribers[0].config.prefetch")


@pytest.fixture(scope="module")
def activemq_broker() -> Iterator[ActiveMQBroker]:
    require_activemq()
    with ActiveMQBroker() as broker:
        yield broker


def test_a_dag_at_the_minimum_prefetch_reads_a_whole_backlog(activemq_broker: ActiveMQBroker,
                                                             runtimes: list[DagRuntime]) -> None:
    queue, target = f"minimum-{uuid.uuid4().hex[:8]}", f"minimum-out-{uuid.uuid4().hex[:8]}"
    every, max_records = 3, 10
    minimum = (every - 1) * max_records + 1
    source = {"source": f"activemq://queue/{queue}", **activemq_broker.config(prefetch=minimum)}
    destination = {"destination": f"activemq://queue/{target}", **activemq_broker.config()}
    doc = {"name": queue, "checkpoint": {"every_epochs": every}, "epochs": {"max_records": max_records},
           "subscribers": [{"name": "in", "config": source}], "publishers": [{"name": "out", "config": destination}],
           "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                     {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
           "edges": [{"from_node": "ingest", "to_node": "publish"}]}
    out = Collector(activemq_broker, f"/queue/{target}")
    try:
        runtime = DagRuntime(load_dag_dict(doc, uris=registry))
        runtimes.append(runtime)
        runtime.start()
        sink = registry.open_sink(f"activemq://queue/{queue}", activemq_broker.config())
        sink.open()
        try:
            assert not sink.write_batch([{"n": i} for i in range(500)])
        finally:
            sink.close()
        assert out.until(lambda got: len(got) >= 500), len(out.snapshot())
        assert sorted(r["n"] for r in out.snapshot()) == list(range(500))
    finally:
        out.close()
