"""Scaling through the broker's consumer group, and surviving kill -9 there (SPEC §5, §3 at-least-once).

20,000 keyed records on a 4-partition topic go through a DAG that copies them to another
topic keyed the same way. Either the DAG runs as ``replicas: 2`` on the two workers of one
``dagserver serve``, and one worker is killed with SIGKILL mid-stream; or two servers run it
(same DAG file, their own ``bind`` and ``state_dir``) and one whole server is killed. Each
time the output holds every input id at least once, each key's records (first occurrences)
keep the input order, and the duplicates stay within two checkpoint intervals.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.kafka import Broker
from tests.support.kafka_broker import require_kafka
from tests.support.supervised import SupervisedServer, process_gone
from tests.support.waiting import wait_until

N = 20_000
KEYS = 32  # enough keys that the partitioner spreads them over every partition
PARTITIONS = 4
EVERY, MAX_RECORDS, IN_FLIGHT = 2, 100, 2
# A replica that dies (or whose partitions move) leaves uncommitted what its DAG read since the
# last checkpoint: at most EVERY epochs waiting for the next checkpoint plus those in flight,
# MAX_RECORDS records each. Two such windows: the one who died, and one more rebalance when it
# comes back.
DUPLICATES = 2 * (EVERY + IN_FLIGHT) * MAX_RECORDS
GROUP_TIMEOUTS = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500, "max_poll_interval_ms": 15000}


def keyed_dag(bootstrap: str, name: str = "keyed", replicas: int = 1) -> dict[str, Any]:
    return {
        "name": name, "replicas": replicas,
        "checkpoint": {"every_epochs": EVERY}, "epochs": {"max_records": MAX_RECORDS, "max_inflight": IN_FLIGHT},
        "subscribers": [{"name": "in", "config": {"source": "kafka://topic/in", "bootstrap_servers": [bootstrap],
                                                  "consumer_config": GROUP_TIMEOUTS}}],
        "publishers": [{"name": "out", "config": {"destination": "kafka://topic/out", "bootstrap_servers": bootstrap,
                                                  "key_attribute": "key"}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
    }


def feed(bootstrap: str, per_second: float = 2000.0) -> threading.Thread:
    """Produce the N keyed records in the background, about ``per_second`` of them a second."""
    def produce() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        seqs: dict[str, int] = defaultdict(int)
        started = time.monotonic()
        for i in range(N):
            key = f"k{i % KEYS}"
            producer.send("in", key=key.encode(), value=f'{{"id": {i}, "key": "{key}", "seq": {seqs[key]}}}'.encode())
            seqs[key] += 1
            if i % 500 == 499:
                producer.flush()
                time.sleep(max(0.0, started + (i + 1) / per_second - time.monotonic()))  # pacing, not waiting
        producer.flush()
        producer.close()

    thread = threading.Thread(target=produce, daemon=True, name="feed")
    thread.start()
    return thread


class Output:
    """Everything on the output topic so far, read from the start of every partition."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.consumer.assign([TopicPartition("out", p) for p in range(PARTITIONS)])
        self.consumer.seek_to_beginning()
        self.records: list[dict[str, Any]] = []

    def read(self) -> int:
        for messages in self.consumer.poll(timeout_ms=200, max_records=5000).values():
            self.records.extend(json.loads(m.value) for m in messages)
        return len({r["id"] for r in self.records})

    def check(self) -> None:
        ids = [r["id"] for r in self.records]
        assert set(ids) == set(range(N)), f"lost {N - len(set(ids))} ids"
        duplicates = len(ids) - N
        assert duplicates <= DUPLICATES, (duplicates, DUPLICATES)
        firsts: dict[str, list[int]] = defaultdict(list)
        seen: set[int] = set()
        for record in self.records:  # the output topic keeps one key's records in one partition, in order
            if record["id"] not in seen:
                seen.add(record["id"])
                firsts[record["key"]].append(record["seq"])
        for key, seqs in firsts.items():
            assert seqs == sorted(seqs), f"key {key}: out of order"

    def close(self) -> None:
        self.consumer.close()


def fresh_topics(broker: Broker) -> None:
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)


def test_replicas_on_two_workers_survive_kill_9_of_one(tmp_path: Path) -> None:
    with Broker(binary=require_kafka()) as broker:
        fresh_topics(broker)
        output = Output(broker.bootstrap)
        with SupervisedServer(tmp_path, {"keyed": keyed_dag(broker.bootstrap, replicas=2)}, workers=2) as server:
            replicas = server.dag("keyed")["replicas"]
            assert sorted(r["worker"] for r in replicas) == [0, 1]
            server.wait_dags("running")
            feed(broker.bootstrap)
            assert wait_until(lambda: output.read() >= N // 5, timeout=120), server.log()[-3000:]
            victim = server.worker(1)["pid"]
            os.kill(victim, signal.SIGKILL)
            assert wait_until(lambda: process_gone(victim), timeout=10)
            assert wait_until(lambda: output.read() == N, timeout=240), (output.read(), server.log()[-3000:])
            assert server.worker(1)["restarts"] == 1
        output.check()
        output.close()


def test_two_servers_share_the_partitions_and_one_survives_the_other(tmp_path: Path) -> None:
    with Broker(binary=require_kafka()) as broker:
        fresh_topics(broker)
        output = Output(broker.bootstrap)
        dag = {"keyed": keyed_dag(broker.bootstrap)}
        with SupervisedServer(tmp_path / "a", dag, workers=1) as first, \
                SupervisedServer(tmp_path / "b", dag, workers=1) as second:
            first.wait_dags("running")
            second.wait_dags("running")
            feed(broker.bootstrap)

            def both_read() -> bool:  # the broker gave each server some of the partitions
                return all(s.dag("keyed").get("subscribers", {}).get("in", {}).get("records", 0) > 0
                           for s in (first, second))

            assert wait_until(both_read, timeout=120), (first.log()[-2000:], second.log()[-2000:])
            os.killpg(second.pid, signal.SIGKILL)  # the whole second server, workers and all
            started = time.monotonic()
            assert wait_until(lambda: output.read() == N, timeout=240), (output.read(), first.log()[-3000:])
            assert first.dag("keyed")["state"] == "running" and time.monotonic() - started < 240
        output.check()
        output.close()
