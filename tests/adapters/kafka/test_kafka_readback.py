"""Dead letters kept in a Kafka topic are read back without a consumer group and redriven (SPEC §13)."""

from __future__ import annotations

import uuid

from actors.redrive import list_dead_letters, redrive
from actors.runtime import DagRuntime
from adapters.builtin.mem import mem_put
from adapters.registry import read_back
from tests.actors.test_redrive import deep_error_dag
from tests.support.waiting import wait_until


def test_dead_letters_in_kafka_are_read_back_and_redriven(kafka_broker) -> None:
    topic = f"dead-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 2)
    where = f"kafka://topic/{topic}?bootstrap_servers={kafka_broker.bootstrap}"
    runtime = DagRuntime(deep_error_dag("kafka_dead", where))
    runtime.start()
    try:
        mem_put("kafka_dead_in", [{"id": 1, "boom": True}, {"id": 2}, {"id": 3, "boom": True}])
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 2, timeout=30)
        found = list_dead_letters(runtime)
        assert sorted(d["record"]["id"] for d in found) == [1, 3]
        assert all(d["subscriber"] == "in" and ":" in d["id"] for d in found)
        assert len(read_back(where, 1)) == 1  # the limit holds
        chosen = next(d["id"] for d in found if d["record"]["id"] == 1)
        assert redrive(runtime, ids=[chosen])["redriven"] == 1
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 3, timeout=30)
    finally:
        runtime.stop(timeout=10)
