"""redis:// endpoints on their own, against the real Redis: URI rules and keys, the list queue's processing
list and crash replay, stream groups (sharing, pending entries, claims, rejects, lag), channel overflow,
the key sink, and outages through a TCP proxy. Whole DAGs: tests/adapters/redis/test_redis_dag.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import msgpack
import pytest

from adapters import registry
from adapters.base import RejectedRecord, parse_uri
from adapters.redis import check_redis_role
from adapters.redis.channels import ChannelSink, ChannelSource
from adapters.redis.link import RedisUnavailable, Target, target_of
from adapters.redis.lists import ConsumerInUse, KeySink, ListSink, ListSource
from adapters.redis.streams import StreamSink, StreamSource
from graphs.loader import check_dag_dict
from tests.support.waiting import wait_until


def read_all(source: Any, count: int, batch: int = 100, timeout: float = 10) -> list[Any]:
    got: list[Any] = []
    assert wait_until(lambda: got.extend(source.read_batch(batch, 0.05)) or len(got) >= count, timeout=timeout), got
    return got


def dag_reading(source: dict[str, Any]) -> dict[str, Any]:
    return {"name": "d",
            "subscribers": [{"name": "in", "config": source}],
            "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
            "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                      {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
            "edges": [{"from_node": "ingest", "to_node": "publish"}]}


# -- declaration ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("uri", "role", "expected"), [
    ("redis://list/jobs", "source", None),
    ("redis://stream/events", "destination", None),
    ("redis://channel/ticks", "source", None),
    ("redis://key", "destination", None),
    ("redis://", "destination", None),
    ("redis://cache:6380/list/jobs", "source", None),
    ("redis://lsit/jobs", "source", "did you mean 'list'?"),
    ("redis://stream", "source", "must look like redis://list/NAME, redis://stream/NAME"),
    ("redis://list/a/b", "destination", "must look like"),
    ("redis://cache:x/list/jobs", "source", "bad port"),
])
def test_uri_shapes(uri: str, role: str, expected: str | None) -> None:
    problem = registry.check_uri(uri, role)
    assert problem is None if expected is None else expected in (problem or ""), problem


def test_targets_keys_sharing_and_the_key_uri_refused_as_a_source() -> None:
    assert target_of(parse_uri("redis://cache:6380/stream/ev")) == Target("stream", "ev", "cache", 6380)
    assert target_of(parse_uri("redis://h:1")) == Target("key", "", "h", 1)
    hosted = ListSink("redis://cache:6380/list/jobs", {})
    assert (hosted.settings.host, hosted.settings.port, hosted.name) == ("cache", 6380, "jobs")
    assert ListSink("redis://cache:6380/list/jobs", {"host": "other"}).settings.host == "other"  # config wins
    assert {"host", "port", "db", "password", "format", "field", "group", "claim_idle_ms", "consumer", "max_buffer",
            "max_depth"} <= set(registry.config_keys("redis://list/x", "source") or ())
    assert {"field", "maxlen", "key_attribute", "publish_timeout"} <= set(registry.config_keys("redis://key", "sink")
                                                                          or ())
    assert registry.is_shareable("redis://list/x") and registry.is_shareable("redis://stream/x")
    assert not registry.is_shareable("redis://channel/x")
    assert isinstance(registry.open_source("redis://stream/x", {}), StreamSource)
    assert isinstance(registry.open_sink("redis://", {}), KeySink)
    refusal = check_redis_role(parse_uri("redis://key"), "source") or ""
    assert "cannot be a source" in refusal and check_redis_role(parse_uri("redis://key"), "destination") is None
    for uri in ("redis://key", "redis://"):
        with pytest.raises(ValueError, match="cannot be a source"):
            registry.open_source(uri, {})
    with pytest.raises(ValueError, match="format"):
        ListSink("redis://list/x", {"format": "xml"})
    with pytest.raises(ValueError, match="claim_idle_ms"):
        StreamSource("redis://stream/x", {"claim_idle_ms": 0})


def test_validation_refuses_a_key_uri_as_a_source() -> None:
    assert "cannot be a source" in (registry.check_uri("redis://key", "source") or "")
    _, problems = check_dag_dict(dag_reading({"source": "redis://key"}), uris=registry)
    assert any("cannot be a source" in str(p) for p in problems), problems


def test_validation_names_unknown_keys_with_a_suggestion() -> None:
    _, problems = check_dag_dict(dag_reading({"source": "redis://stream/x", "grop": "g", "max_depth": 5}),
                                 uris=registry)
    messages = [str(p) for p in problems]
    assert len(messages) == 1 and "grop" in messages[0] and "did you mean 'group'?" in messages[0], messages
    model, problems = check_dag_dict(dag_reading({"source": "redis://list/x", "consumer": "c", "db": 2}),
                                     uris=registry)
    assert problems == [] and model is not None


def test_redischannel_is_a_channel() -> None:
    assert registry.check_uri("redischannel://ticks", "source") is None
    assert "redischannel://NAME" in (registry.check_uri("redischannel://a/b", "source") or "")
    assert not registry.is_shareable("redischannel://ticks")
    assert "max_buffer" in (registry.config_keys("redischannel://ticks", "source") or ())
    source = registry.open_source("redischannel://ticks", {"max_buffer": 5})
    assert isinstance(source, ChannelSource) and source.name == "ticks" and source.max_buffer == 5
    assert isinstance(registry.open_sink("redischannel://ticks", {}), ChannelSink)


def test_a_password_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGTEST_REDIS_SECRET", "s3cret")
    assert ListSink("redis://list/x", {"password": "${DAGTEST_REDIS_SECRET}"}).settings.password == "s3cret"
    assert ListSink("redis://list/x", {"password": "plain"}).settings.password == "plain"
    monkeypatch.delenv("DAGTEST_REDIS_SECRET")
    with pytest.raises(ValueError, match="DAGTEST_REDIS_SECRET"):
        StreamSource("redis://stream/x", {"password": "${DAGTEST_REDIS_SECRET}"})


def test_a_refused_password_is_an_error_not_an_outage(redis_keys) -> None:
    user = redis_keys.name("user")  # a user of this test's own, removed afterwards
    redis_keys.client.acl_setuser(user, enabled=True, passwords=["+right"], keys=[f"{redis_keys.prefix}*"],
                                  commands=["+@all"])
    name = redis_keys.name("auth")
    try:
        redis_keys.client.rpush(name, b'{"a": 1}')
        allowed = ListSource(f"redis://list/{name}", {**redis_keys.config, "username": user, "password": "right",
                                                      "consumer": "c"})
        allowed.open(None)
        assert read_all(allowed, 1) == [{"a": 1}]
        allowed.close()
        refused = ListSource(f"redis://list/{name}", {**redis_keys.config, "username": user, "password": "wrong",
                                                      "consumer": "c"})
        refused.open(None)
        with pytest.raises(Exception, match=r"(?i)auth|password"):
            refused.read_batch(10, 0.05)
        refused.close()
    finally:
        redis_keys.client.acl_deluser(user)


# -- lists ----------------------------------------------------------------------------------------------------
def pushed(redis_keys, what: str, n: int) -> tuple[str, list[dict[str, int]]]:
    name = redis_keys.name(what)
    records = [{"id": i} for i in range(n)]
    redis_keys.client.rpush(name, *[json.dumps(r) for r in records])
    return name, records


def list_source(redis_keys, name: str, consumer: str = "c1", **config: Any) -> ListSource:
    source = ListSource(f"redis://list/{name}", {**redis_keys.config, "consumer": consumer, **config})
    return source


def test_list_commit_removes_exactly_what_the_position_covers(redis_keys) -> None:
    name, records = pushed(redis_keys, "queue", 10)
    source = list_source(redis_keys, name)
    source.open(None)
    processing = redis_keys.client.lrange
    try:
        first = source.read_batch(3, 0.05)
        after_first = source.position()
        second = source.read_batch(4, 0.05)
        after_second = source.position()
        assert first + second == records[:7]
        assert source.backlog() == 3
        assert [json.loads(v) for v in processing(source.processing, 0, -1)] == records[:7]
        source.commit(after_first)
        source.commit(after_first)  # again: nothing more goes
        assert [json.loads(v) for v in processing(source.processing, 0, -1)] == records[3:7]
        source.commit(after_second)
        assert processing(source.processing, 0, -1) == []
        assert read_all(source, 3) == records[7:]
        assert source.status == "connected"
    finally:
        source.close()
    assert source.status == "closed"


@pytest.mark.parametrize("checkpointed", [False, True])
def test_list_crash_replays_the_processing_list_first(redis_keys, checkpointed: bool) -> None:
    name, records = pushed(redis_keys, "crash", 10)
    crashed = list_source(redis_keys, name)
    crashed.open(None)
    assert crashed.read_batch(2, 0.05) == records[:2]
    committed = crashed.position()
    assert crashed.read_batch(2, 0.05) == records[2:4]
    checkpoint = crashed.position()  # a checkpoint covered it, the commit had not run yet
    assert crashed.read_batch(2, 0.05) == records[4:6]
    crashed.commit(committed)
    crashed.link.client.close()  # the process dies: no close(), the processing list stays
    assert redis_keys.client.llen(crashed.processing) == 4
    again = list_source(redis_keys, name)  # the same consumer identity
    again.open(checkpoint if checkpointed else None)
    try:
        replayed = read_all(again, 8 - (2 if checkpointed else 0))
        assert replayed == records[4 if checkpointed else 2:]  # what the crash left first, in order, then the rest
        with pytest.raises(ConsumerInUse):  # the old incarnation, if it were still alive, is fenced off
            crashed.commit(crashed.position())
        again.commit(again.position())
        assert redis_keys.client.llen(again.processing) == 0
    finally:
        again.close()


def test_list_close_puts_uncommitted_items_back_in_order(redis_keys) -> None:
    name, records = pushed(redis_keys, "close", 10)
    source = list_source(redis_keys, name)
    source.open(None)
    assert source.read_batch(2, 0.05) == records[:2]
    covered = source.position()
    assert source.read_batch(3, 0.05) == records[2:5]
    source.commit(covered)
    source.close()
    assert [json.loads(v) for v in redis_keys.client.lrange(name, 0, -1)] == records[2:]
    assert not redis_keys.client.exists(source.processing, source.mark, source.landing)


def test_list_rejects_leave_the_processing_list_on_commit(redis_keys) -> None:
    name = redis_keys.name("bad")
    redis_keys.client.rpush(name, b'{"a": 1}', b"[1, 2]", b"not json", b'{"a": 2}')
    source = list_source(redis_keys, name)
    source.open(None)
    try:
        got = read_all(source, 4)
        assert got[0] == {"a": 1} and got[1] == [1, 2] and got[3] == {"a": 2}  # a non-map is the runtime's to reject
        assert isinstance(got[2], RejectedRecord) and "not json" in got[2].reason
        source.commit(source.position())
        assert redis_keys.client.llen(source.processing) == 0  # no poison pill left behind
    finally:
        source.close()


def test_a_blocking_read_returns_what_arrives_and_never_waits_past_its_timeout(redis_keys) -> None:
    name = redis_keys.name("block")
    source = list_source(redis_keys, name)
    source.open(None)
    try:
        started = time.monotonic()
        assert source.read_batch(10, 0.2) == []
        assert 0.15 <= time.monotonic() - started < 1.0
        threading.Timer(0.05, lambda: redis_keys.client.rpush(name, b'{"late": 1}')).start()
        got = read_all(source, 1)
        assert got == [{"late": 1}]
    finally:
        source.close()


# -- streams --------------------------------------------------------------------------------------------------
def stream_source(redis_keys, name: str, replica: int = 0, **config: Any) -> StreamSource:
    identity = {"_dag": "d", "_subscriber": "in", "_server": "srv", "_replica": replica}
    return StreamSource(f"redis://stream/{name}", {**redis_keys.config, **identity, **config})


def written(redis_keys, what: str, n: int, start: int = 0, **config: Any) -> tuple[str, list[dict[str, int]]]:
    name = redis_keys.name(what)
    records = [{"id": i} for i in range(start, start + n)]
    sink = StreamSink(f"redis://stream/{name}", {**redis_keys.config, **config})
    sink.open()
    sink.write_batch(records)
    sink.close()
    return name, records


def test_two_replicas_share_a_stream_each_entry_once(redis_keys) -> None:
    name, _ = written(redis_keys, "shared", 600)
    first, second = stream_source(redis_keys, name, 0), stream_source(redis_keys, name, 1)
    assert first.group == second.group == "dagserver.d.in" and first.consumer != second.consumer
    first.open(None)
    second.open(None)
    got: dict[int, list[Any]] = {0: [], 1: []}
    try:
        def both() -> bool:
            for i, source in enumerate((first, second)):
                got[i].extend(source.read_batch(37, 0.01))
                source.commit(source.position())
            return len(got[0]) + len(got[1]) >= 600

        assert wait_until(both, timeout=15)
        assert got[0] and got[1]
        assert sorted(r["id"] for r in got[0] + got[1]) == list(range(600))
        assert redis_keys.client.xpending(name, first.group)["pending"] == 0
    finally:
        first.close()
        second.close()


def test_a_restarted_stream_source_reads_its_own_pending_entries_first(redis_keys) -> None:
    name, records = written(redis_keys, "pending", 10)
    crashed = stream_source(redis_keys, name)
    crashed.open(None)
    assert crashed.read_batch(2, 0.05) == records[:2]
    crashed.commit(crashed.position())
    assert crashed.read_batch(4, 0.05) == records[2:6]
    crashed.link.client.close()  # dies with 4 entries pending
    _, more = written(redis_keys, "pending", 3, start=10)
    again = stream_source(redis_keys, name)
    again.open(None)
    try:
        assert read_all(again, 11) == records[2:] + more
        again.commit(again.position())
        assert redis_keys.client.xpending(name, again.group)["pending"] == 0
    finally:
        again.close()


def test_a_dead_consumers_idle_entries_are_claimed(redis_keys) -> None:
    name, records = written(redis_keys, "claim", 10)
    dead = stream_source(redis_keys, name, 0, claim_idle_ms=1000)  # replicas share their config
    dead.open(None)
    assert read_all(dead, 10) == records
    dead.link.client.close()
    alive = stream_source(redis_keys, name, 1, claim_idle_ms=1000)
    alive.open(None)
    try:
        assert alive.read_batch(100, 0.05) == []  # not idle long enough yet
        started = time.monotonic()
        claimed = read_all(alive, 10)
        assert claimed == records and time.monotonic() - started > 0.5
        alive.commit(alive.position())
        assert redis_keys.client.xpending(name, alive.group)["pending"] == 0
        _, later = written(redis_keys, "claim", 2, start=10)
        assert read_all(alive, 2) == later
    finally:
        alive.close()


def test_stream_entries_without_the_field_or_not_parsing_are_rejected_and_acked(redis_keys) -> None:
    name = redis_keys.name("bad")
    for fields in ({"body": b'{"a": 1}'}, {"other": b"x"}, {"body": b"{nope"}, {"body": b"[1]"}, {"body": b'{"a": 2}'}):
        redis_keys.client.xadd(name, fields)
    source = stream_source(redis_keys, name, field="body")
    source.open(None)
    try:
        got = read_all(source, 5)
        assert got[0] == {"a": 1} and got[3] == [1] and got[4] == {"a": 2}
        assert isinstance(got[1], RejectedRecord) and "no field 'body'" in got[1].reason
        assert got[1].raw == {"other": "x"}
        assert isinstance(got[2], RejectedRecord) and "not json" in got[2].reason
        source.commit(source.position())
        assert redis_keys.client.xpending(name, source.group)["pending"] == 0
    finally:
        source.close()


def test_stream_backlog_is_the_group_lag_measured_at_most_once_a_second(redis_keys) -> None:
    name, _ = written(redis_keys, "lag", 100)
    source = stream_source(redis_keys, name)
    source.open(None)
    try:
        assert len(source.read_batch(10, 0.05)) == 10
        calls = []
        measure = source.link.client.xinfo_groups
        source.link.client.xinfo_groups = lambda *a: calls.append(1) or measure(*a)  # counts the round trips
        assert source.backlog() == 90
        for _ in range(200):
            source.backlog()
        assert len(calls) == 1
        read_all(source, 90)
        assert wait_until(lambda: source.backlog() == 0, timeout=3)
    finally:
        source.close()


def test_stream_sink_trims_to_about_maxlen(redis_keys) -> None:
    name, _ = written(redis_keys, "trim", 3000, maxlen=100)
    assert 100 <= redis_keys.client.xlen(name) < 1000


# -- channels ---------------------------------------------------------------------------------------------------
def test_channel_overflow_is_dropped_and_counted(redis_keys) -> None:
    name = redis_keys.name("chan")
    source = ChannelSource(f"redis://channel/{name}", {**redis_keys.config, "max_buffer": 10})
    sink = ChannelSink(f"redis://channel/{name}", redis_keys.config)
    source.open(None)
    sink.open()
    try:
        assert source.subscribed.wait(5)
        sink.write_batch([{"n": i} for i in range(50)])
        assert wait_until(lambda: source.dropped == 40, timeout=5), source.dropped
        assert source.backlog() == 10
        assert source.read_batch(100, 0.05) == [{"n": i} for i in range(10)]
        sink.write_batch([{"n": 50}])
        assert read_all(source, 1) == [{"n": 50}] and source.dropped == 40
    finally:
        sink.close()
        source.close()
    assert source.status == "closed"


def test_a_channel_source_is_subscribed_once_open_returns(redis_keys) -> None:
    """Redis keeps nothing for a channel without subscribers: what is published right after open() must
    not be lost to a subscription still on its way (a DAG seen running must receive what comes)."""
    name = redis_keys.name("chan")
    source = ChannelSource(f"redis://channel/{name}", redis_keys.config)
    sink = ChannelSink(f"redis://channel/{name}", redis_keys.config)
    source.open(None)
    sink.open()
    try:
        assert source.subscribed.is_set()  # no wait: open() returned
        sink.write_batch([{"n": i} for i in range(20)])
        assert read_all(source, 20) == [{"n": i} for i in range(20)]
    finally:
        sink.close()
        source.close()


# -- keys ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_key_sink_sets_records_under_their_key_and_refuses_keyless_ones(redis_keys, fmt: str) -> None:
    sink = KeySink("redis://key", {**redis_keys.config, "format": fmt})
    sink.open()
    k1, k2 = redis_keys.name("k1"), redis_keys.name("k2")
    keyless = [{"v": 2}, {"__dagserver_key": [1], "v": 3}, {"__dagserver_key": None}, {"__dagserver_key": ""}]
    try:
        refused = sink.write_batch([{"__dagserver_key": k1, "v": 1}, *keyless, {"__dagserver_key": k2, "v": 4},
                                    {"__dagserver_key": k1, "v": 5}])
    finally:
        sink.close()
    assert [r.raw for r in refused or []] == keyless and all("__dagserver_key" in r.reason for r in refused or [])
    decode = json.loads if fmt == "json" else msgpack.unpackb
    assert decode(redis_keys.client.get(k1)) == {"v": 5} and decode(redis_keys.client.get(k2)) == {"v": 4}


# -- outages --------------------------------------------------------------------------------------------------------
def test_a_sink_retries_through_an_outage_and_gives_up_after_publish_timeout(redis_keys, redis_proxy) -> None:
    name = redis_keys.name("out")
    config = {"host": redis_proxy.host, "port": redis_proxy.port}
    sink = ListSink(f"redis://list/{name}", {**config, "publish_timeout": 1.5})
    sink.open()
    try:
        sink.write_batch([{"n": 0}])
        redis_proxy.cut()
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match="publish_timeout"):
            sink.write_batch([{"n": -1}])
        assert 1.4 < time.monotonic() - started < 6 and sink.status == "reconnecting"
        threading.Timer(1.0, redis_proxy.restore).start()
        patient = ListSink(f"redis://list/{name}", {**config, "publish_timeout": 20})
        patient.open()
        patient.write_batch([{"n": 1}])  # waits for the server to come back, then writes
        assert patient.status == "connected"
        patient.close()
    finally:
        sink.close()
    assert [json.loads(v) for v in redis_keys.client.lrange(name, 0, -1)] == [{"n": 0}, {"n": 1}]


@pytest.mark.parametrize("kind", ["list", "stream"])
def test_a_stalled_connection_is_noticed_and_reading_resumes(redis_keys, redis_proxy, kind: str) -> None:
    name = redis_keys.name("stall")
    push = (lambda i: redis_keys.client.rpush(name, json.dumps({"n": i}))) if kind == "list" else (
        lambda i: redis_keys.client.xadd(name, {"data": json.dumps({"n": i})}))
    config = {"host": redis_proxy.host, "port": redis_proxy.port, "socket_timeout": 1, "consumer": "c", "group": "g"}
    source = (ListSource if kind == "list" else StreamSource)(f"redis://{kind}/{name}", config)
    source.open(None)
    got: list[Any] = []
    try:
        push(0)
        got += read_all(source, 1)
        redis_proxy.stall()
        for i in range(1, 4):
            push(i)

        def reconnecting() -> bool:
            started = time.monotonic()
            got.extend(source.read_batch(10, 0.05))
            assert time.monotonic() - started < 2.5  # a read never hangs much past the socket timeout
            return source.status == "reconnecting"

        assert wait_until(reconnecting, timeout=10)
        redis_proxy.unstall()
        assert wait_until(lambda: got.extend(source.read_batch(10, 0.05)) or len(got) >= 4, timeout=20), got
        source.commit(source.position())
        assert sorted(r["n"] for r in got) == [0, 1, 2, 3] and source.status == "connected"
    finally:
        source.close()


def test_a_channel_subscriber_resubscribes_after_an_outage(redis_keys, redis_proxy) -> None:
    name = redis_keys.name("chan")
    source = ChannelSource(f"redis://channel/{name}", {"host": redis_proxy.host, "port": redis_proxy.port})
    sink = ChannelSink(f"redis://channel/{name}", redis_keys.config)
    source.open(None)
    sink.open()
    try:
        assert source.subscribed.wait(5)
        redis_proxy.cut()
        assert wait_until(lambda: source.status == "reconnecting", timeout=5)
        sink.write_batch([{"n": 0}])  # nobody listens: pub/sub keeps nothing, at-most-once
        redis_proxy.restore()
        assert wait_until(lambda: source.subscribed.is_set() and source.status == "connected", timeout=10)
        sink.write_batch([{"n": 1}])
        assert read_all(source, 1) == [{"n": 1}]
        assert source.read_batch(10, 0.1) == [] and source.dropped == 0
    finally:
        sink.close()
        source.close()


def test_a_hung_channel_connection_is_noticed_by_its_pings(redis_keys, redis_proxy) -> None:
    name = redis_keys.name("chan")
    source = ChannelSource(f"redis://channel/{name}", {"host": redis_proxy.host, "port": redis_proxy.port,
                                                       "socket_timeout": 1})
    source.open(None)
    try:
        assert source.subscribed.wait(5)
        redis_proxy.stall()
        assert wait_until(lambda: source.status == "reconnecting", timeout=6)
        redis_proxy.unstall()
        assert wait_until(lambda: source.subscribed.is_set() and source.status == "connected", timeout=10)
        assert wait_until(lambda: dict(redis_keys.client.pubsub_numsub(name)).get(name.encode()) == 1, timeout=5)
        redis_keys.client.publish(name, b'{"n": 1}')
        assert read_all(source, 1) == [{"n": 1}]
    finally:
        source.close()
