"""activemq:// against a real ActiveMQ broker (tests/support/activemq_broker.py): acks only on commit,
DAG round trips (queue and topic, JSON and msgpack), competing replicas, durable topic subscribers,
a silent broker, an unreachable one, a refused login, rejects dead-lettered. A broker crash and a
worker's kill -9 are in tests/supervisor/test_activemq_supervised.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from actors.runtime import DagRuntime
from adapters.activemq import ActiveMQSink, ActiveMQSource
from adapters.activemq.link import BrokerRefused
from adapters.base import RejectedRecord
from adapters.registry import check_uri, config_keys, is_shareable, open_sink, open_source
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.activemq_broker import ActiveMQBroker, Collector, require_activemq, send_raw
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def activemq_broker() -> Iterator[ActiveMQBroker]:
    """One broker for the module (java starts slowly): each test uses destinations of its own."""
    require_activemq()
    with ActiveMQBroker() as broker:
        yield broker


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def priced(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "price": float(i), "qty": 2} for i in range(start, start + n)]


def write(broker: ActiveMQBroker, uri: str, records: list[Any], chunk: int = 1000, **config: Any) -> None:
    sink = ActiveMQSink(uri, broker.config(**config))
    sink.open()
    try:
        for at in range(0, len(records), chunk):
            assert not sink.write_batch(records[at:at + chunk])
    finally:
        sink.close()


def drain(source: ActiveMQSource, at_least: int, timeout: float = 15.0) -> list[Any]:
    got: list[Any] = []
    wait_until(lambda: got.extend(source.read_batch(1000, 0.05)) or len(got) >= at_least, timeout=timeout, interval=0)
    return got


MARKER = {"marker": True}


def left_on(broker: ActiveMQBroker, queue: str) -> list[Any]:
    """What is still on ``queue``: what a new consumer gets before a marker sent now (FIFO), so an
    empty answer is proven by an arrival, not by a wait that found nothing."""
    uri = f"activemq://queue/{queue}"
    write(broker, uri, [MARKER])
    source = ActiveMQSource(uri, broker.config())
    source.open(None)
    try:
        got: list[Any] = []
        assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or MARKER in got, timeout=15, interval=0)
        return got[:got.index(MARKER)]
    finally:
        source.close()


def dag(name: str, source: dict[str, Any], publisher: dict[str, Any], *, every: int = 2, max_records: int = 200,
        calculator: bool = True, **extra: Any) -> Any:
    calc = {"name": "value", "type": "MultiplicationCalculator",
            "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}
    ingest: dict[str, Any] = {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"}
    nodes = [ingest, {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}]
    edges = [{"from_node": "ingest", "to_node": "publish"}]
    if calculator:
        nodes.insert(1, {"name": "compute", "calculator": "value"})
        edges = [{"from_node": "ingest", "to_node": "compute"}, {"from_node": "compute", "to_node": "publish"}]
    return load_dag_dict({
        "name": name, "checkpoint": {"every_epochs": every}, "epochs": {"max_records": max_records, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": source}], "publishers": [{"name": "out", "config": publisher}],
        "calculators": [calc] if calculator else [], "nodes": nodes, "edges": edges, **extra})


def endpoint(broker: ActiveMQBroker, key: str, uri: str, **config: Any) -> dict[str, Any]:
    return {key: uri, **broker.config(**config)}


def status(runtime: DagRuntime, role: str = "subscribers", name: str = "in") -> str:
    return runtime.details()[role][name]["status"]


# -- declaration ----------------------------------------------------------------------------------
def test_the_declaration_keys_shareability_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_uri("activemq://queue/orders", "source") is None
    assert "activemq://queue/NAME or activemq://topic/NAME" in (check_uri("activemq://orders", "source") or "")
    assert {"host", "port", "username", "password", "durable_name", "client_id", "max_depth", "format",
            "heartbeats", "prefetch"} <= set(config_keys("activemq://topic/x", "source") or ())
    assert {"persistent", "publish_timeout", "max_depth"} <= set(config_keys("activemq://queue/x", "sink") or ())
    assert is_shareable("activemq://queue/x") and not is_shareable("activemq://topic/x")
    monkeypatch.setenv("MQ_SECRET", "s3cret")
    source = open_source("activemq://topic/prices?port=61999", {"password": "${MQ_SECRET}", "username": "u",
                                                                  "durable_name": "keep", "_dag": "d",
                                                                  "_subscriber": "s", "_replica": 0, "_server": "x"})
    assert isinstance(source, ActiveMQSource)
    assert (source.where.port, source.where.password, source.where.destination) == (61999, "s3cret", "/topic/prices")
    assert source.client_id == "dagserver.d.s" and source.prefetch == 20_000
    assert ActiveMQSource("activemq://queue/q", {}).client_id is None  # only durable subscribers need one
    assert isinstance(open_sink("activemq://queue/out", {}), ActiveMQSink)
    with pytest.raises(ValueError, match="MQ_MISSING"):
        ActiveMQSink("activemq://queue/q", {"password": "${MQ_MISSING}"})
    with pytest.raises(ValueError, match="topic subscribers"):
        ActiveMQSource("activemq://queue/q", {"durable_name": "x"})
    with pytest.raises(ValueError, match="format"):
        ActiveMQSink("activemq://queue/q", {"format": "xml"})
    with pytest.raises(ValueError, match="persistent"):
        ActiveMQSink("activemq://queue/q", {"persistent": "maybe"})


# -- the adapter on its own -------------------------------------------------------------------------
def test_messages_are_acked_only_when_a_commit_covers_them(activemq_broker: ActiveMQBroker) -> None:
    queue = unique("acks")
    write(activemq_broker, f"activemq://queue/{queue}", priced(300))
    send_raw(activemq_broker, f"/queue/{queue}", [b"{not json", b"[1, 2]", b""])
    config = activemq_broker.config()
    source = ActiveMQSource(f"activemq://queue/{queue}", config)
    source.open(None)
    try:
        first: list[Any] = []
        assert wait_until(lambda: first.extend(source.read_batch(100 - len(first), 0.05)) or len(first) == 100)
        half = source.position()  # what a checkpoint covered
        assert half["count"] == len(first) == 100
        rest = drain(source, 203)
        got = first + rest
        assert got[:300] == priced(300) and len(got) == 303
        assert isinstance(got[300], RejectedRecord) and "not json" in got[300].reason
        assert got[301] == [1, 2]  # parses, but not a map: the runtime rejects it
        assert isinstance(got[302], RejectedRecord) and "empty" in got[302].reason
        assert source.position()["count"] == 303 and source.status == "connected"
        source.commit({"session": "an-earlier-one", "count": 10_000})  # a position from a checkpoint: nothing
        source.commit(half)
    finally:
        source.close()
    assert source.status == "closed"
    again = ActiveMQSource(f"activemq://queue/{queue}", config)
    again.open(None)
    try:  # what the commit did not cover comes again, rejects included; nothing it covered does
        redelivered = drain(again, 203)
        assert redelivered[:200] == priced(200, start=100) and len(redelivered) == 203
        assert redelivered[201] == [1, 2]
        again.commit(again.position())
    finally:
        again.close()
    assert left_on(activemq_broker, queue) == []  # the rejects were acknowledged with the rest


def test_msgpack_sink_rejects_what_it_cannot_encode(activemq_broker: ActiveMQBroker) -> None:
    queue = unique("packed")
    out = Collector(activemq_broker, f"/queue/{queue}", fmt="msgpack")
    sink = ActiveMQSink(f"activemq://queue/{queue}", activemq_broker.config(format="msgpack"))
    sink.open()
    try:
        records = [{"id": i, "blob": bytes([i]), "tags": ["a", i]} for i in range(20)]
        rejected = sink.write_batch([*records[:10], {"id": "huge", "n": 2**70}, *records[10:]])
        assert [r.raw["id"] for r in rejected or []] == ["huge"] and "msgpack" in rejected[0].reason
        assert out.until(lambda got: len(got) >= 20) and out.snapshot() == records
    finally:
        sink.close()
        out.close()


def test_a_wrong_password_fails_open_with_the_brokers_reason(activemq_broker: ActiveMQBroker,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQ_WRONG", "not-the-password")
    source = ActiveMQSource("activemq://queue/x", activemq_broker.config(password="${MQ_WRONG}"))
    with pytest.raises(BrokerRefused, match="password"):
        source.open(None)
    source.close()
    monkeypatch.setenv("MQ_RIGHT", activemq_broker.credentials["password"])
    sink = ActiveMQSink("activemq://queue/x", activemq_broker.config(password="${MQ_RIGHT}"))
    sink.open()
    assert sink.status == "connected"
    sink.close()


# -- through a DAG --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "fmt"), [("queue", "json"), ("topic", "msgpack")])
def test_round_trip_through_a_dag(activemq_broker: ActiveMQBroker, runtimes: list[DagRuntime], kind: str,
                                  fmt: str) -> None:
    source, target = unique("rt-in"), unique("rt-out")
    inputs = priced(3000)
    flow = dag(unique("roundtrip"), endpoint(activemq_broker, "source", f"activemq://{kind}/{source}", format=fmt),
               endpoint(activemq_broker, "destination", f"activemq://{kind}/{target}", format=fmt),
               every=3, max_records=300)
    reference = ReferenceEvaluator(flow)
    expected = [r for rec in inputs for _, r in reference.ingest("in", rec)]
    out = Collector(activemq_broker, f"/{kind}/{target}", fmt=fmt)
    runtime = DagRuntime(flow)
    runtimes.append(runtime)
    runtime.start()
    assert wait_until(lambda: status(runtime) == "connected", timeout=15)  # a topic delivers from then on
    write(activemq_broker, f"activemq://{kind}/{source}", inputs, format=fmt)
    try:
        assert out.until(lambda got: len(got) >= len(expected)), len(out.snapshot())
        assert out.snapshot() == expected
        assert runtime.details()["subscribers"]["in"]["records"] == 3000
        assert runtime.stop(timeout=15)  # the last checkpoint acks everything
    finally:
        out.close()
    if kind == "queue":
        assert left_on(activemq_broker, source) == []


def test_two_replicas_compete_for_one_queue(activemq_broker: ActiveMQBroker, runtimes: list[DagRuntime]) -> None:
    source, target = unique("shared-in"), unique("shared-out")
    out = Collector(activemq_broker, f"/queue/{target}")
    flow = dag(unique("replicas"), endpoint(activemq_broker, "source", f"activemq://queue/{source}", prefetch=150),
               endpoint(activemq_broker, "destination", f"activemq://queue/{target}"),
               every=2, max_records=50, replicas=2)
    replicas = [DagRuntime(flow, replica=i) for i in (0, 1)]
    runtimes.extend(replicas)
    for runtime in replicas:
        runtime.start()
    assert wait_until(lambda: all(status(r) == "connected" for r in replicas), timeout=15)
    write(activemq_broker, f"activemq://queue/{source}", priced(4000), chunk=200)
    try:
        assert out.until(lambda got: len(got) >= 4000), len(out.snapshot())
        assert sorted(int(r["value"] / 2) for r in out.snapshot()) == list(range(4000))  # each exactly once
        shares = [r.details()["subscribers"]["in"]["records"] for r in replicas]
        assert sum(shares) == 4000 and min(shares) > 0, shares
    finally:
        out.close()


def test_a_durable_topic_subscriber_gets_what_was_sent_while_it_was_down(
        activemq_broker: ActiveMQBroker, runtimes: list[DagRuntime]) -> None:
    topic, target = unique("news"), unique("news-out")
    out = Collector(activemq_broker, f"/queue/{target}")
    name = unique("durable")
    subscriber = endpoint(activemq_broker, "source", f"activemq://topic/{topic}", durable_name="keep")
    publisher = endpoint(activemq_broker, "destination", f"activemq://queue/{target}")
    first = DagRuntime(dag(name, subscriber, publisher))
    runtimes.append(first)
    first.start()
    assert wait_until(lambda: status(first) == "connected", timeout=15)
    try:
        write(activemq_broker, f"activemq://topic/{topic}", priced(100))
        assert out.until(lambda got: len(got) >= 100)
        assert first.stop(timeout=15)
        write(activemq_broker, f"activemq://topic/{topic}", priced(100, start=100))  # nobody is subscribed now
        again = DagRuntime(dag(name, subscriber, publisher))
        runtimes.append(again)
        again.start()
        assert out.until(lambda got: len(got) >= 200), len(out.snapshot())
        assert [int(r["value"] / 2) for r in out.snapshot()] == list(range(200))
    finally:
        out.close()


def test_a_second_durable_subscriber_waits_until_the_first_goes(activemq_broker: ActiveMQBroker) -> None:
    config = activemq_broker.config(durable_name="standby", client_id=unique("standby"))
    topic = f"activemq://topic/{unique('standby')}"
    first, second = ActiveMQSource(topic, config), ActiveMQSource(topic, config)
    first.open(None)
    try:
        second.open(None)  # the broker refuses a second connection with that client id, for now
        assert second.status == "reconnecting"
        first.close()
        assert wait_until(lambda: second.status == "connected", timeout=15)
        write(activemq_broker, topic, priced(3))
        assert drain(second, 3) == priced(3)
    finally:
        first.close()
        second.close()


def test_heartbeats_notice_a_broker_that_went_silent(activemq_broker: ActiveMQBroker) -> None:
    queue = unique("silent")
    with TcpProxy((activemq_broker.host, activemq_broker.port)) as proxy:
        config = {**activemq_broker.config(heartbeats=500), "host": proxy.host, "port": proxy.port}
        source = ActiveMQSource(f"activemq://queue/{queue}", config)
        source.open(None)
        try:
            write(activemq_broker, f"activemq://queue/{queue}", priced(10))
            assert len(drain(source, 10)) == 10
            proxy.stall()  # the connection stays open, nothing comes through
            assert wait_until(lambda: source.read_batch(10, 0.05) == [] and source.status == "reconnecting",
                              timeout=10)
            proxy.unstall()
            assert wait_until(lambda: source.status == "connected", timeout=15)
            redelivered = drain(source, 10)  # never acknowledged: delivered again on the new connection
            assert [r["id"] for r in redelivered] == list(range(10))
        finally:
            source.close()


def test_a_sink_that_cannot_deliver_raises_after_publish_timeout_then_reconnects(
        activemq_broker: ActiveMQBroker) -> None:
    with TcpProxy((activemq_broker.host, activemq_broker.port)) as proxy:
        config = {**activemq_broker.config(publish_timeout=1.5), "host": proxy.host, "port": proxy.port}
        sink = ActiveMQSink(f"activemq://queue/{unique('nowhere')}", config)
        sink.open()
        proxy.cut()
        with pytest.raises(ConnectionError, match=r"not accepted within 1\.5s"):
            sink.write_batch(priced(5))
        assert sink.status == "reconnecting"
        proxy.restore()  # idle, the sink reconnects by itself
        assert wait_until(lambda: sink.status == "connected", timeout=15)
        sink.close()


def test_a_sink_whose_broker_stops_reading_raises_instead_of_hanging(activemq_broker: ActiveMQBroker) -> None:
    """The connection stays open but the broker reads nothing: a batch larger than the socket buffers
    cannot be written. The write must fail within the link's write timeout (the sink reconnects),
    and close() must return, instead of both blocking until TCP gives up."""
    with TcpProxy((activemq_broker.host, activemq_broker.port)) as proxy:
        config = {**activemq_broker.config(publish_timeout=3), "host": proxy.host, "port": proxy.port}
        sink = ActiveMQSink(f"activemq://queue/{unique('stalled')}", config)
        sink.open()
        proxy.stall()
        big = [{"id": i, "pad": "x" * 1000} for i in range(20_000)]
        failures: list[BaseException] = []
        written = threading.Event()

        def write() -> None:
            try:
                sink.write_batch(big)
            except Exception as exc:  # the outcome is checked below
                failures.append(exc)
            finally:
                written.set()

        threading.Thread(target=write, daemon=True).start()
        assert written.wait(30), "write_batch still blocked 30 s after the broker stopped reading"
        assert [type(exc) for exc in failures] == [ConnectionError], failures
        closed = threading.Event()
        threading.Thread(target=lambda: (sink.close(), closed.set()), daemon=True).start()
        assert closed.wait(20), "close() still blocked"
        proxy.unstall()


def test_unparseable_messages_are_rejected_dead_lettered_and_acked(activemq_broker: ActiveMQBroker,
                                                                   runtimes: list[DagRuntime]) -> None:
    broker = activemq_broker
    source, target, letters = unique("bad-in"), unique("bad-out"), unique("bad-dl")
    out, dead = Collector(broker, f"/queue/{target}"), Collector(broker, f"/queue/{letters}")
    credentials = "&".join(f"{k}={v}" for k, v in broker.config().items())
    flow = dag(unique("rejects"), endpoint(broker, "source", f"activemq://queue/{source}"),
               endpoint(broker, "destination", f"activemq://queue/{target}"),
               dead_letter=f"activemq://queue/{letters}?{credentials}")
    send_raw(broker, f"/queue/{source}", [b'{"price": 1, "qty": 2}', b"garbage", b"[1, 2, 3]", b"42",
                                          b"\xff\xfe", b'{"price": 3, "qty": 2}'])
    runtime = DagRuntime(flow)
    runtimes.append(runtime)
    runtime.start()
    try:
        assert out.until(lambda got: len(got) >= 2)
        assert out.snapshot() == [{"value": 2.0}, {"value": 6.0}]
        assert wait_until(lambda: runtime.details()["subscribers"]["in"]["rejected"] == 4, timeout=10)
        assert runtime.stop(timeout=15)  # the last checkpoint writes the dead letters out and acks
        assert dead.until(lambda got: len(got) >= 4)
        letters_seen = dead.snapshot()
        assert {letter["subscriber"] for letter in letters_seen} == {"in"}
        assert "not json" in " | ".join(letter["error"] for letter in letters_seen)
        assert "[1, 2, 3]" in " ".join(letter["input"] for letter in letters_seen)
    finally:
        out.close()
        dead.close()
    assert left_on(broker, source) == []  # rejected messages were acknowledged like the others


def test_failed_acks_are_counted_never_raised_and_their_messages_come_again(activemq_broker: ActiveMQBroker) -> None:
    queue = unique("failed-acks")
    uri = f"activemq://queue/{queue}"
    with TcpProxy((activemq_broker.host, activemq_broker.port)) as proxy:
        config = {**activemq_broker.config(heartbeats=500), "host": proxy.host, "port": proxy.port}
        source = ActiveMQSource(uri, config)
        source.open(None)
        try:
            write(activemq_broker, uri, priced(10))
            assert len(drain(source, 10)) == 10
            proxy.cut()  # the connection the acks belong to is gone before the commit
            assert wait_until(lambda: source.status == "reconnecting", timeout=10)
            source.commit(source.position())  # never raises
            assert source.commit_errors == 1
            proxy.restore()
            assert wait_until(lambda: source.status == "connected", timeout=15)
            assert [r["id"] for r in drain(source, 10)] == list(range(10))  # not acknowledged: delivered again
            proxy.stall()
            source.commit(source.position())  # the acks go out into a connection that is about to die
            assert wait_until(lambda: source.status == "reconnecting", timeout=10)
            proxy.cut()  # what the stalled connection held is lost with it
            proxy.unstall()
            proxy.restore()
            assert wait_until(lambda: source.status == "connected", timeout=15)
            assert [r["id"] for r in drain(source, 10)] == list(range(10))  # lost in flight: delivered again
            source.commit(source.position())  # finds the last commit unconfirmed by its connection's end
            assert source.commit_errors == 2
        finally:
            source.close()
    assert left_on(activemq_broker, queue) == []  # the last commit's acks did arrive
    assert source.commit_errors == 2


def test_acks_the_broker_confirmed_before_the_connection_dropped_are_no_commit_error(
        activemq_broker: ActiveMQBroker) -> None:
    queue = unique("confirmed-acks")
    uri = f"activemq://queue/{queue}"
    with TcpProxy((activemq_broker.host, activemq_broker.port)) as proxy:
        config = {**activemq_broker.config(heartbeats=500), "host": proxy.host, "port": proxy.port}
        source = ActiveMQSource(uri, config)
        source.open(None)
        try:
            write(activemq_broker, uri, priced(10))
            assert len(drain(source, 10)) == 10
            source.commit(source.position())
            link = source._link
            assert link is not None and wait_until(lambda: bool(link._receipts), timeout=10)  # the broker confirmed
            proxy.cut()
            assert wait_until(lambda: source.status == "reconnecting", timeout=10)
            proxy.restore()
            assert wait_until(lambda: source.status == "connected", timeout=15)
            write(activemq_broker, uri, [MARKER])
            assert drain(source, 1) == [MARKER]  # nothing came again: the acks had landed
            source.commit(source.position())
            assert source.commit_errors == 0
        finally:
            source.close()
