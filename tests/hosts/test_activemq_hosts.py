"""An ActiveMQ queue shared by servers on two hosts, one of them cut off (SPEC §5), scenario 4.

The broker runs on host ``svc``; a ``dagserver serve`` on ``a`` and one on ``b`` run the same
DAG (``activemq://queue/in`` -> stamp the server -> ``activemq://queue/out``), competing on
the queue; ``client`` feeds ``in`` and collects ``out``. A's link goes down while messages
flow: A cannot publish, so what it holds stays unacknowledged; the broker misses A's
heartbeats, drops its connection and hands those messages to B (those A read but could
not publish, and those it published but had not acknowledged: acknowledgements wait for a
checkpoint, so the latter come out twice, once by each). Every id comes out while
A is still cut off (so B, not A, delivered A's share), and once A is back nothing is lost
and neither server restarted anything.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.activemq_broker import ActiveMQBroker, Collector, require_activemq, send_raw
from tests.support.hosted import HostedServer, faults
from tests.support.hosts import Host, TestBed
from tests.support.waiting import wait_until

pytestmark = pytest.mark.hosts

SLOW = 120.0
HEARTBEATS_MS = 1000
# acknowledgements go once a checkpoint covers them: every 100 epochs (thousands of messages), so
# when A is cut off (after publishing 200) it holds published but unacknowledged messages for B
CHECKPOINT_EPOCHS = 100
MAX_ROUNDS = 3000  # a feed never runs longer than 5 minutes
STAMP = {"name": "stamp", "type": "tests.support.userclasses.ServerStampCalculator"}


def queue_dag(broker: ActiveMQBroker) -> dict[str, Any]:
    link = {**broker.config(format="json"), "heartbeats": HEARTBEATS_MS}
    return {
        "name": "shared", "checkpoint": {"every_epochs": CHECKPOINT_EPOCHS}, "epochs": {"max_records": 50},
        "calculators": [STAMP],
        "subscribers": [{"name": "in", "config": {"source": "activemq://queue/in", **link, "prefetch": 6000}}],
        "publishers": [{"name": "out", "config": {"destination": "activemq://queue/out", **link}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in", "calculator": "stamp"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
    }


class QueueFeed:
    """Sends ``{"id": i}`` to ``/queue/in`` from ``host``, ``per_round`` every 0.1 s, until stopped."""

    def __init__(self, host: Host, broker: ActiveMQBroker, per_round: int = 20) -> None:
        self.host, self.broker, self.per_round = host, broker, per_round
        self.sent = 0
        self._stop = threading.Event()
        self._running = host.submit(self._run)

    def _run(self) -> None:
        for _round in range(MAX_ROUNDS):
            if self._stop.wait(0.1):
                return
            bodies = [json.dumps({"id": self.sent + i}).encode() for i in range(self.per_round)]
            send_raw(self.broker, "/queue/in", bodies)
            self.sent += self.per_round

    def stop(self) -> int:
        self._stop.set()
        self._running.result(60)
        return self.sent


def test_a_cut_off_server_s_unacknowledged_messages_go_to_the_other(tmp_path: Path) -> None:
    require_activemq()
    with TestBed() as bed:
        svc, host_a, host_b, client = (bed.add_host(name) for name in ("svc", "a", "b", "client"))
        broker = ActiveMQBroker(tmp_path / "activemq", port=61613, host=svc.address)
        svc.run(broker.start)
        try:
            dag = {"shared": queue_dag(broker)}
            out = client.run(Collector, broker, "/queue/out")
            a = HostedServer(host_a, tmp_path / "a", dag, workers=1, env={"DAGSERVER_TEST_SERVER": "a"})
            b = HostedServer(host_b, tmp_path / "b", dag, workers=1, env={"DAGSERVER_TEST_SERVER": "b"})
            with a, b:
                a.wait_dags("running", timeout=SLOW)
                b.wait_dags("running", timeout=SLOW)
                feed = QueueFeed(client, broker, per_round=50)
                try:
                    assert out.until(lambda got: min(sum(r.get("server") == s for r in got) for s in "ab") >= 200,
                                     timeout=SLOW), (len(out.snapshot()), a.log()[-3000:], b.log()[-3000:])
                    before = len(out.snapshot())
                    cut = time.monotonic()
                    host_a.link_down()
                    assert out.until(lambda got: [r.get("server") for r in got[before:]].count("b") >= 400,
                                     timeout=SLOW), b.log()[-3000:]
                finally:
                    sent = feed.stop()
                # everything, A's unacknowledged share included, comes out through B while A is cut off
                assert out.until(lambda got: {r["id"] for r in got} >= set(range(sent)), timeout=SLOW), \
                    (sent, len(out.ids()), b.log()[-3000:])
                complete_s = time.monotonic() - cut
                # what A took from the queue but could not publish
                held_by_a = a.dag("shared")["subscribers"]["in"]["records"] - sum(r["server"] == "a"
                                                                                   for r in out.snapshot())
                # what A published but had not acknowledged yet (acks wait for a checkpoint), given to B again
                by_server = {s: {r["id"] for r in out.snapshot() if r["server"] == s} for s in "ab"}
                redelivered = len(by_server["a"] & by_server["b"])
                host_a.link_up()
                assert wait_until(lambda: a.dag("shared")["subscribers"]["in"].get("status") == "connected",
                                  timeout=SLOW, interval=0.2), a.log()[-3000:]
                records = out.snapshot()
                ids = [r["id"] for r in records]
                figures = {"sent": sent, "held_by_a": held_by_a, "redelivered_to_b": redelivered,
                           "duplicates": len(ids) - len(set(ids)),
                           "complete_s": round(complete_s, 1),
                           "by_a": sum(r["server"] == "a" for r in records),
                           "by_b": sum(r["server"] == "b" for r in records),
                           "faults": {"a": faults(a), "b": faults(b)}}
            client.run(out.close)
        finally:
            svc.run(broker.close)
    print(f"scenario 4 (ActiveMQ, link of a down): {figures}")
    assert set(ids) == set(range(sent))
    assert held_by_a + redelivered > 0, f"a held nothing unacknowledged when cut off ({figures})"
    assert figures["faults"]["b"] == dict.fromkeys(figures["faults"]["b"], 0), figures
    assert figures["faults"]["a"]["actor_restarts"] == figures["faults"]["a"]["worker_restarts"] == 0, figures
