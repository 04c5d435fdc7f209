"""Taking over a dead Redis consumer's items, and never a live one's (SPEC §6), against the real Redis.

* lists: a processing list whose consumer name is gone (a failover to another host name,
  fewer replicas) is adopted through the checkpoint that names it, and otherwise given back
  once its consumer has been silent for ``claim_idle_ms``; a live consumer's list is left alone;
* streams: entries pending on a live consumer are never claimed, however long it reads
  nothing (Redis 7.0's ``XINFO CONSUMERS`` idle time would call it idle); a dead one's are.

Consumers are told alive from dead by the liveness key each refreshes (adapters/redis/liveness.py).
A "crash" closes the source's client without ``close()``: the server keeps what it held.
"""

from __future__ import annotations

import json
import time
from typing import Any

from adapters.redis.lists import ListSource
from adapters.redis.streams import StreamSink, StreamSource
from tests.support.waiting import wait_until

CLAIM_IDLE_MS = 1000
WATCH = 3 * CLAIM_IDLE_MS / 1000  # seconds a live consumer is watched being left alone


def read_all(source: Any, count: int, timeout: float = 15) -> list[Any]:
    got: list[Any] = []
    assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or len(got) >= count, timeout=timeout), got
    return got


def ids(records: list[Any]) -> list[int]:
    return [r["id"] for r in records]


# -- lists ----------------------------------------------------------------------------------------------------
def pushed(redis_keys, what: str, n: int) -> str:
    name = redis_keys.name(what)
    redis_keys.client.rpush(name, *[json.dumps({"id": i}) for i in range(n)])
    return name


def list_source(redis_keys, name: str, consumer: str, **config: Any) -> ListSource:
    return ListSource(f"redis://list/{name}", {**redis_keys.config, "consumer": consumer, **config})


def crashed_list_consumer(redis_keys, name: str, consumer: str, **config: Any) -> tuple[ListSource, Any]:
    """A consumer that read ids 0-4, had a checkpoint cover ids 0-1, and died before committing anything."""
    old = list_source(redis_keys, name, consumer, **config)
    old.open(None)
    assert ids(old.read_batch(2, 0.05)) == [0, 1]
    checkpoint = old.position()
    assert ids(old.read_batch(3, 0.05)) == [2, 3, 4]
    old.link.client.close()
    assert redis_keys.client.llen(old.processing) == 5
    return old, checkpoint


def test_a_list_consumer_adopts_the_processing_list_its_checkpoint_names(redis_keys) -> None:
    name = pushed(redis_keys, "adopt", 10)
    old, checkpoint = crashed_list_consumer(redis_keys, name, "old-host.d.in.0")
    assert checkpoint["consumer"] == "old-host.d.in.0"  # the position names the processing list it reads
    new = list_source(redis_keys, name, "new-host.d.in.0")  # the same replica after a failover
    new.open(checkpoint)
    try:
        assert ids(read_all(new, 8)) == list(range(2, 10))  # what the checkpoint did not cover first, in order
        new.commit(new.position())
        assert not redis_keys.client.exists(old.processing, old.mark, old.landing)
        assert redis_keys.client.llen(new.processing) == 0
    finally:
        new.close()


def test_a_silent_consumers_processing_list_is_reclaimed_after_claim_idle_ms(redis_keys) -> None:
    name = pushed(redis_keys, "reclaim", 10)
    old, _ = crashed_list_consumer(redis_keys, name, "gone-host.d.in.1", claim_idle_ms=CLAIM_IDLE_MS)
    new = list_source(redis_keys, name, "new-host.d.in.0", claim_idle_ms=CLAIM_IDLE_MS)
    new.open(None)  # no checkpoint names the old list (fewer replicas now)
    try:
        assert ids(read_all(new, 5)) == list(range(5, 10))
        assert sorted(ids(read_all(new, 5))) == list(range(5))  # given back once the old one fell silent
        assert not redis_keys.client.exists(old.processing, old.mark)
    finally:
        new.close()


def test_a_live_consumers_processing_list_is_never_reclaimed(redis_keys) -> None:
    name = pushed(redis_keys, "live", 10)
    live = list_source(redis_keys, name, "live.d.in.0", claim_idle_ms=CLAIM_IDLE_MS)
    other = list_source(redis_keys, name, "other.d.in.1", claim_idle_ms=CLAIM_IDLE_MS)
    live.open(None)
    other.open(None)
    try:
        assert ids(live.read_batch(3, 0.05)) == [0, 1, 2]  # taken, not committed: a lull before its checkpoint
        seen: list[Any] = []
        watch_until = time.monotonic() + WATCH
        while time.monotonic() < watch_until:
            seen.extend(other.read_batch(100, 0.05))
            live.keep_alive()  # alive, too busy to read (backpressure)
        assert sorted(ids(seen)) == list(range(3, 10))
        assert [json.loads(v)["id"] for v in redis_keys.client.lrange(live.processing, 0, -1)] == [0, 1, 2]
    finally:
        live.close()
        other.close()


def test_a_consumer_whose_items_were_given_back_while_it_was_silent_reads_on(redis_keys) -> None:
    name = pushed(redis_keys, "silent", 6)
    sleepy = list_source(redis_keys, name, "sleepy.d.in.0", claim_idle_ms=CLAIM_IDLE_MS)
    other = list_source(redis_keys, name, "other.d.in.1", claim_idle_ms=CLAIM_IDLE_MS)
    sleepy.open(None)
    other.open(None)
    try:
        assert ids(sleepy.read_batch(3, 0.05)) == [0, 1, 2]
        stale = sleepy.position()  # its epoch is still in flight when the consumer stalls (a paused DAG)
        assert sorted(ids(read_all(other, 6))) == list(range(6))  # 3-5, then 0-2 once sleepy fell silent
        other.commit(other.position())
        redis_keys.client.rpush(name, json.dumps({"id": 6}))
        sleepy.commit(stale)  # late: those items went back to the list; nothing of what comes next goes
        assert ids(read_all(sleepy, 1)) == [6]  # reads on, under a new run: no ConsumerInUse, no restart
        sleepy.commit(stale)
        assert [json.loads(v)["id"] for v in redis_keys.client.lrange(sleepy.processing, 0, -1)] == [6]
        assert sleepy.position()["token"] != stale["token"]
    finally:
        sleepy.close()
        other.close()


# -- streams --------------------------------------------------------------------------------------------------
def written(redis_keys, what: str, n: int) -> str:
    name = redis_keys.name(what)
    sink = StreamSink(f"redis://stream/{name}", redis_keys.config)
    sink.open()
    sink.write_batch([{"id": i} for i in range(n)])
    sink.close()
    return name


def stream_source(redis_keys, name: str, replica: int) -> StreamSource:
    identity = {"_dag": "d", "_subscriber": "in", "_server": "srv", "_replica": replica}
    return StreamSource(f"redis://stream/{name}", {**redis_keys.config, **identity, "claim_idle_ms": CLAIM_IDLE_MS})


def test_a_live_stream_consumers_pending_entries_are_never_claimed(redis_keys) -> None:
    name = written(redis_keys, "live", 5)
    live, other = stream_source(redis_keys, name, 0), stream_source(redis_keys, name, 1)
    live.open(None)
    other.open(None)
    try:
        assert ids(read_all(live, 5)) == list(range(5))  # pending on it through a lull: nothing more to read
        watch_until = time.monotonic() + WATCH
        while time.monotonic() < watch_until:
            assert other.read_batch(100, 0.05) == []
            assert live.read_batch(100, 0.05) == []  # alive, with nothing to read
        live.link.client.close()  # now it dies: its entries go to the other once it is silent long enough
        died = time.monotonic()
        assert ids(read_all(other, 5)) == list(range(5))
        assert time.monotonic() - died >= CLAIM_IDLE_MS / 1000 * 0.5
        other.commit(other.position())
        assert redis_keys.client.xpending(name, other.group)["pending"] == 0
    finally:
        other.close()
