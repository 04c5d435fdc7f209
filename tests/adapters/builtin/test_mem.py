"""mem:// queues and topics: competing consumers, backpressure, broadcast, redelivery."""

from __future__ import annotations

import threading

import pytest

from adapters.builtin.mem import (
    MemFullError,
    MemSink,
    MemSource,
    get_queue,
    mem_drain,
    mem_publish,
    mem_put,
    mem_size,
)
from adapters.registry import is_shareable, open_sink, open_source


def _source(uri: str, position=None, **config) -> MemSource:
    src = MemSource(uri, config)
    src.open(position)
    return src


def recs(n: int, start: int = 0) -> list[dict]:
    return [{"i": i} for i in range(start, start + n)]


def test_registry_builds_mem_adapters():
    src = open_source("mem://queue/q", {})
    sink = open_sink("mem://topic/t", {})
    assert isinstance(src, MemSource) and isinstance(sink, MemSink)
    assert src.status == "closed"
    assert is_shareable("mem://queue/q") and not is_shareable("mem://topic/t")


def test_bad_mem_uri_is_rejected():
    with pytest.raises(ValueError, match="mem://queue/NAME"):
        MemSource("mem://bucket/x", {})
    with pytest.raises(ValueError, match="max_size"):
        MemSink("mem://queue/x", {"max_size": 0})


def test_queue_read_batch_respects_max_and_timeout():
    mem_put("q", recs(5))
    src = _source("mem://queue/q")
    assert src.status == "connected"
    assert src.read_batch(3, timeout=0) == recs(3)
    assert src.position() == 3
    assert src.read_batch(10, timeout=0) == recs(2, 3)
    assert src.read_batch(10, timeout=0.01) == []
    assert src.position() == 5


def test_competing_consumers_share_without_duplicates():
    mem_put("jobs", recs(1000))
    a, b = _source("mem://queue/jobs"), _source("mem://queue/jobs")
    got: dict[str, list[dict]] = {"a": [], "b": []}

    def consume(name: str, src: MemSource) -> None:
        while batch := src.read_batch(7, timeout=0):
            got[name].extend(batch)
            src.commit(src.position())

    threads = [threading.Thread(target=consume, args=item) for item in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    ids = [r["i"] for r in got["a"] + got["b"]]
    assert sorted(ids) == list(range(1000))
    for part in got.values():  # each consumer sees its share in queue order
        assert [r["i"] for r in part] == sorted(r["i"] for r in part)


def test_full_queue_blocks_writer_until_slow_consumer_reads():
    sink = MemSink("mem://queue/slow", {"max_size": 5})
    sink.open()
    q = get_queue("slow")
    done = threading.Event()

    def produce() -> None:
        sink.write_batch(recs(12))
        done.set()

    writer = threading.Thread(target=produce)
    writer.start()
    assert q.wait_for(lambda q: q.blocked_writers == 1 and len(q) == 5, timeout=5)
    assert not done.is_set()

    src = _source("mem://queue/slow")
    received: list[dict] = []
    while len(received) < 12:
        batch = src.read_batch(2, timeout=5)
        assert batch, "writer stalled"
        received.extend(batch)
        assert len(q) <= 5
        if done.is_set():
            assert 12 - len(received) <= 5
    writer.join(5)
    assert done.is_set()
    assert received == recs(12)  # nothing dropped, order kept


def test_put_timeout_raises_instead_of_dropping():
    sink = MemSink("mem://queue/tiny?max_size=2", {"put_timeout": 0.01})
    sink.open()
    with pytest.raises(MemFullError, match="tiny"):
        sink.write_batch(recs(3))
    assert mem_drain("tiny") == recs(2)


def test_topic_broadcasts_to_every_subscriber_from_when_it_opened():
    early = _source("mem://topic/news")
    sink = open_sink("mem://topic/news", {})
    sink.open()
    sink.write_batch(recs(2))
    late = _source("mem://topic/news")
    sink.write_batch(recs(2, 2))
    assert early.read_batch(10, timeout=0) == recs(4)
    assert late.read_batch(10, timeout=0) == recs(2, 2)
    late.close()
    mem_publish("news", recs(1, 4))
    assert early.read_batch(10, timeout=0) == recs(1, 4)
    assert early.position() == 5


def test_topic_writer_blocks_while_any_subscriber_is_full():
    fast, slow = _source("mem://topic/t", max_size=3), _source("mem://topic/t")
    sink = MemSink("mem://topic/t", {"put_timeout": 0.01})
    sink.open()
    sink.write_batch(recs(3))
    assert fast.read_batch(10, timeout=0) == recs(3)
    with pytest.raises(MemFullError):
        sink.write_batch(recs(1, 3))  # slow still holds 3
    assert slow.read_batch(10, timeout=0) == recs(3)
    sink.write_batch(recs(1, 3))
    assert fast.read_batch(10, timeout=0) == slow.read_batch(10, timeout=0) == recs(1, 3)


def test_a_topic_subscribers_max_depth_bounds_its_own_buffer():
    # the seed's max_depth (SPEC §6): this subscriber's buffer holds 2, the topic's others 10000
    bounded, other = _source("mem://topic/depth", max_depth=2), _source("mem://topic/depth")
    sink = MemSink("mem://topic/depth", {"put_timeout": 0.01})
    sink.open()
    sink.write_batch(recs(2))
    with pytest.raises(MemFullError):
        sink.write_batch(recs(1, 2))
    assert bounded.read_batch(10, timeout=0) == recs(2)
    sink.write_batch(recs(1, 2))
    assert bounded.read_batch(10, timeout=0) == recs(1, 2) and other.read_batch(10, timeout=0) == recs(3)


def test_max_depth_on_a_queue_is_accepted_and_ignored():
    mem_put("deep", recs(5))
    assert _source("mem://queue/deep", max_depth=0).read_batch(10, timeout=0) == recs(5)


def test_uncommitted_records_are_redelivered_first_and_in_order():
    mem_put("work", recs(6))
    src = _source("mem://queue/work")
    assert src.read_batch(2, timeout=0) == recs(2)
    src.commit(src.position())
    assert src.read_batch(3, timeout=0) == recs(3, 2)
    src.commit(3)  # only record 2 is done
    src.close()
    assert src.status == "closed"
    assert mem_size("work") == 3  # records 3, 4 back at the front, then 5

    again = _source("mem://queue/work", position=src.position())
    assert again.position() == 5  # positions keep growing across instances
    assert again.read_batch(10, timeout=0) == recs(3, 3)
    again.close()  # nothing committed: all three go back
    assert mem_drain("work") == recs(3, 3)


def test_commit_of_old_position_is_harmless():
    mem_put("w", recs(3))
    src = _source("mem://queue/w")
    src.read_batch(3, timeout=0)
    src.commit(3)
    src.commit(1)
    src.close()
    assert mem_size("w") == 0


def test_blocking_read_wakes_on_write():
    src = _source("mem://queue/wake")
    t = threading.Thread(target=mem_put, args=("wake", recs(1)))
    t.start()
    assert src.read_batch(5, timeout=5) == recs(1)
    t.join(5)
