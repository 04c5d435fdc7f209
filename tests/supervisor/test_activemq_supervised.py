"""activemq:// under a real ``dagserver serve`` (SPEC §3 at-least-once, §4 restarts, §6 outages, §8 metrics).

A DAG copies ``/queue/in`` to ``/queue/out`` on a broker of the test's own. A worker killed
with SIGKILL mid-stream is restarted and its DAG replays what it had not acknowledged: every
input id reaches the output at least once. The broker itself crashing for a few seconds shows
as ``reconnecting`` in ``GET /api/dags/NAME`` and in /metrics, and once it is back everything
arrives, persistent messages having survived the crash. The DAG file names its password
``"${VAR}"``, taken from the server's environment.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from adapters.activemq import ActiveMQSink
from tests.support.activemq_broker import ActiveMQBroker, Collector, require_activemq, send_raw
from tests.support.supervised import SupervisedServer, process_gone
from tests.support.waiting import wait_until

N = 10_000
PASSWORD_VAR = "DAGSERVER_TEST_ACTIVEMQ_PASSWORD"


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    require_activemq()
    with ActiveMQBroker(tmp_path / "activemq") as started:
        monkeypatch.setenv(PASSWORD_VAR, started.credentials["password"])  # the server inherits it
        yield started


def copy_dag(broker: ActiveMQBroker, name: str = "copy") -> dict[str, Any]:
    where = {"host": broker.host, "port": broker.port, "username": broker.credentials["username"],
             "password": f"${{{PASSWORD_VAR}}}", "heartbeats": 1000}
    return {
        "name": name, "checkpoint": {"every_epochs": 2}, "epochs": {"max_records": 200, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {"source": "activemq://queue/in", **where}}],
        "publishers": [{"name": "out", "config": {"destination": "activemq://queue/out", **where,
                                                  "publish_timeout": 60}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
    }


def write_input(broker: ActiveMQBroker) -> None:
    """The N records on ``/queue/in``, before the DAG starts: it works through a backlog at full speed."""
    sink = ActiveMQSink("activemq://queue/in", broker.config())
    sink.open()
    for at in range(0, N, 1000):
        sink.write_batch([{"id": i} for i in range(at, at + 1000)])
    sink.close()


def status_sample(metrics: str, family: str, endpoint: str, status: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(f"dagserver_{family}{{") and endpoint in line and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def shows(server: SupervisedServer, status: str) -> bool:
    """The API and /metrics say ``status`` for both the subscriber and the publisher of the DAG."""
    details = server.dag("copy")
    metrics = server.metrics()
    return (details["subscribers"]["in"]["status"] == status == details["publishers"]["out"]["status"]
            and status_sample(metrics, "source_status", 'subscriber="in"', status) == 1.0
            and status_sample(metrics, "sink_status", 'publisher="out"', status) == 1.0)


def test_kill_9_of_the_worker_mid_stream_loses_nothing(tmp_path: Path, broker: ActiveMQBroker) -> None:
    write_input(broker)
    output = Collector(broker, "/queue/out")
    try:
        with SupervisedServer(tmp_path, {"copy": copy_dag(broker)}, workers=1) as server:
            assert wait_until(lambda: len(output.ids()) >= 2000, timeout=60), server.log()[-3000:]
            victim = server.worker(0)["pid"]
            os.kill(victim, signal.SIGKILL)
            assert len(output.ids()) < N  # mid-stream
            assert wait_until(lambda: process_gone(victim), timeout=10)
            assert wait_until(lambda: output.ids() >= set(range(N)), timeout=90), \
                (N - len(output.ids()), server.log()[-3000:])
            assert server.worker(0)["restarts"] == 1
    finally:
        output.close()
    duplicates = len(output.snapshot()) - N
    assert duplicates < N // 2, duplicates  # a replay of what was not acknowledged, not everything again


def test_a_broker_crash_shows_reconnecting_then_everything_arrives(tmp_path: Path, broker: ActiveMQBroker) -> None:
    write_input(broker)
    send_raw(broker, "/queue/fleeting", [b'{"gone": true}'] * 5, persistent=False)
    output = Collector(broker, "/queue/out")
    with SupervisedServer(tmp_path, {"copy": copy_dag(broker)}, workers=1) as server:
        server.wait_dags("running")
        assert wait_until(lambda: len(output.ids()) >= 1000, timeout=60), server.log()[-3000:]
        output.close()
        seen = output.ids()
        broker.stop()  # a crash: what was not consumed yet must be on disk
        assert len(seen) < N  # mid-stream
        assert wait_until(lambda: shows(server, "reconnecting"), timeout=15), server.dag("copy")
        assert not wait_until(lambda: not shows(server, "reconnecting"), timeout=3)  # the outage lasts 3 s
        broker.start()
        output = Collector(broker, "/queue/out")
        try:
            assert wait_until(lambda: shows(server, "connected"), timeout=30), server.dag("copy")
            # what was not acknowledged is read again; what reached /queue/out is still there or was seen
            assert wait_until(lambda: seen | output.ids() >= set(range(N)), timeout=60), len(seen | output.ids())
            assert server.dag("copy")["state"] == "running"
        finally:
            output.close()
    fleeting = Collector(broker, "/queue/fleeting")
    send_raw(broker, "/queue/fleeting", [b'{"marker": true}'])  # queued after anything still there
    assert fleeting.until(lambda got: {"marker": True} in got, timeout=15)
    assert fleeting.snapshot() == [{"marker": True}]  # non-persistent messages died with it
    fleeting.close()
