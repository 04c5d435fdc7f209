"""kafka:// when things go wrong, against a real broker (tansu): a checkpoint that must win over
``start``, a record the broker refuses, a broker down at ``open()``, ``${VAR}`` in the client
configs, commits that fail, and a consumer dropped from its group while held back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from actors.restart import RestartPolicy
from actors.runtime import RUNNING, DagRuntime
from adapters.base import RejectedRecord
from adapters.builtin.mem import get_queue
from adapters.kafka import KafkaSink, KafkaSource
from adapters.registry import open_sink, open_source
from tests.adapters.kafka.test_kafka import GROUP, Reader, first_seen, kafka_dag, priced, unique, write
from tests.support.waiting import wait_until

# a longer session: a member outlives a short outage (the test cuts the connection, not the membership);
# joining takes about half of it on this broker
PATIENT = {**GROUP, "session_timeout_ms": 10_000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 20_000}


def keyed(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "key": f"k{i % 8}"} for i in ids]


def read_into(source: KafkaSource, got: list[Any], n: int = 1000) -> list[Any]:
    got.extend(source.read_batch(n, 0.05))
    return got


def placed(source: KafkaSource, partitions: int) -> bool:
    """Whether ``source`` owns ``partitions`` partitions and knows where each one is read from."""
    consumer = source._consumer
    if consumer is None:
        return False
    owned = consumer.assignment()
    return len(owned) == partitions and all(consumer.position(tp, timeout_ms=2000) is not None for tp in owned)


def simulate_kill(source: KafkaSource) -> None:
    """The process dies: nothing is committed on the way out (the group just loses the member)."""
    consumer, source._consumer = source._consumer, None
    source._stop_lag.set()
    consumer.close(autocommit=False, timeout_ms=2000)


# -- 1. a checkpointed position wins over start: latest ------------------------------------------
def test_a_checkpointed_position_wins_over_start_latest_also_after_a_rebalance(kafka_broker) -> None:
    bootstrap, topic, group = kafka_broker.bootstrap, unique("latest"), unique("g")
    kafka_broker.create_topic(topic, 2)
    config = {"bootstrap_servers": bootstrap, "group_id": group, "start": "latest", "consumer_config": GROUP}
    first = KafkaSource(f"kafka://topic/{topic}", config)
    first.open(None)
    read: list[dict] = []
    try:
        assert wait_until(lambda: read_into(first, read, 1) is not None and placed(first, 2), timeout=30)
        write(bootstrap, topic, keyed(range(0, 300)), key_attribute="key")
        assert wait_until(lambda: len(read_into(first, read, 20)) >= 100, timeout=30)
        checkpointed = first.position()  # what the DAG's checkpoint holds; no offset was committed yet
    finally:
        simulate_kill(first)
    assert kafka_broker.committed(group) == {}
    write(bootstrap, topic, keyed(range(300, 400)), key_attribute="key")
    again, joining = KafkaSource(f"kafka://topic/{topic}", config), KafkaSource(f"kafka://topic/{topic}", config)
    again.open(checkpointed)  # restarted from the checkpoint; the group has no offsets, start is latest
    taken: list[dict] = []
    try:
        assert wait_until(lambda: len(read_into(again, taken, 10)) >= 20, timeout=30), len(taken)
        joining.open(None)  # a rebalance: some partitions move to a member that knows no checkpoint
        assert wait_until(lambda: len({r["id"] for r in read_into(again, taken, 50) + read_into(joining, taken, 50)}
                                      | {r["id"] for r in read}) >= 400, timeout=60), len(taken)
    finally:
        joining.close()
        again.close()
    assert {r["id"] for r in read} | {r["id"] for r in taken} == set(range(400))  # nothing skipped
    done = {r["id"] for r in read}
    assert not done & {r["id"] for r in taken[:20]}  # the restart began where the checkpoint was


# -- 7. one record the broker refuses ---------------------------------------------------------------
def test_a_record_too_large_is_refused_alone_and_the_rest_is_delivered_once(kafka_broker) -> None:
    bootstrap, topic = kafka_broker.bootstrap, unique("large")
    kafka_broker.create_topic(topic, 1)
    sink = KafkaSink(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap,
                                                "producer_config": {"max_request_size": 10_000}})
    sink.open()
    reader = Reader(bootstrap, topic)
    huge = {"id": 1, "blob": "x" * 50_000}
    try:
        refused = sink.write_batch([{"id": 0}, huge, {"id": 2}])
        assert refused and len(refused) == 1 and isinstance(refused[0], RejectedRecord)
        assert refused[0].raw == huge and "too large" in refused[0].reason.lower()
        assert sink.write_batch([{"id": 3}]) in (None, [])
        assert reader.until(lambda values: len(values) >= 3)
        assert reader.values == [{"id": 0}, {"id": 2}, {"id": 3}]
        assert sink.status == "connected"
    finally:
        reader.close()
        sink.close()


def test_a_dag_publishing_a_record_too_large_dead_letters_it_and_goes_on(kafka_broker, runtimes) -> None:
    bootstrap, source, target = kafka_broker.bootstrap, unique("large-in"), unique("large-out")
    kafka_broker.create_topic(source, 1)
    kafka_broker.create_topic(target, 1)
    records = [{"id": i, "blob": "x" * (50_000 if i == 5 else 10)} for i in range(10)]
    write(bootstrap, source, records)
    publisher = {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap,
                 "producer_config": {"max_request_size": 10_000}}
    letters = unique("letters")
    dag = kafka_dag(unique("large"), bootstrap, source, publisher, dead_letter=f"mem://queue/{letters}",
                    calculator={"name": "copy", "type": "NullCalculator"})
    runtime = DagRuntime(dag, restart=RestartPolicy(max_restarts=0))
    runtimes.append(runtime)
    runtime.start()
    reader = Reader(bootstrap, target)
    try:
        assert reader.until(lambda values: len(values) >= 9)
        assert [v["id"] for v in reader.values] == [i for i in range(10) if i != 5]  # each once, in order
        assert wait_until(lambda: runtime.details()["publishers"]["out"]["errors"] == 1, timeout=10), \
            runtime.details()["publishers"]["out"]
        assert runtime.state == RUNNING
        assert runtime.stop(timeout=15)  # its last checkpoint writes the dead letters out
        dead = get_queue(letters).get(10, 1.0)
        assert len(dead) == 1 and dead[0]["publisher"] == "out" and "too large" in dead[0]["error"]
    finally:
        reader.close()


# -- 8. the broker is down when the endpoints open -----------------------------------------------
QUICK_BOOTSTRAP = {"bootstrap_timeout_ms": 1000}  # each attempt to reach a broker gives up after 1 s


def test_a_source_opened_while_the_broker_is_down_reconnects_and_reads_everything(kafka_outage) -> None:
    bootstrap, topic = kafka_outage.bootstrap, unique("late")
    kafka_outage.broker.create_topic(topic, 1)
    write(bootstrap, topic, priced(500))
    kafka_outage.proxy.cut()
    source = KafkaSource(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, "group_id": unique("g"),
                                                    "consumer_config": {**GROUP, **QUICK_BOOTSTRAP}})
    started = time.monotonic()
    source.open(None)  # raised before: an outage at open() failed the subscriber
    got: list[Any] = []
    try:
        assert source.status == "reconnecting" and time.monotonic() - started < 15
        assert source.read_batch(10, 0.05) == [] and source.position() == {}
        assert wait_until(lambda: source._opener.failures >= 3, timeout=30)  # tried again and again meanwhile
        assert source.status == "reconnecting"
        kafka_outage.proxy.restore()
        assert wait_until(lambda: len(read_into(source, got)) >= 500, timeout=60), len(got)
        assert got == priced(500)
        assert wait_until(lambda: read_into(source, got) is not None and source.status == "connected", timeout=30)
    finally:
        source.close()
    assert source.status == "closed"


def test_a_sink_opened_while_the_broker_is_down_delivers_once_it_is_back(kafka_outage) -> None:
    bootstrap, topic = kafka_outage.bootstrap, unique("late-out")
    kafka_outage.broker.create_topic(topic, 1)
    kafka_outage.proxy.cut()
    sink = KafkaSink(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, "publish_timeout": 60,
                                                "producer_config": QUICK_BOOTSTRAP})
    sink.open()
    try:
        assert sink.status == "reconnecting"
        assert wait_until(lambda: sink._opener.failures >= 3, timeout=30)
        kafka_outage.proxy.restore()
        assert sink.write_batch(priced(100)) in (None, [])
        assert sink.status == "connected"
    finally:
        sink.close()
    reader = Reader(bootstrap, topic)
    try:
        assert reader.until(lambda values: len(values) >= 100)
        assert reader.values == priced(100)
    finally:
        reader.close()


def test_a_dag_started_during_an_outage_runs_and_delivers_when_the_broker_returns(kafka_outage, runtimes) -> None:
    bootstrap, source, target = kafka_outage.bootstrap, unique("down-in"), unique("down-out")
    kafka_outage.broker.create_topic(source, 1)
    kafka_outage.broker.create_topic(target, 1)
    write(bootstrap, source, priced(1000))
    kafka_outage.proxy.cut()
    publisher = {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap,
                 "producer_config": QUICK_BOOTSTRAP}
    dag = kafka_dag(unique("down"), bootstrap, source, publisher, consumer_config={**GROUP, **QUICK_BOOTSTRAP})
    made: dict[str, Any] = {}

    def remembered(kind: str, opener: Callable[[str, Mapping[str, Any]], Any]) -> Callable[..., Any]:
        def factory(uri: str, config: Mapping[str, Any]) -> Any:
            made[kind] = opener(uri, config)
            return made[kind]
        return factory

    runtime = DagRuntime(dag, restart=RestartPolicy(max_restarts=3, within_seconds=120, base_delay=0.2),
                         source_factory=remembered("source", open_source), sink_factory=remembered("sink", open_sink))
    runtimes.append(runtime)
    runtime.start()
    details = runtime.details
    assert wait_until(lambda: runtime.state == RUNNING, timeout=40), (runtime.state, runtime.reason)
    assert details()["subscribers"]["in"]["status"] == "reconnecting"
    # down for several attempts of both endpoints, as long as a restart would have taken and more
    assert wait_until(lambda: made["source"]._opener.failures >= 3 and made["sink"]._opener.failures >= 3,
                      timeout=60)
    assert runtime.state == RUNNING
    kafka_outage.proxy.restore()
    reader = Reader(bootstrap, target)
    try:
        assert reader.until(lambda values: len(first_seen(values)) >= 1000, timeout=90), len(reader.values)
        assert first_seen(reader.values) == [json.dumps({"value": 2.0 * i}) for i in range(1000)]
        assert wait_until(lambda: details()["subscribers"]["in"]["status"] == "connected", timeout=30)
        assert runtime.state == RUNNING and runtime.stats.actor_restarts == 0  # the budget was not touched
    finally:
        reader.close()


# -- 10. ${VAR} inside consumer_config / producer_config ------------------------------------------
def test_environment_references_in_client_configs_are_resolved(kafka_broker, monkeypatch) -> None:
    monkeypatch.setenv("DAGSERVER_TEST_KAFKA_CLIENT", "from-the-environment")
    bootstrap, topic = kafka_broker.bootstrap, unique("env")
    kafka_broker.create_topic(topic, 1)
    given = {"client_id": "${DAGSERVER_TEST_KAFKA_CLIENT}"}
    source = KafkaSource(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, "group_id": unique("g"),
                                                    "consumer_config": {**GROUP, **given}})
    sink = KafkaSink(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, "producer_config": given})
    source.open(None)
    sink.open()
    try:
        assert source._consumer.config["client_id"] == "from-the-environment"
        assert sink._producer.config["client_id"] == "from-the-environment"
    finally:
        sink.close()
        source.close()
    with pytest.raises(ValueError, match=r"consumer_config.*sasl_plain_password.*DAGSERVER_TEST_KAFKA_UNSET"):
        KafkaSource("kafka://topic/x", {"consumer_config": {"sasl_plain_password": "${DAGSERVER_TEST_KAFKA_UNSET}"}})


# -- 11. a commit that fails is counted and sent again ----------------------------------------------
def test_a_failed_commit_is_counted_and_the_next_commit_sends_it_again(kafka_outage) -> None:
    bootstrap, topic, group = kafka_outage.bootstrap, unique("commit"), unique("g")
    kafka_outage.broker.create_topic(topic, 1)
    write(bootstrap, topic, priced(300))
    config = {"bootstrap_servers": bootstrap, "group_id": group, "consumer_config": PATIENT}
    source = KafkaSource(f"kafka://topic/{topic}", config)
    source.open(None)
    got: list[Any] = []
    try:
        assert wait_until(lambda: len(read_into(source, got, 200)) >= 200, timeout=60)
        position = source.position()
        kafka_outage.proxy.cut()
        source.commit(position)
        assert wait_until(lambda: read_into(source, got, 10) is not None and source.commit_errors >= 1, timeout=30)
        assert source.status == "reconnecting"
        kafka_outage.proxy.restore()
        assert wait_until(lambda: read_into(source, got, 10) is not None and source.status == "connected",
                          timeout=30)
        source.commit(position)  # the next checkpoint's commit carries the offsets that failed
        assert wait_until(lambda: read_into(source, got, 10) is not None and
                          kafka_outage.broker.committed(group) == {0: 200}, timeout=30), \
            kafka_outage.broker.committed(group)
    finally:
        source.close()
    again = KafkaSource(f"kafka://topic/{topic}", config)
    again.open(None)
    rest: list[Any] = []
    try:
        assert wait_until(lambda: len(read_into(again, rest)) >= 100, timeout=60)
        assert rest == priced(100, start=200)  # nothing committed is read again
    finally:
        again.close()


# -- issue 26: a held-back consumer dropped from its group ----------------------------------------
def in_group(source: KafkaSource) -> bool:
    """Whether ``source``'s consumer is a member of its group (kafka-python's public membership snapshot)."""
    return source._consumer.group_metadata().generation_id >= 0


def test_keep_alive_after_the_group_dropped_the_consumer_resumes_only_what_it_owns(kafka_broker) -> None:
    bootstrap, topic, group = kafka_broker.bootstrap, unique("dropped"), unique("g")
    kafka_broker.create_topic(topic, 2)
    write(bootstrap, topic, keyed(range(400)), key_attribute="key")
    short = {**GROUP, "session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "max_poll_interval_ms": 2000}
    held = KafkaSource(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, "group_id": group,
                                                  "consumer_config": short})
    other = KafkaSource(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, "group_id": group,
                                                   "consumer_config": GROUP})
    held.open(None)
    got: list[Any] = []
    try:
        assert wait_until(lambda: len(read_into(held, got, 5)) >= 5, timeout=30)
        # a slow sink holds the DAG back: ``held`` is frozen past its poll interval, the group drops it
        assert wait_until(lambda: not in_group(held), timeout=30)
        for _ in range(5):  # the poll learns the partitions are gone: resuming them raised KeyError
            held._kept_alive = 0.0
            held.keep_alive()
        other.open(None)  # the second member of the group
        assert wait_until(lambda: read_into(held, got, 50) is not None and read_into(other, got, 50) is not None and
                          {r["id"] for r in got} == set(range(400)), timeout=60), len({r["id"] for r in got})
    finally:
        other.close()
        held.close()
