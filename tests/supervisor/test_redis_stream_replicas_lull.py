"""Two replicas on one Redis stream through a lull, with a real ``dagserver serve`` (SPEC §3, §5, §6).

A DAG with ``replicas: 2`` (one per worker) copies ``redis://stream/IN`` to ``redis://stream/OUT``.
Ids 0..299 are written, all are copied, then nothing comes for 5 s — longer than
``claim_idle_ms`` (2 s) — then ids 300..599 come. ``checkpoint.every_epochs`` is large, so
only the idle checkpoint (``checkpoint.idle_seconds``) commits what a replica read before the
lull, and only a dead consumer's entries may be claimed. So:

* without a crash every id is published **exactly once**: neither replica claims the
  other's entries while both are alive, however long they wait;
* with one worker killed (SIGKILL) while the second half flows, every id is published
  **at least once**: the dead replica's pending entries are read again, by its restarted
  self or, once its liveness key expired, by the other replica.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import require_module, require_port
from tests.support.supervised import SupervisedServer, process_gone
from tests.support.waiting import wait_until

HALF = 300
LULL = 5.0  # seconds without input: longer than CLAIM_IDLE_MS
CLAIM_IDLE_MS = 2000


@pytest.fixture
def client() -> Any:
    require_module("redis", "redis")
    require_port("127.0.0.1", 6379, "Redis")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    yield client
    client.close()


def copy_dag(source: str, target: str) -> dict[str, Any]:
    redis = {"host": "127.0.0.1", "port": 6379}
    return {
        "name": "copy", "replicas": 2,
        "checkpoint": {"every_epochs": 1000}, "epochs": {"max_records": 20, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {"source": f"redis://stream/{source}", **redis,
                                                  "claim_idle_ms": CLAIM_IDLE_MS}}],
        "publishers": [{"name": "out", "config": {"destination": f"redis://stream/{target}", **redis}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
    }


def write(client: Any, stream: str, ids: range, per_batch: int = 10) -> None:
    """Add ``ids`` in small pipelines, so both replicas get some (a batch per read would go to one)."""
    for start in range(ids.start, ids.stop, per_batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(ids.stop, start + per_batch)):
            pipe.xadd(stream, {"data": json.dumps({"id": i})})
        pipe.execute()
        time.sleep(0.01)  # pacing the producer, not waiting for anything


def published(client: Any, stream: str) -> Counter[int]:
    return Counter(json.loads(fields[b"data"])["id"] for _, fields in client.xrange(stream))


@pytest.mark.parametrize("crash", [False, True], ids=["no-crash", "one-kill-9"])
def test_replicas_through_a_lull_publish_every_id_once_or_at_least_once_after_a_kill(
        tmp_path: Path, client: Any, crash: bool) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target = f"lull-in-{tag}", f"lull-out-{tag}"
    everything = set(range(2 * HALF))
    try:
        with SupervisedServer(tmp_path, {"copy": copy_dag(source, target)}, workers=2) as server:
            server.wait_dags("running")
            assert len({r["worker"] for r in server.dag("copy")["replicas"]}) == 2  # one replica per worker
            write(client, source, range(HALF))
            assert wait_until(lambda: set(published(client, target)) >= set(range(HALF)), timeout=60), \
                server.log()[-3000:]
            time.sleep(LULL)  # the lull itself: the input stops for longer than claim_idle_ms
            assert max(published(client, target).values()) == 1, "a replica claimed a live one's entries"
            if crash:
                victim = server.worker(0)["pid"]
                write(client, source, range(HALF, HALF + HALF // 2))
                os.kill(victim, signal.SIGKILL)
                assert wait_until(lambda: process_gone(victim), timeout=10)
                write(client, source, range(HALF + HALF // 2, 2 * HALF))
            else:
                write(client, source, range(HALF, 2 * HALF))
            assert wait_until(lambda: set(published(client, target)) >= everything, timeout=120), \
                (sorted(everything - set(published(client, target)))[:20], server.log()[-3000:])
            server.wait_dags("running", timeout=60)
            assert server.worker(0)["restarts"] == (1 if crash else 0)
        counts = published(client, target)  # after a graceful stop: whatever was in flight is out too
        assert set(counts) == everything
        if not crash:
            assert {i: n for i, n in counts.items() if n > 1} == {}, "published more than once"
    finally:
        client.delete(source, target)
