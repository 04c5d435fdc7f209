"""Servers, brokers and Kafka clients on the test hosts of :mod:`tests.support.hosts`.

:class:`HostedServer` is a :class:`~tests.support.supervised.SupervisedServer` started on a
host: its process (and its workers) live in the host's namespace, and the test's requests
to its API are made from there too (its ``bind`` is the host's own 127.0.0.1).
:class:`Feed` produces ``{"id", "key", "t"}`` records to a topic from the client host until
stopped; :class:`Output` reads a topic from the start on the client host and keeps each
record with its partition and when it came. :func:`faults` sums what must stay zero in a
multi-host run (worker and actor restarts, tracebacks in the log).

Usage::

    server = HostedServer(bed.hosts["a"], tmp_path / "a", {"keyed": dag}, env={"DAGSERVER_TEST_SERVER": "a"})
    with server:
        server.wait_dags("running")
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.hosts import Host
from tests.support.supervised import SupervisedServer


class HostedServer(SupervisedServer):
    """A ``dagserver serve`` whose process and API live on ``host``."""

    def __init__(self, host: Host, tmp: Path, dags: dict[str, Any], **settings: Any) -> None:
        self.host = host
        super().__init__(tmp, dags, **settings)

    def start(self) -> HostedServer:
        self.host.run(SupervisedServer.start, self)
        return self

    def request(self, method: str, path: str, timeout: float = 10.0, **options: Any) -> tuple[int, Any]:
        return self.host.run(SupervisedServer.request, self, method, path, timeout, timeout=timeout + 5.0,
                             **options)


def faults(server: SupervisedServer) -> dict[str, int]:
    """What must stay zero: worker restarts, actor restarts (from /metrics), tracebacks in the log."""
    metrics = server.metrics()
    actor_restarts = sum(float(v) for v in re.findall(r"^dagserver_actor_restarts_total\{[^}]*\} (\S+)$", metrics,
                                                        re.MULTILINE))
    return {"worker_restarts": sum(w.get("restarts", 0) for w in server.workers()),
            "actor_restarts": int(actor_restarts), "tracebacks": server.log().count("Traceback")}


MAX_FED = 200_000  # no feed runs longer than this many records, whatever happens to the test


class Feed:
    """Produces ``{"id": i, "key": "kN", "t": wall clock}`` to ``topic`` from ``host`` at ``per_second``
    until :meth:`stop` (or ``limit`` records, at most MAX_FED); ``produced`` counts the records the broker took."""

    def __init__(self, host: Host, bootstrap: str, topic: str = "in", per_second: float = 400.0,
                 keys: int = 32, limit: int | None = None) -> None:
        self.host, self.bootstrap, self.topic = host, bootstrap, topic
        self.per_second, self.keys, self.limit = per_second, keys, limit
        self.produced = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()

    def start(self) -> Feed:
        self.host.submit(self._run)
        return self

    def _run(self) -> None:
        from kafka import KafkaProducer

        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
            started, i = time.monotonic(), 0
            while not self._stop.is_set() and i < min(self.limit or MAX_FED, MAX_FED):
                key = f"k{i % self.keys}"
                producer.send(self.topic, key=key.encode(),
                              value=json.dumps({"id": i, "key": key, "t": time.time()}).encode())
                i += 1
                if i % 50 == 0:
                    producer.flush(timeout=60)
                    self.produced = i
                    self._stop.wait(max(0.0, started + i / self.per_second - time.monotonic()))  # pacing
            producer.flush(timeout=60)
            self.produced = i
            producer.close(timeout=10)
        except BaseException as exc:  # told to the test by stop()
            self.error = exc
        finally:
            self._done.set()

    def stop(self) -> int:
        """Stop producing; how many records went to the broker."""
        self._stop.set()
        assert self._done.wait(90), "the feed did not stop"
        assert self.error is None, f"the feed failed: {self.error!r}"
        return self.produced


@dataclass
class Received:
    id: int
    key: str
    server: str
    partition: int
    produced: float  # wall clock when fed
    came: float  # wall clock when read back


class Output:
    """Everything on ``topic`` (``partitions`` of them) from the start, read on ``host``."""

    def __init__(self, host: Host, bootstrap: str, topic: str = "out", partitions: int = 4) -> None:
        self.host = host
        self.records: list[Received] = []
        self.consumer = host.run(self._open, bootstrap, topic, partitions)

    @staticmethod
    def _open(bootstrap: str, topic: str, partitions: int) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        return consumer

    def read(self) -> int:
        """Read what came; how many distinct ids came so far."""
        def poll() -> None:
            for tp, messages in self.consumer.poll(timeout_ms=200, max_records=5000).items():
                now = time.time()
                for m in messages:
                    value = json.loads(m.value)
                    self.records.append(Received(value["id"], value["key"], value.get("server", ""), tp.partition,
                                                 value["t"], now))
        self.host.run(poll)
        return len({r.id for r in self.records})

    def close(self) -> None:
        self.host.run(self.consumer.close)
