"""kafka:// against a real broker (tansu): DAG round trips, per-key order, lag, an outage, rejects,
and offsets committed only once a checkpoint covers them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import pytest

from actors.restart import RestartPolicy
from actors.runtime import FAILED, DagRuntime
from adapters.base import RejectedRecord
from adapters.builtin.mem import get_queue
from adapters.kafka import KafkaSink, KafkaSource
from adapters.registry import check_uri, config_keys, is_shareable, open_sink, open_source
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.waiting import wait_until

# small group timeouts: a join takes about half the session timeout
GROUP = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500, "max_poll_interval_ms": 10000,
         "reconnect_backoff_max_ms": 1000}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Reader:
    """Reads a topic from its start, every partition, outside any group; keeps (partition, key, value)."""

    def __init__(self, bootstrap: str, topic: str, fmt: str = "json") -> None:
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                      enable_auto_commit=False)
        self.fmt = fmt
        self.messages: list[tuple[int, bytes | None, Any]] = []

    def poll(self) -> list[Any]:
        for tp, messages in self.consumer.poll(timeout_ms=100, max_records=10_000).items():
            for m in messages:
                value = json.loads(m.value) if self.fmt == "json" else msgpack.unpackb(m.value)
                self.messages.append((tp.partition, m.key, value))
        return self.values

    @property
    def values(self) -> list[Any]:
        return [value for _, _, value in self.messages]

    def until(self, predicate: Callable[[list[Any]], bool], timeout: float = 60) -> bool:
        return wait_until(lambda: predicate(self.poll()), timeout=timeout, interval=0)

    def close(self) -> None:
        self.consumer.close()


def write(bootstrap: str, topic: str, records: list[Any], **config: Any) -> None:
    sink = KafkaSink(f"kafka://topic/{topic}", {"bootstrap_servers": bootstrap, **config})
    sink.open()
    try:
        sink.write_batch(records)
    finally:
        sink.close()


def write_raw(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in values:
            producer.send(topic, value=value, key=b"k")
        producer.flush()
    finally:
        producer.close()


def kafka_dag(name: str, bootstrap: str, source: str, publisher: dict[str, Any], *, group: str | None = None,
              calculator: dict[str, Any] | None = None, every: int = 3, max_records: int = 200,
              consumer_config: dict[str, Any] | None = None, subscriber_extra: dict[str, Any] | None = None,
              **extra: Any) -> Any:
    subscriber = {"source": f"kafka://topic/{source}", "bootstrap_servers": bootstrap, "group_id": group or name,
                  "consumer_config": consumer_config or GROUP, **(subscriber_extra or {})}
    calc = calculator or {"name": "value", "type": "MultiplicationCalculator",
                          "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}
    return load_dag_dict({
        "name": name,
        "checkpoint": {"every_epochs": every},
        "epochs": {"max_records": max_records, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": subscriber}],
        "publishers": [{"name": "out", "config": publisher}],
        "calculators": [calc],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
            {"name": "compute", "calculator": calc["name"]},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "compute"}, {"from_node": "compute", "to_node": "publish"}],
        **extra,
    })


def priced(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Records whose products are all distinct, so every one of them is published."""
    return [{"id": i, "price": float(i), "qty": 2} for i in range(start, start + n)]


def first_seen(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    return [v for v in map(json.dumps, values) if not (v in seen or seen.add(v))]  # type: ignore[func-returns-value]


# -- declaration ----------------------------------------------------------------------------------
def test_the_declaration_accepts_the_seed_keys_and_checks_values() -> None:
    assert check_uri("kafka://topic/prices", "source") is None
    assert "must look like kafka://topic/NAME" in (check_uri("kafka://queue/prices", "source") or "")
    assert {"bootstrap_servers", "group_id", "start", "max_depth", "format", "consumer_config"} <= set(
        config_keys("kafka://topic/x", "source") or ())
    assert {"key_attribute", "producer_config", "publish_timeout"} <= set(config_keys("kafka://topic/x", "sink") or ())
    assert is_shareable("kafka://topic/x")
    source = open_source("kafka://topic/prices?bootstrap_servers=h1:9092,h2:9092", {"max_depth": 10})
    assert isinstance(source, KafkaSource) and source.servers == ["h1:9092", "h2:9092"]
    assert source.group_id == "dagserver.prices"
    assert KafkaSource("kafka://topic/p", {"_dag": "d", "_subscriber": "s"}).group_id == "dagserver.d.s"
    assert isinstance(open_sink("kafka://topic/prices", {}), KafkaSink)
    with pytest.raises(ValueError, match="start"):
        KafkaSource("kafka://topic/p", {"start": "beginning"})
    with pytest.raises(ValueError, match="format"):
        KafkaSink("kafka://topic/p", {"format": "xml"})


# -- the adapter on its own -------------------------------------------------------------------------
def test_source_reads_rejects_and_reports_lag_and_position(kafka_broker) -> None:
    topic = unique("direct")
    kafka_broker.create_topic(topic, 1)
    write(kafka_broker.bootstrap, topic, priced(3000))
    write_raw(kafka_broker.bootstrap, topic, [b"{not json", b"[1, 2]", None])
    source = KafkaSource(f"kafka://topic/{topic}", {"bootstrap_servers": kafka_broker.bootstrap,
                                                    "group_id": unique("g"), "consumer_config": GROUP})
    source.open(None)
    try:
        got: list[Any] = []
        assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or got, timeout=30)
        assert len(got) <= 100 and got[0] == priced(1)[0]
        assert source.position() == {"0": len(got)}
        assert wait_until(lambda: (source.backlog() or 0) >= 3003 - len(got) - 500, timeout=5)  # the lag is seen
        assert wait_until(lambda: got.extend(source.read_batch(1000, 0.05)) or len(got) >= 3003, timeout=30)
        assert got[:3000] == priced(3000)
        rejected = got[3000:]
        assert isinstance(rejected[0], RejectedRecord) and "not json" in rejected[0].reason
        assert rejected[1] == [1, 2]  # parses, but not a map: the runtime rejects it
        assert isinstance(rejected[2], RejectedRecord) and "empty" in rejected[2].reason
        assert source.position() == {"0": 3003}
        assert wait_until(lambda: source.read_batch(10, 0.01) == [] and source.backlog() == 0, timeout=5)
        assert source.status == "connected"
    finally:
        source.close()
    assert source.status == "closed"


def test_msgpack_format_round_trip(kafka_broker) -> None:
    topic = unique("packed")
    kafka_broker.create_topic(topic, 1)
    records = [{"id": i, "blob": bytes([i % 256]), "tags": ["a", i]} for i in range(50)]
    write(kafka_broker.bootstrap, topic, records, format="msgpack")
    write_raw(kafka_broker.bootstrap, topic, [b"\xc1"])  # never valid msgpack
    source = KafkaSource(f"kafka://topic/{topic}", {"bootstrap_servers": kafka_broker.bootstrap, "format": "msgpack",
                                                    "group_id": unique("g"), "consumer_config": GROUP})
    source.open(None)
    try:
        got: list[Any] = []
        assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or len(got) >= 51, timeout=30)
        assert got[:50] == records
        assert isinstance(got[50], RejectedRecord) and "not msgpack" in got[50].reason
    finally:
        source.close()


def test_a_rebalance_hands_partitions_over_at_their_committed_offsets(kafka_broker) -> None:
    from kafka import KafkaProducer

    bootstrap, topic, group = kafka_broker.bootstrap, unique("rebalance"), unique("g")
    kafka_broker.create_topic(topic, 4)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for p in range(4):
        for o in range(500):
            producer.send(topic, json.dumps({"p": p, "o": o}).encode(), partition=p)
    producer.flush()
    producer.close()
    config = {"bootstrap_servers": bootstrap, "group_id": group, "consumer_config": GROUP}
    first, second = KafkaSource(f"kafka://topic/{topic}", config), KafkaSource(f"kafka://topic/{topic}", config)
    first.open(None)
    try:
        read: list[dict] = []
        assert wait_until(lambda: read.extend(first.read_batch(700, 0.05)) or len(read) >= 1000, timeout=30)
        half = first.position()  # what a checkpoint covered: the runtime commits this much
        assert wait_until(lambda: read.extend(first.read_batch(1000, 0.05)) or len(read) >= 2000, timeout=30)
        everything = first.position()
        first.commit(half)
        assert wait_until(lambda: kafka_broker.committed(group) == {int(p): o for p, o in half.items()}, timeout=10)
        second.open(None)
        taken: list[dict] = []
        def owners() -> tuple[set[int], set[int]]:
            return ({tp.partition for tp in first._consumer.assignment()},
                    {tp.partition for tp in second._consumer.assignment()})

        def split() -> bool:  # both keep polling while the group rebalances; each ends with some partitions
            read.extend(first.read_batch(1000, 0.05))
            taken.extend(second.read_batch(1000, 0.05))
            mine, theirs = owners()
            return bool(mine and theirs and not mine & theirs and mine | theirs == set(range(4)))

        assert wait_until(split, timeout=30), owners()
        mine, theirs = owners()
        assert wait_until(lambda: taken.extend(second.read_batch(1000, 0.05)) or read.extend(
            first.read_batch(1000, 0.05)) or sum(500 - half.get(str(p), 0) for p in theirs) <= len(taken), timeout=30)
        for p in theirs:  # the new owner starts exactly where the checkpointed offsets were: no loss
            assert [r["o"] for r in taken if r["p"] == p] == list(range(half.get(str(p), 0), 500))
        assert {int(p) for p in first.position()} <= mine  # the revoked partitions were forgotten
        first.commit(everything)  # an old position commits nothing for partitions now owned by the other
        assert wait_until(lambda: all(kafka_broker.committed(group).get(p) == half.get(str(p)) for p in theirs),
                          timeout=5)
        seen = {(r["p"], r["o"]) for r in read + taken}
        assert seen == {(p, o) for p in range(4) for o in range(500)}
    finally:
        second.close()
        first.close()


# -- through a DAG --------------------------------------------------------------------------------------
def test_ten_thousand_records_round_trip_kafka_dag_kafka(kafka_broker, runtimes) -> None:
    bootstrap = kafka_broker.bootstrap
    source, target = unique("rt-in"), unique("rt-out")
    kafka_broker.create_topic(source, 1)
    kafka_broker.create_topic(target, 1)
    inputs = priced(10_000)
    write(bootstrap, source, inputs)
    dag = kafka_dag(unique("roundtrip"), bootstrap, source,
                    {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap})
    reference = ReferenceEvaluator(dag)
    expected = [r for rec in inputs for _, r in reference.ingest("in", rec)]
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    reader = Reader(bootstrap, target)
    try:
        assert reader.until(lambda values: len(first_seen(values)) >= len(expected)), len(reader.values)
        assert first_seen(reader.values) == [json.dumps(r) for r in expected]
        details = runtime.details()["subscribers"]["in"]
        assert details["records"] == 10_000 and details["rejected"] == 0 and details["status"] == "connected"
        assert runtime.stop(timeout=15)
        assert kafka_broker.committed(dag.name) == {0: 10_000}  # the stop's last checkpoint covers all of it
    finally:
        reader.close()


def test_key_attribute_keeps_each_key_in_one_partition_and_in_order(kafka_broker, runtimes) -> None:
    bootstrap = kafka_broker.bootstrap
    source, target = unique("keys-in"), unique("keys-out")
    kafka_broker.create_topic(source, 4)
    kafka_broker.create_topic(target, 4)
    keys = [f"k{i}" for i in range(12)]
    inputs = [{"key": keys[i % len(keys)], "n": i} for i in range(4000)]
    write(bootstrap, source, inputs, key_attribute="key")
    dag = kafka_dag(unique("keyed"), bootstrap, source,
                    {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap, "key_attribute": "key"},
                    calculator={"name": "copy", "type": "NullCalculator"})
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    reader = Reader(bootstrap, target)
    try:
        assert reader.until(lambda values: len({v["n"] for v in values}) >= len(inputs)), len(reader.values)
        partitions: dict[str, set[int]] = {}
        order: dict[str, list[int]] = {}
        for partition, key, value in reader.messages:
            assert key == value["key"].encode()
            partitions.setdefault(value["key"], set()).add(partition)
            if value["n"] not in order.setdefault(value["key"], []):  # a redelivery repeats a stretch
                order[value["key"]].append(value["n"])
        assert all(len(p) == 1 for p in partitions.values())
        assert len(set().union(*partitions.values())) > 1  # the keys did spread over the partitions
        for key in keys:
            assert order[key] == [r["n"] for r in inputs if r["key"] == key]
    finally:
        reader.close()


def test_consumer_lag_shows_in_the_subscriber_backlog(kafka_broker, runtimes) -> None:
    bootstrap = kafka_broker.bootstrap
    source = unique("lag-in")
    kafka_broker.create_topic(source, 2)
    write(bootstrap, source, priced(5000))
    out = unique("lag-out")
    dag = kafka_dag(unique("lag"), bootstrap, source, {"destination": f"mem://queue/{out}", "max_size": 50,
                                                       "publish_timeout": 120}, max_records=50)
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    queue = get_queue(out, 50)

    def backlog() -> int:
        return runtime.details()["subscribers"]["in"]["backlog"] or 0

    # the sink's queue is full and nobody drains it: the subscriber stops reading, the lag stays
    assert wait_until(lambda: backlog() > 4000, timeout=30), runtime.details()["subscribers"]["in"]
    got: list[Any] = []
    assert wait_until(lambda: got.extend(queue.get(1000, 0.05)) or (len(got) >= 5000 and backlog() == 0),
                      timeout=60), (len(got), backlog())


def test_outage_shows_reconnecting_and_loses_nothing(kafka_outage, runtimes) -> None:
    TOTAL = 30_000
    bootstrap = kafka_outage.bootstrap  # the proxy: every client goes through it
    source, target = unique("outage-in"), unique("outage-out")
    kafka_outage.broker.create_topic(source, 1)
    kafka_outage.broker.create_topic(target, 1)
    write(bootstrap, source, priced(1000))
    made: dict[str, Any] = {}

    def sink_factory(uri: str, config: Mapping[str, Any]) -> Any:
        made["sink"] = open_sink(uri, config)
        return made["sink"]

    dag = kafka_dag(unique("outage"), bootstrap, source, {"destination": f"kafka://topic/{target}",
                                                          "bootstrap_servers": bootstrap,
                                                          "producer_config": {"reconnect_backoff_max_ms": 1000}})
    runtime = DagRuntime(dag, sink_factory=sink_factory,
                         restart=RestartPolicy(max_restarts=10, within_seconds=120, base_delay=0.2))
    runtimes.append(runtime)
    runtime.start()
    reader = Reader(bootstrap, target)

    def status() -> str:
        return runtime.details()["subscribers"]["in"]["status"]

    try:
        assert reader.until(lambda values: len(first_seen(values)) >= 1000)
        # an outage while idle: the subscriber keeps polling and says it is reconnecting
        kafka_outage.proxy.cut()
        assert wait_until(lambda: status() == "reconnecting", timeout=20), status()
        kafka_outage.proxy.restore()
        assert wait_until(lambda: status() == "connected", timeout=30), status()
        # an outage mid-stream: the sink waits for its acks, reconnecting, and delivers once back
        # (enough records that the DAG is still writing when the cut comes, on a busy machine too)
        write(bootstrap, source, priced(TOTAL - 1000, start=1000))
        assert reader.until(lambda values: len(first_seen(values)) >= 1200)
        kafka_outage.proxy.cut()
        assert wait_until(lambda: made["sink"].status == "reconnecting", timeout=20)
        kafka_outage.proxy.restore()
        expected = [{"value": 2.0 * i} for i in range(TOTAL)]
        assert reader.until(lambda values: len(first_seen(values)) >= TOTAL, timeout=90), len(first_seen(reader.values))
        assert first_seen(reader.values) == [json.dumps(v) for v in expected]
        assert wait_until(lambda: status() == "connected", timeout=30)
    finally:
        reader.close()


def test_unparseable_and_non_map_messages_are_rejected_and_dead_lettered(kafka_broker, runtimes) -> None:
    bootstrap = kafka_broker.bootstrap
    source, target, letters = unique("bad-in"), unique("bad-out"), unique("bad-dl")
    for topic in (source, target, letters):
        kafka_broker.create_topic(topic, 1)
    write_raw(bootstrap, source, [b'{"price": 1, "qty": 2}', b"garbage", b"[1, 2, 3]", b"42", b'"text"',
                                  b"\xff\xfe", b'{"price": 3, "qty": 2}'])
    dag = kafka_dag(unique("rejects"), bootstrap, source,
                    {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap},
                    dead_letter=f"kafka://topic/{letters}?bootstrap_servers={bootstrap}")
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    out, dead = Reader(bootstrap, target), Reader(bootstrap, letters)
    try:
        assert out.until(lambda values: len(values) >= 2)
        assert out.values == [{"value": 2.0}, {"value": 6.0}]
        assert wait_until(lambda: runtime.details()["subscribers"]["in"]["rejected"] == 5, timeout=10)
        assert runtime.stop(timeout=15)  # the last checkpoint writes the dead letters out
        assert dead.until(lambda values: len(values) >= 5)
        assert {letter["subscriber"] for letter in dead.values} == {"in"}
        reasons = " | ".join(letter["error"] for letter in dead.values)
        assert "not json" in reasons
        assert "[1, 2, 3]" in " ".join(letter["input"] for letter in dead.values)
        assert runtime.details()["dead_letters"] == 5
    finally:
        out.close()
        dead.close()


class CrashingSink(KafkaSink):
    """A kafka sink that fails for good once ``limit`` records were written (a crash mid-stream)."""

    def __init__(self, uri: str, config: Mapping[str, Any], limit: int) -> None:
        super().__init__(uri, config)
        self.limit, self.written = limit, 0

    def write_batch(self, records: list[dict]) -> None:
        if self.written + len(records) > self.limit:
            raise ConnectionError("the sink crashed")
        super().write_batch(records)
        self.written += len(records)


def test_offsets_are_committed_only_after_checkpoints_and_a_restart_rereads_the_rest(kafka_broker, runtimes) -> None:
    bootstrap = kafka_broker.bootstrap
    source, target = unique("ckpt-in"), unique("ckpt-out")
    kafka_broker.create_topic(source, 1)
    kafka_broker.create_topic(target, 1)
    write(bootstrap, source, priced(2000))
    group = unique("ckpt-group")
    publisher = {"destination": f"kafka://topic/{target}", "bootstrap_servers": bootstrap}
    dag = kafka_dag(unique("ckpt"), bootstrap, source, publisher, group=group, every=4, max_records=50)
    sinks: list[CrashingSink] = []

    def crashing_sink(uri: str, config: Mapping[str, Any]) -> CrashingSink:
        sinks.append(CrashingSink(uri, config, limit=725))
        return sinks[-1]

    sources: list[Any] = []

    def recorded_source(uri: str, config: Mapping[str, Any]) -> Any:
        sources.append(open_source(uri, config))
        return sources[-1]

    crashing = DagRuntime(dag, source_factory=recorded_source, sink_factory=crashing_sink,
                          restart=RestartPolicy(max_restarts=0))
    runtimes.append(crashing)
    reader = Reader(bootstrap, target)
    try:
        crashing.start()
        assert wait_until(lambda: crashing.state == FAILED, timeout=60), crashing.reason
        # the failed actors are torn down: the source closes, committing what it was told and nothing more
        assert wait_until(lambda: sources[0].status == "closed", timeout=15)
        assert len(sinks) == 1 and 600 < sinks[0].written <= 725
        assert reader.until(lambda values: len(values) >= sinks[0].written)
        published = [int(v["value"] / 2) for v in reader.values]
        assert published == list(range(sinks[0].written))
        committed = kafka_broker.committed(group).get(0, 0)
        assert 0 < committed <= len(published)  # what a checkpoint covered, never more
        # a new runtime with the same group starts at the committed offset: re-reads, skips nothing
        again = DagRuntime(kafka_dag(dag.name, bootstrap, source, publisher, group=group, every=4, max_records=50))
        runtimes.append(again)
        again.start()
        assert reader.until(lambda values: len(values) >= len(published) + 2000 - committed, timeout=60)
        replayed = [int(v["value"] / 2) for v in reader.values[len(published):]]
        assert replayed == list(range(committed, 2000))
        assert again.stop(timeout=15)
        assert kafka_broker.committed(group) == {0: 2000}
    finally:
        reader.close()
