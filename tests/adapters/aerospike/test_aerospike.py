"""aerospike:// against a fake of the client (tests/support/fake_aerospike.py): no Aerospike server can
run here. The fake stands in for ``aerospike.client`` only; the exception classes, the key digests,
the policy constants and the filter expressions are the real client's.

Covered: URI and key validation, the sink through a DAG (bins, ttl, stored key, rejects dead-lettered),
an outage on either side, the source picking up new and updated records, and positions that survive
a restart (records sharing one last-update time, a window boundary, a checkpoint mid-window).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.checkpoint import checkpoint_path, read_checkpoint
from actors.restart import RestartPolicy
from actors.runtime import FAILED, RUNNING, DagRuntime
from adapters import aerospike as aerospike_adapter
from adapters import registry
from adapters.aerospike import AerospikeSink, AerospikeSource
from adapters.aerospike import client as aerospike_client
from adapters.builtin.mem import MemSink, get_queue, mem_drain, mem_put
from adapters.registry import AdapterNotAvailable, check_uri, config_keys, is_shareable
from graphs.loader import check_dag_dict, load_dag_dict
from tests.support.waiting import wait_until

aerospike = pytest.importorskip("aerospike", reason="pip install 'dagserver[aerospike]'")
from tests.support.fake_aerospike import FakeClient, FakeCluster, error  # noqa: E402 - needs the client library

NS, SET = "test", "prices"
URI = f"aerospike://{NS}/{SET}"
FAST = {"poll_interval": 0.05, "settle": 0.05}  # the fake's clock is this host's: no skew to allow for
MS = 1_000_000


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster()
    monkeypatch.setattr(aerospike_client, "new_client", fake.client)
    return fake


def put_records(cluster: FakeCluster, records: dict[Any, dict[str, Any]]) -> None:
    """Write ``{user key: bins}`` as another application would, storing the key."""
    client = cluster.client({"hosts": [("fake", 3000)], "policies": {"write": {"key": aerospike.POLICY_KEY_SEND}}})
    for key, bins in records.items():
        client.put((NS, SET, key), bins)


def digest(key: Any) -> bytes:
    return bytes(aerospike.calc_digest(NS, SET, key))


def frozen_at(cluster: FakeCluster, lut: int) -> None:
    cluster.clock = lambda: lut


def in_the_past(seconds: float) -> int:
    return (time.time_ns() - int(seconds * 1e9)) // MS * MS


def dag(name: str, subscriber: dict[str, Any], publisher: dict[str, Any], calculator: dict | None = None,
        **extra: Any) -> Any:
    nodes: list[dict[str, Any]] = [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                                   {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}]
    edges = [{"from_node": "ingest", "to_node": "publish"}]
    if calculator:
        nodes.insert(1, {"name": "compute", "calculator": calculator["name"]})
        edges = [{"from_node": "ingest", "to_node": "compute"}, {"from_node": "compute", "to_node": "publish"}]
    return {"name": name, "subscribers": [{"name": "in", "config": subscriber}],
            "publishers": [{"name": "out", "config": publisher}], "calculators": [calculator] if calculator else [],
            "nodes": nodes, "edges": edges, **extra}


KEYED = {"name": "keyed", "type": "AttributeNameChangeCalculator",
         "config": {"name_mapping": {"id": "__dagserver_key"}}}  # the record's id becomes its key


def settled(runtime: DagRuntime, out: Collector, counted_before: int = 0) -> bool:
    """Everything the subscriber read so far was published and collected (each record passes unchanged);
    ``counted_before``: what its counters resumed from (a checkpoint's)."""
    return runtime.details()["subscribers"]["in"]["records"] == counted_before + len(out.got)


class Collector:
    """Takes what a mem queue receives."""

    def __init__(self, name: str) -> None:
        self.queue, self.got = get_queue(name), []

    def until(self, count: int, timeout: float = 20) -> bool:
        return wait_until(lambda: self.got.extend(self.queue.get(1000, 0.02)) or len(self.got) >= count, timeout)


# -- declaration and validation -------------------------------------------------------------------
def test_uri_shape_keys_and_sharing_are_declared() -> None:
    assert check_uri(URI, "source") is None and check_uri(URI, "destination") is None
    for bad in ("aerospike://test", "aerospike://test/prices/more", "aerospike://"):
        assert "must look like aerospike://NAMESPACE/SET" in (check_uri(bad, "source") or ""), bad
    assert "poll_interval" in (check_uri(f"{URI}?poll_interval=0", "source") or "")
    assert {"hosts", "key_attribute", "poll_interval", "settle", "max_depth", "username", "password"} <= set(
        config_keys(URI, "source") or ())
    assert "ttl" not in (config_keys(URI, "source") or ()) and "poll_interval" not in (config_keys(URI, "sink") or ())
    assert {"ttl", "publish_timeout", "key_attribute"} <= set(config_keys(URI, "sink") or ())
    assert not is_shareable(URI)


def test_unknown_keys_get_a_did_you_mean_and_replicas_are_refused() -> None:
    spec = dag("v", {"source": URI, "poll_intervall": 1}, {"destination": URI, "tll": 60})
    _, problems = check_dag_dict(spec, uris=registry)
    messages = " | ".join(map(str, problems))
    assert "did you mean 'poll_interval'?" in messages and "did you mean 'ttl'?" in messages, messages
    model, problems = check_dag_dict(dag("v", {"source": URI, **FAST}, {"destination": URI, "ttl": 60}), uris=registry)
    assert problems == [] and model is not None
    _, problems = check_dag_dict({**dag("v", {"source": URI}, {"destination": "mem://queue/x"}), "replicas": 2},
                                 uris=registry)
    assert any("cannot be shared" in str(p) for p in problems), problems


def test_bad_values_fail_at_construction_and_secrets_come_from_the_environment(
        cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="hosts"):
        AerospikeSink(URI, {"hosts": [["h"]]})
    with pytest.raises(ValueError, match="ttl"):
        AerospikeSink(URI, {"ttl": -5})
    with pytest.raises(ValueError, match="settle"):
        AerospikeSource(URI, {"settle": -1})
    with pytest.raises(ValueError, match="AS_NOT_SET_ANYWHERE"):
        AerospikeSink(URI, {"username": "u", "password": "${AS_NOT_SET_ANYWHERE}"})
    monkeypatch.setenv("AS_TEST_PASSWORD", "s3cret")
    sink = AerospikeSink(URI, {"hosts": "h1:3100,h2", "username": "writer", "password": "${AS_TEST_PASSWORD}"})
    sink.open()
    sink.close()
    config = cluster.configs[-1]
    assert config["hosts"] == [("h1", 3100), ("h2", 3000)]
    assert (config["user"], config["password"]) == ("writer", "s3cret")


def test_a_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aerospike", None)  # what an absent package looks like to import
    with pytest.raises(AdapterNotAvailable, match=r"pip install 'dagserver\[aerospike\]'"):
        AerospikeSink(URI, {}).open()
    with pytest.raises(AdapterNotAvailable, match=r"pip install 'dagserver\[aerospike\]'"):
        AerospikeSource(URI, {}).open(None)


# -- sink ---------------------------------------------------------------------------------------------
def test_sink_round_trip_through_a_dag_with_rejects_dead_lettered(cluster: FakeCluster, runtimes: list) -> None:
    model = load_dag_dict(dag("sinking", {"source": "mem://queue/in"}, {"destination": URI, "ttl": 120}, KEYED,
                              checkpoint={"every_epochs": 1}, dead_letter="mem://queue/letters"))
    runtime = DagRuntime(model)
    runtimes.append(runtime)
    runtime.start()
    records = [{"id": f"p{i}", "price": i / 2, "tags": ["a", i], "shape": {"w": i, "h": [1, 2]}, "note": None}
               for i in range(50)]
    unkeyed = [{"price": 1.0}, {"price": 2.0}]
    long_bin = {"id": "p-long", "a_bin_name_over_15_bytes": 1}
    mem_put("in", records[:25] + unkeyed + [long_bin] + records[25:])
    assert wait_until(lambda: len(cluster.records(NS, SET)) >= 50, timeout=20)
    stored = cluster.records(NS, SET)
    assert len(stored) == 50
    for record in records:
        got = stored[digest(record["id"])]
        # the bins: the record without its key attribute and without None values
        assert got.bins == {"price": record["price"], "tags": record["tags"], "shape": record["shape"]}
        assert (got.user_key, got.ttl, got.gen) == (record["id"], 120, 1)  # key stored (POLICY_KEY_SEND), ttl passed
    letters = Collector("letters")
    assert letters.until(3)
    assert sorted(letter["error"] for letter in letters.got) == [
        "bin names longer than 15 bytes: a_bin_name_over_15_bytes",
        "record has no '__dagserver_key' attribute to key it by",
        "record has no '__dagserver_key' attribute to key it by"]
    assert {letter["publisher"] for letter in letters.got} == {"out"}
    assert runtime.stats.publishers["out"].errors == 3 and runtime.stats.dead_letters == 3
    assert runtime.state == RUNNING and runtime.details()["publishers"]["out"]["status"] == "connected"
    write_policy = cluster.configs[-1]["policies"]["write"]
    assert write_policy == {"key": aerospike.POLICY_KEY_SEND, "exists": aerospike.POLICY_EXISTS_CREATE_OR_REPLACE,
                            "ttl": 120}
    mem_put("in", [{"id": "p0", "price": 99.0}])  # a newer value replaces the record: no stale bins left
    assert wait_until(lambda: cluster.records(NS, SET)[digest("p0")].bins == {"price": 99.0}, timeout=10)


def test_sink_outage_shows_reconnecting_and_then_delivers_everything(cluster: FakeCluster, runtimes: list) -> None:
    model = load_dag_dict(dag("outage_out", {"source": "mem://queue/in"}, {"destination": URI}, KEYED))
    runtime = DagRuntime(model)
    runtimes.append(runtime)
    runtime.start()

    def status() -> str:
        return runtime.details()["publishers"]["out"]["status"]

    mem_put("in", [{"id": i, "n": i} for i in range(100)])
    assert wait_until(lambda: len(cluster.records(NS, SET)) == 100, timeout=20)
    cluster.down = True
    mem_put("in", [{"id": i, "n": i} for i in range(100, 200)])
    assert wait_until(lambda: status() == "reconnecting", timeout=10), status()
    cluster.down = False
    assert wait_until(lambda: len(cluster.records(NS, SET)) == 200, timeout=20)
    assert wait_until(lambda: status() == "connected", timeout=10), status()
    assert {r.bins["n"] for r in cluster.records(NS, SET).values()} == set(range(200))
    assert runtime.state == RUNNING and runtime.stats.publishers["out"].errors == 0


def test_sink_retries_until_publish_timeout_then_raises(cluster: FakeCluster) -> None:
    cluster.down = True
    sink = AerospikeSink(URI, {"publish_timeout": 0.6})
    sink.open()  # an unreachable cluster is not a failure to open
    assert sink.status == "reconnecting"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="publish_timeout"):
        sink.write_batch([{"__dagserver_key": 1, "v": 1}])
    assert 0.5 < time.monotonic() - started < 3
    threading.Timer(0.3, lambda: setattr(cluster, "down", False)).start()
    assert sink.write_batch([{"__dagserver_key": 1, "v": 1}]) == []  # waits out the outage
    assert sink.status == "connected" and cluster.records(NS, SET)[digest(1)].bins == {"v": 1}
    sink.close()
    assert sink.status == "closed"


def test_records_the_client_refuses_are_returned_and_the_rest_written(cluster: FakeCluster) -> None:
    sink = AerospikeSink(URI, {"key_attribute": "id"})
    sink.open()
    odd = {"id": "b", "members": {1, 2}}  # no such type on the server: the client raises ParamError
    refused = sink.write_batch([{"id": "a", "v": 1}, odd, {"id": 2.5, "v": 3}, {"id": True, "v": 4},
                                {"id": b"\x00\x01", "v": 5}, {"id": "only-a-key"}])
    assert [(r.raw, r.reason.split(":")[0]) for r in refused] == [
        (odd, "aerospike refused the record"), ({"id": 2.5, "v": 3}, "key 2.5 in 'id' is not a string, a 64-bit "
                                                "integer or bytes"),
        ({"id": True, "v": 4}, "key True in 'id' is not a string, a 64-bit integer or bytes"),
        ({"id": "only-a-key"}, "nothing to store besides the key")]
    assert "ParamError" in refused[0].reason
    stored = cluster.records(NS, SET)
    assert {r.user_key if isinstance(r.user_key, str) else bytes(r.user_key) for r in stored.values()} == {
        "a", b"\x00\x01"}
    assert sink.status == "connected"
    sink.close()


# -- source -------------------------------------------------------------------------------------------
def read_until(source: AerospikeSource, count: int, got: list, batch: int = 100, timeout: float = 10) -> bool:
    return wait_until(lambda: got.extend(source.read_batch(batch, 0.02)) or len(got) >= count, timeout)


def test_source_picks_up_new_and_updated_records_through_a_dag(cluster: FakeCluster, runtimes: list) -> None:
    put_records(cluster, {f"k{i}": {"n": i} for i in range(3)})
    model = load_dag_dict(dag("reading", {"source": URI, **FAST}, {"destination": "mem://queue/out"}))
    runtime = DagRuntime(model)
    runtimes.append(runtime)
    runtime.start()
    out = Collector("out")
    assert out.until(3)
    put_records(cluster, {f"k{i}": {"n": i, "tags": ["x"]} for i in range(3, 8)})  # after the start
    assert out.until(8)
    put_records(cluster, {"k0": {"n": 100}})  # an update is read again, with its new bins
    assert out.until(9)
    assert sorted(out.got[:3], key=str) == [{"n": i, "__dagserver_key": f"k{i}"} for i in range(3)]
    assert sorted(out.got[3:8], key=lambda r: r["n"]) == [
        {"n": i, "tags": ["x"], "__dagserver_key": f"k{i}"} for i in range(3, 8)]
    assert out.got[8] == {"n": 100, "__dagserver_key": "k0"}
    details = runtime.details()["subscribers"]["in"]
    assert details["status"] == "connected" and details["records"] == 9


def test_positions_survive_restarts_with_ties_and_at_a_window_boundary(cluster: FakeCluster) -> None:
    frozen_at(cluster, in_the_past(5))
    put_records(cluster, {f"t{i}": {"i": i} for i in range(5)})  # five records, one last-update time
    first = AerospikeSource(URI, FAST)
    first.open(None)
    got: list[dict] = []
    assert read_until(first, 2, got, batch=1)
    mid = first.position()
    # mid-window: the tied ones go out in digest order, and the position names the last one out
    assert mid["until"] > mid["lut"] and mid["after"] == max(digest(r["__dagserver_key"]) for r in got)
    first.close()  # what it had fetched beyond the two is forgotten
    second = AerospikeSource(URI, FAST)
    second.open(mid)
    rest: list[dict] = []
    assert read_until(second, 3, rest)
    assert wait_until(lambda: rest.extend(second.read_batch(10, 0.02)) or "until" not in second.position())
    assert sorted(r["i"] for r in got + rest) == list(range(5))  # none twice, none lost
    boundary = second.position()  # {"lut": B}: every record updated before B was emitted
    second.close()
    frozen_at(cluster, boundary["lut"])  # a record updated exactly at B belongs to the next window
    put_records(cluster, {"edge": {"i": 5}})
    third = AerospikeSource(URI, FAST)
    third.open(boundary)
    edge: list[dict] = []
    assert read_until(third, 1, edge)
    assert wait_until(lambda: edge.extend(third.read_batch(10, 0.02)) or "until" not in third.position())
    assert edge == [{"i": 5, "__dagserver_key": "edge"}]
    after = third.position()
    assert after["lut"] > boundary["lut"]
    third.close()
    fourth = AerospikeSource(URI, FAST)
    fourth.open(after)
    again: list[dict] = []
    assert wait_until(lambda: again.extend(fourth.read_batch(10, 0.02)) or fourth.position()["lut"] > after["lut"])
    assert again == []  # a later window ran: nothing read before the restart came back
    started = time.monotonic()
    assert fourth.read_batch(10, 0.2) == []
    assert time.monotonic() - started < 0.5  # read_batch waits at most about its timeout
    fourth.close()
    assert fourth.status == "closed"


FIRST_SCAN = 60_000


def read_exactly(source: AerospikeSource, count: int, sizes: list[int]) -> list[dict]:
    """``count`` records from ``source`` (batches of at most 1,000), noting the position's size after each."""
    got: list[dict] = []

    def more() -> bool:
        got.extend(source.read_batch(min(1000, count - len(got)), 0.05))
        sizes.append(len(msgpack.packb(source.position(), use_bin_type=True)))
        return len(got) >= count

    assert wait_until(more, timeout=120)
    return got


@pytest.mark.parametrize("restart_after", ["chunk", 25_123, "window"])
def test_a_first_scan_keeps_its_position_small_and_a_restart_loses_and_repeats_nothing(
        cluster: FakeCluster, restart_after: int | str) -> None:
    """60,000 records in one first window (three last-update times shared by 20,000 each): the position
    stays a few dozen bytes whatever was emitted of the window (it grew with every record emitted:
    1.3 MB at the end), and a restart from it, at a chunk's end, within one or at the window's end,
    emits every record exactly once."""
    base = in_the_past(5)
    for tie in range(3):
        frozen_at(cluster, base + tie * MS)
        put_records(cluster, {f"r{tie}-{i}": {"i": i} for i in range(FIRST_SCAN // 3)})
    chunk = getattr(aerospike_adapter, "WINDOW_CHUNK", 10_000)
    stop = {"chunk": chunk, "window": FIRST_SCAN}.get(restart_after, restart_after)  # type: ignore[call-overload]
    sizes: list[int] = []
    first = AerospikeSource(URI, FAST)
    first.open(None)
    got = read_exactly(first, stop, sizes)
    mid = first.position()
    first.close()
    second = AerospikeSource(URI, FAST)
    second.open(mid)
    rest = read_exactly(second, FIRST_SCAN - stop, sizes)
    assert wait_until(lambda: rest.extend(second.read_batch(1000, 0.02)) or "until" not in second.position())
    second.close()
    assert max(sizes) < 100, max(sizes)  # bounded: one cursor, not one digest per record emitted
    keys = [r["__dagserver_key"] for r in got + rest]
    assert len(keys) == len(set(keys)) == FIRST_SCAN  # none twice, none lost


def test_an_error_that_is_not_an_outage_fails_the_read(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_namespace(self: FakeClient, namespace: str, set: str | None = None) -> Any:
        raise error(aerospike.exception.NamespaceNotFound, f"Namespace not found: {namespace}")

    monkeypatch.setattr(FakeClient, "query", no_such_namespace)
    source = AerospikeSource(URI, FAST)
    source.open(None)
    failure: list[BaseException] = []

    def failed() -> bool:
        try:
            source.read_batch(10, 0.02)
        except RuntimeError as exc:
            failure.append(exc)
        return bool(failure)

    assert wait_until(failed, timeout=10)
    assert "NamespaceNotFound: Namespace not found: test" in str(failure[0])
    source.close()


class CrashingSink(MemSink):
    """A mem sink that fails for good once ``limit`` records were written (a crash mid-stream), as soon
    as the source has committed a position inside a last-update-time window (checkpoints are written
    and committed on a thread of their own, so a crash could otherwise come before any commit)."""

    def __init__(self, uri: str, config: Mapping[str, Any], limit: int) -> None:
        super().__init__(uri, config)
        self.limit, self.written = limit, 0

    def write_batch(self, records: list[dict]) -> None:
        if self.written + len(records) > self.limit:
            wait_until(lambda: any("until" in c for source in RecordingSource.made for c in source.commits),
                       timeout=10)
            raise ConnectionError("the sink crashed")
        super().write_batch(records)
        self.written += len(records)


class RecordingSource(AerospikeSource):
    """Keeps the position it was opened at and the positions it was told to commit."""

    made: list[RecordingSource] = []

    def open(self, position: Any | None) -> None:
        self.opened_at, self.commits = position, []
        RecordingSource.made.append(self)
        super().open(position)

    def commit(self, position: Any) -> None:
        self.commits.append(position)


def test_a_restart_from_a_checkpoint_reemits_nothing_committed_and_skips_nothing(
        cluster: FakeCluster, runtimes: list, tmp_path: Path) -> None:
    base = in_the_past(5)
    keys: dict[str, int] = {}  # user key -> last-update time: three groups of 100 records sharing one each
    for group in range(3):
        frozen_at(cluster, base + group * MS)
        batch = {f"g{group}-{i}": {"g": group, "i": i} for i in range(100)}
        put_records(cluster, batch)
        keys.update(dict.fromkeys(batch, base + group * MS))
    spec = dag("restarting", {"source": URI, **FAST}, {"destination": "mem://queue/out"},
               checkpoint={"every_epochs": 1}, epochs={"max_records": 20, "max_inflight": 2})
    RecordingSource.made = []
    crashing = DagRuntime(load_dag_dict(spec), state_dir=tmp_path, source_factory=RecordingSource,
                          sink_factory=lambda uri, config: CrashingSink(uri, config, limit=130),
                          restart=RestartPolicy(max_restarts=0))
    runtimes.append(crashing)
    crashing.start()
    assert wait_until(lambda: crashing.state == FAILED, timeout=30), crashing.reason
    crashing.stop()  # waits for the failed incarnation's teardown: a checkpoint write in hand is finished
    assert RecordingSource.made[0].status == "closed"
    first_run = [r["__dagserver_key"] for r in mem_drain("out")]
    assert 0 < len(first_run) <= 130
    committed = RecordingSource.made[0].commits[-1]
    assert "until" in committed  # the checkpoint fell inside the window: the digest cursor was needed

    counters = read_checkpoint(checkpoint_path(tmp_path, "restarting"))["counters"]
    counted_before = counters["subscribers"]["in"]["records"]  # the new runtime resumes counting from these
    again = DagRuntime(load_dag_dict(spec), state_dir=tmp_path, source_factory=RecordingSource)
    runtimes.append(again)
    again.start()
    resumed = RecordingSource.made[1].opened_at

    def covered(position: Mapping[str, Any]) -> set[str]:
        """The records a position says were emitted: of its window, those with a digest up to its cursor."""
        after = bytes(position.get("after") or b"")
        return {k for k, lut in keys.items()
                if lut < position["lut"] or (lut < position.get("until", 0) and digest(k) <= after)}

    assert covered(committed) <= covered(resumed) <= set(first_run)  # resumed at or after the commit; no loss
    expected = set(keys) - covered(resumed)
    second = Collector("out")
    assert second.until(len(expected), timeout=30)
    assert wait_until(lambda: second.got.extend(second.queue.get(1000, 0.02)) or (
        "until" not in RecordingSource.made[1].position() and settled(again, second, counted_before)), timeout=10)
    second_run = [r["__dagserver_key"] for r in second.got]
    assert sorted(second_run) == sorted(expected)  # each once: nothing covered by the checkpoint came back
    assert set(first_run) | set(second_run) == set(keys)


def test_source_outage_shows_reconnecting_then_delivers_everything(cluster: FakeCluster, runtimes: list) -> None:
    put_records(cluster, {f"a{i}": {"n": i} for i in range(20)})
    model = load_dag_dict(dag("outage_in", {"source": URI, **FAST}, {"destination": "mem://queue/out"}))
    runtime = DagRuntime(model)
    runtimes.append(runtime)
    runtime.start()

    def status() -> str:
        return runtime.details()["subscribers"]["in"]["status"]

    out = Collector("out")
    assert out.until(20)
    cluster.down = True
    assert wait_until(lambda: status() == "reconnecting", timeout=10), status()
    cluster.down = False
    put_records(cluster, {f"b{i}": {"n": 20 + i} for i in range(20)})
    assert out.until(40)
    assert wait_until(lambda: status() == "connected", timeout=10), status()
    cluster.fail_query_after = 5  # the next scan breaks off after five records: it is run again, without them
    put_records(cluster, {f"c{i}": {"n": 40 + i} for i in range(20)})
    assert out.until(60)
    assert cluster.fail_query_after is None  # the failure did happen
    assert wait_until(lambda: status() == "connected", timeout=10), status()
    assert wait_until(lambda: out.got.extend(out.queue.get(1000, 0.02)) or settled(runtime, out), timeout=10)
    assert sorted(r["n"] for r in out.got) == list(range(60))  # each once
    assert runtime.state == RUNNING
