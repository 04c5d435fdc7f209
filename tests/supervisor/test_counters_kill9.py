"""Counters of committed input survive a kill -9 (SPEC §8: monotonic; nothing committed goes uncounted).

A worker counts as it goes and tells the supervisor in heartbeats (every 0.5 s). What it
counted since its last heartbeat dies with it; when the input behind those counts was
already committed, it is never read, nor counted, again. So each checkpoint saves the
counters that go with its positions, the next incarnation starts from them, and the
supervisor merges them with what it carried, never counting twice and never going down.

The test: two unparseable Redis stream entries are rejected, their checkpoint is written
and they are acknowledged (XACK); the worker is killed with SIGKILL at once, most often
before any heartbeat told of them. ``records_rejected_total`` must end at 2, and every
scrape from the kill on must show a value no smaller than the one before.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import require_module, require_port
from tests.support.supervised import SupervisedServer, process_gone
from tests.support.waiting import wait_until

GROUP = "counted"


@pytest.fixture
def redis_client() -> Any:
    require_module("redis", "redis")
    require_port("127.0.0.1", 6379, "Redis")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    yield client
    client.close()


def rejecting_dag(stream: str, out: Path) -> dict[str, Any]:
    return {
        "name": "counted",
        "checkpoint": {"every_epochs": 1},
        "subscribers": [{"name": "in", "config": {"source": f"redis://stream/{stream}", "host": "127.0.0.1",
                                                  "port": 6379, "group": GROUP}}],
        "publishers": [{"name": "out", "config": {"destination": f"file://{out}"}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
    }


def rejected(server: SupervisedServer) -> float | None:
    """The DAG's ``records_rejected_total`` now; None while the server shows no sample for it."""
    match = re.search(r'^dagserver_records_rejected_total\{dag="counted",subscriber="in"[^}]*\} (\S+)$',
                      server.metrics(), re.MULTILINE)
    return float(match[1]) if match else None


class Sampler:
    """Scrapes ``rejected`` over and over on a thread, keeping every value seen."""

    def __init__(self, server: SupervisedServer) -> None:
        self.server, self.values, self.done = server, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="scrapes")
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            value = rejected(self.server)
            if value is not None:
                self.values.append(value)
            self.done.wait(0.05)

    def stop(self) -> list[float]:
        self.done.set()
        self.thread.join(10)
        return self.values


def test_rejections_committed_just_before_a_kill_9_are_still_counted(tmp_path: Path, redis_client: Any) -> None:
    stream = f"counted-{uuid.uuid4().hex[:8]}"
    try:
        with SupervisedServer(tmp_path, {"counted": rejecting_dag(stream, tmp_path / "out.jsonl")},
                              workers=1) as server:
            server.wait_dags("running")
            victim = server.worker(0)["pid"]
            last = [redis_client.xadd(stream, {"data": text}) for text in ("{not json", "[1, 2]")][-1]

            def acknowledged() -> bool:  # both entries delivered to the group, and none pending
                groups = {g["name"].decode(): g for g in redis_client.xinfo_groups(stream)}
                group = groups.get(GROUP)
                return bool(group) and group["last-delivered-id"] == last and group["pending"] == 0

            assert wait_until(acknowledged, timeout=20, interval=0.002), server.log()[-3000:]
            os.kill(victim, signal.SIGKILL)  # their positions are committed: they are never read again
            sampler = Sampler(server)
            assert wait_until(lambda: process_gone(victim), timeout=10)
            try:
                assert wait_until(lambda: server.worker(0)["pid"] != victim and server.worker(0)["alive"],
                                  timeout=30)
                server.wait_dags("running", timeout=30)
                assert wait_until(lambda: rejected(server) == 2, timeout=10), (rejected(server), server.log()[-3000:])
                assert wait_until(lambda: sampler.values[-1:] == [2], timeout=10)  # the sampler saw it too
            finally:
                values = sampler.stop()
            assert values == sorted(values), values  # never down, at any scrape
            assert values[-1] == 2
    finally:
        redis_client.delete(stream)
