"""redis:// endpoints running whole DAGs against the real Redis: round trips per kind and format, an outage
mid-stream through a TCP proxy, and bad input counted and dead-lettered while good records keep flowing."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import msgpack
import pytest

from actors.runtime import DagRuntime
from adapters.builtin.mem import get_queue
from adapters.redis.channels import ChannelSink
from adapters.redis.lists import ListSink
from adapters.redis.streams import StreamSink
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.waiting import wait_until

MULTIPLY = {"name": "value", "type": "MultiplicationCalculator",
            "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}
COPY = {"name": "copy", "type": "NullCalculator"}


def redis_dag(name: str, source: dict[str, Any], publisher: dict[str, Any], calculator: dict[str, Any] = MULTIPLY,
              every: int = 3, **extra: Any) -> Any:
    return load_dag_dict({
        "name": name,
        "checkpoint": {"every_epochs": every},
        "epochs": {"max_records": 200, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": source}],
        "publishers": [{"name": "out", "config": publisher}],
        "calculators": [calculator],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
            {"name": "compute", "calculator": calculator["name"]},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "compute"}, {"from_node": "compute", "to_node": "publish"}],
        **extra,
    })


def started(runtimes: list[DagRuntime], dag: Any) -> DagRuntime:
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    return runtime


def priced(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Records whose products are all distinct, so every one of them is published."""
    return [{"id": i, "price": float(i), "qty": 2} for i in range(start, start + n)]


def write(kind: str, name: str, records: list[dict[str, Any]], config: dict[str, Any]) -> None:
    sink = {"list": ListSink, "stream": StreamSink, "channel": ChannelSink}[kind](f"redis://{kind}/{name}", config)
    sink.open()
    try:
        sink.write_batch(records)
    finally:
        sink.close()


def written_out(client: Any, kind: str, name: str, fmt: str = "json") -> list[Any]:
    """What a list or a stream holds, decoded."""
    decode = json.loads if fmt == "json" else msgpack.unpackb
    if kind == "list":
        return [decode(v) for v in client.lrange(name, 0, -1)]
    return [decode(fields[b"data"]) for _, fields in client.xrange(name)]


def first_seen(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for value in values:
        text = json.dumps(value, sort_keys=True)
        if text not in seen:
            seen.add(text)
            out.append(value)
    return out


# -- round trips --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "out", "fmt"), [
    ("list", "list", "json"), ("list", "list", "msgpack"), ("stream", "stream", "json"),
    ("stream", "stream", "msgpack"), ("channel", "list", "json"), ("channel", "mem", "msgpack"),
])
def test_round_trip_through_a_dag(redis_keys, runtimes, kind: str, out: str, fmt: str) -> None:
    source, target = redis_keys.name("in"), redis_keys.name("out")
    config = {**redis_keys.config, "format": fmt}
    destination = f"mem://queue/{target}" if out == "mem" else f"redis://{out}/{target}"
    dag = redis_dag(redis_keys.name("dag"), {"source": f"redis://{kind}/{source}", **config},
                    {"destination": destination, **config})
    reference = ReferenceEvaluator(dag)
    inputs = priced(2000)
    expected = [r for rec in inputs for _, r in reference.ingest("in", rec)]
    assert len(expected) == 2000
    if kind != "channel":
        write(kind, source, inputs, config)  # waiting before the DAG starts
    runtime = started(runtimes, dag)
    if kind == "channel":  # pub/sub keeps nothing: publish once the DAG listens
        assert wait_until(lambda: dict(redis_keys.client.pubsub_numsub(source)).get(source.encode()) == 1)
        write(kind, source, inputs, config)
    got: list[Any] = []
    if out == "mem":
        queue = get_queue(target)
        assert wait_until(lambda: got.extend(queue.get(1000, 0.05)) or len(got) >= 2000, timeout=30), len(got)
    else:
        assert wait_until(lambda: len(written_out(redis_keys.client, out, target, fmt)) >= 2000, timeout=30)
        got = written_out(redis_keys.client, out, target, fmt)
    assert got == expected
    details = runtime.details()["subscribers"]["in"]
    assert details["records"] == 2000 and details["rejected"] == 0 and details["status"] == "connected"
    assert runtime.stop(timeout=15)
    if kind == "list":  # the stop's checkpoint committed everything: nothing left in processing
        assert not redis_keys.client.keys(f"{source}:processing:*")
    if kind == "stream":
        assert redis_keys.client.xpending(source, f"dagserver.{dag.name}.in")["pending"] == 0


@pytest.mark.parametrize(("kind", "fmt"), [("list", "json"), ("stream", "msgpack")])
def test_records_set_under_their_key(redis_keys, runtimes, kind: str, fmt: str) -> None:
    source = redis_keys.name("in")
    config = {**redis_keys.config, "format": fmt}
    rename = {"name": "keyed", "type": "AttributeNameChangeCalculator",
              "config": {"name_mapping": {"id": "__dagserver_key"}}}
    dag = redis_dag(redis_keys.name("dag"), {"source": f"redis://{kind}/{source}", **config},
                    {"destination": "redis://key", **config}, calculator=rename)
    keys = [redis_keys.name(f"k{i}") for i in range(300)]
    write(kind, source, [{"id": key, "price": i, "tags": ["a", i]} for i, key in enumerate(keys)], config)
    started(runtimes, dag)
    assert wait_until(lambda: redis_keys.client.exists(*keys) == len(keys), timeout=30)
    decode = json.loads if fmt == "json" else msgpack.unpackb
    assert [decode(v) for v in redis_keys.client.mget(keys)] == [{"price": i, "tags": ["a", i]} for i in range(300)]


# -- an outage ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["list", "stream"])
def test_an_outage_mid_stream_shows_reconnecting_and_loses_nothing(redis_keys, redis_proxy, runtimes,
                                                                    kind: str) -> None:
    source, target = redis_keys.name("in"), redis_keys.name("out")
    through = {"host": redis_proxy.host, "port": redis_proxy.port, "socket_timeout": 2}
    dag = redis_dag(redis_keys.name("dag"), {"source": f"redis://{kind}/{source}", **through},
                    {"destination": f"redis://{kind}/{target}", **through}, calculator=COPY)
    runtime = started(runtimes, dag)
    total, stop = 3000, threading.Event()

    def feed() -> None:  # about 5 s of input, written straight to the server, through the outage
        for start in range(0, total, 30):
            write(kind, source, [{"id": i} for i in range(start, start + 30)], redis_keys.config)
            if stop.wait(0.05):
                return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    def ids() -> list[int]:
        return [r["id"] for r in written_out(redis_keys.client, kind, target)]

    def status(role: str) -> str:
        side = runtime.details()[role]
        return side["in" if role == "subscribers" else "out"]["status"]

    try:
        assert wait_until(lambda: len(ids()) >= 300, timeout=20)
        redis_proxy.cut()
        cut_at = time.monotonic()
        assert wait_until(lambda: status("subscribers") == "reconnecting", timeout=10), status("subscribers")
        assert wait_until(lambda: time.monotonic() - cut_at >= 3, timeout=5)
        assert len(ids()) < total  # the outage did hold records back
        redis_proxy.restore()
        feeder.join(30)
        assert wait_until(lambda: set(ids()) == set(range(total)), timeout=60), total - len(set(ids()))
        assert first_seen(ids()) == list(range(total))  # in order; a repeat is at-least-once's due
        assert wait_until(lambda: status("subscribers") == status("publishers") == "connected", timeout=15)
        assert runtime.details()["subscribers"]["in"]["records"] >= total
    finally:
        stop.set()
        redis_proxy.restore()


# -- bad input ----------------------------------------------------------------------------------------------------
def test_bad_stream_entries_and_keyless_records_are_counted_and_dead_lettered(redis_keys, runtimes) -> None:
    source, letters = redis_keys.name("in"), redis_keys.name("dead")
    host, port = redis_keys.host, redis_keys.port
    dag = redis_dag(redis_keys.name("dag"), {"source": f"redis://stream/{source}", **redis_keys.config},
                    {"destination": "redis://key", **redis_keys.config}, calculator=COPY,
                    dead_letter=f"redis://list/{letters}?host={host}&port={port}")
    k1, k2, k3 = (redis_keys.name(k) for k in ("k1", "k2", "k3"))
    for fields in ({"data": json.dumps({"__dagserver_key": k1, "v": 1})}, {"data": b"{nope"}, {"other": b"x"},
                   {"data": json.dumps({"v": 2})}, {"data": b"[1, 2]"},
                   {"data": json.dumps({"__dagserver_key": k2, "v": 3})}):
        redis_keys.client.xadd(source, fields)
    runtime = started(runtimes, dag)
    assert wait_until(lambda: redis_keys.client.exists(k1, k2) == 2, timeout=20)
    assert wait_until(lambda: runtime.details()["publishers"]["out"]["errors"] == 1, timeout=10)
    assert runtime.details()["subscribers"]["in"]["rejected"] == 3
    redis_keys.client.xadd(source, {"data": json.dumps({"__dagserver_key": k3, "v": 4})})  # later ones still flow
    assert wait_until(lambda: redis_keys.client.get(k3) == b'{"v":4}', timeout=10)
    assert runtime.stop(timeout=15)
    assert runtime.details()["dead_letters"] == 4
    dead = [json.loads(v) for v in redis_keys.client.lrange(letters, 0, -1)]
    assert len(dead) == 4
    reasons = " | ".join(letter["error"] for letter in dead)
    assert "not json" in reasons and "no field 'data'" in reasons and "__dagserver_key" in reasons
    assert [letter.get("publisher") for letter in dead].count("out") == 1
    assert redis_keys.client.xpending(source, f"dagserver.{dag.name}.in")["pending"] == 0  # all acknowledged


def test_a_list_item_that_is_an_array_is_rejected_once_and_leaves_the_queue(redis_keys, runtimes) -> None:
    source, target = redis_keys.name("in"), redis_keys.name("out")
    redis_keys.client.rpush(source, json.dumps({"price": 1, "qty": 2}), b"[1, 2, 3]", b"not json",
                            json.dumps({"price": 3, "qty": 2}))
    dag = redis_dag(redis_keys.name("dag"), {"source": f"redis://list/{source}", **redis_keys.config},
                    {"destination": f"redis://list/{target}", **redis_keys.config}, every=1)
    runtime = started(runtimes, dag)
    assert wait_until(lambda: redis_keys.client.llen(target) == 2, timeout=20)
    assert wait_until(lambda: runtime.details()["subscribers"]["in"]["rejected"] == 2, timeout=10)
    redis_keys.client.rpush(source, json.dumps({"price": 5, "qty": 2}))
    assert wait_until(lambda: redis_keys.client.llen(target) == 3, timeout=10)
    assert written_out(redis_keys.client, "list", target) == [{"value": 2.0}, {"value": 6.0}, {"value": 10.0}]
    # once its epoch commits the array is gone from the processing list: no poison pill read again and again
    processing = redis_keys.client.keys(f"{source}:processing:*")
    assert processing and wait_until(lambda: all(redis_keys.client.llen(k) == 0 for k in processing
                                                 if not k.endswith((b":mark", b":alive"))), timeout=10)
    assert runtime.details()["subscribers"]["in"]["rejected"] == 2
    assert runtime.stop(timeout=15)
    assert redis_keys.client.llen(source) == 0
