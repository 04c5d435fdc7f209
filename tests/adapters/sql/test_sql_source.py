"""sql:// sources against the real MariaDB and PostgreSQL: the cursor source through a DAG and across a
restart from its checkpoint, snapshot polling, and outages (a cut connection, a stalled one) for the
source and the sink, through a TcpProxy."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import DagRuntime
from adapters import registry
from adapters.builtin.mem import get_queue, mem_put
from adapters.sql import SqlSink, SqlSource
from graphs.loader import load_dag_dict
from graphs.model import DagModel
from tests.support.sql_service import DATABASES, SqlService, sql_service
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

OUTAGE = 3.0  # seconds the database stays unreachable


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Iterator[SqlService]:
    yield from sql_service(request.param)


@pytest.fixture
def proxy(db: SqlService) -> Iterator[TcpProxy]:
    with TcpProxy((db.keys["host"], db.keys["port"])) as forwarder:
        yield forwarder


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def dag_of(name: str, source: dict[str, Any], publisher: dict[str, Any], calculator: str = "NullCalculator",
           calc_config: dict[str, Any] | None = None) -> DagModel:
    return load_dag_dict({
        "name": name,
        "checkpoint": {"every_epochs": 2},
        "epochs": {"max_records": 100, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": source}],
        "publishers": [{"name": "out", "config": publisher}],
        "calculators": [{"name": "calc", "type": calculator, "config": calc_config or {}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "compute", "calculator": "calc"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "compute"}, {"from_node": "compute", "to_node": "publish"}],
    }, uris=registry)


class Collected:
    """What a DAG published to ``mem://queue/NAME``."""

    def __init__(self, name: str) -> None:
        self.queue = get_queue(name)
        self.items: list[dict] = []

    def ids(self) -> list[int]:
        self.items.extend(self.queue.get(10_000, 0.01))
        return [item["id"] for item in self.items]

    def until(self, n: int, timeout: float = 30) -> list[int]:
        assert wait_until(lambda: len(self.ids()) >= n, timeout=timeout), (len(self.items), n)
        return self.ids()


def add_rows(db: SqlService, table: str, ids: range) -> None:
    db.executemany(f"INSERT INTO {table} (id, price) VALUES (%s, %s)", [(i, i * 1.5) for i in ids])


def cursor_source(db: SqlService, table: str, address: str | None = None, **extra: Any) -> dict[str, Any]:
    statement = f"SELECT id, price FROM {table} WHERE id > %(cursor)s ORDER BY id LIMIT 120"
    keys = db.through(address) if address else db.config()
    return {"source": "sql://orders", **keys, "select_statement": statement, "cursor_column": "id",
            "poll_interval": 0.1, **extra}


class Feeder(threading.Thread):
    """Calls ``step(i)`` for i = 0.. every ``pause`` seconds, ``steps`` times, on its own thread."""

    def __init__(self, step: Any, steps: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.step, self.steps, self.pause = step, steps, pause
        self.done = threading.Event()

    def run(self) -> None:
        for i in range(self.steps):
            self.step(i)
            time.sleep(self.pause)
        self.done.set()


# -- the source on its own ---------------------------------------------------------------------------------------
def test_cursor_source_resumes_after_its_position_and_never_blocks_long(db: SqlService) -> None:
    table = db.table("orders", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    add_rows(db, table, range(1, 301))
    source = SqlSource("sql://orders", cursor_source(db, table))
    source.open({"cursor": 40})  # a checkpoint's position: everything up to id 40 is done
    try:
        got: list[Any] = []
        assert wait_until(lambda: got.extend(source.read_batch(50, 0.05)) or len(got) >= 260, timeout=10)
        assert [r["id"] for r in got] == list(range(41, 301)) and got[0] == {"id": 41, "price": 61.5}
        assert source.position()["cursor"] == 300 and source.backlog() == 0 and source.status == "connected"
        started = time.monotonic()
        assert source.read_batch(50, 0.05) == []
        assert time.monotonic() - started < 0.5  # nothing there: back within about the timeout
    finally:
        source.close()
    assert source.status == "closed"


# -- through a DAG -------------------------------------------------------------------------------------------------
def test_cursor_source_dag_picks_up_new_rows_and_restarts_from_its_checkpoint(
        db: SqlService, runtimes: list[DagRuntime], tmp_path: Path) -> None:
    table = db.table("orders", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    add_rows(db, table, range(1, 401))
    name = unique("cursor")
    dag = dag_of(name, cursor_source(db, table), {"destination": f"mem://queue/{name}-out"})
    first = DagRuntime(dag, state_dir=tmp_path)
    runtimes.append(first)
    first.start()
    out = Collected(f"{name}-out")
    out.until(400)
    for chunk in (range(401, 501), range(501, 601), range(601, 701)):  # rows inserted while it runs
        add_rows(db, table, chunk)
        out.until(chunk[-1])
    assert out.ids() == list(range(1, 701))
    assert first.stop(timeout=15)  # the last checkpoint holds cursor 700
    add_rows(db, table, range(701, 901))
    second = DagRuntime(dag, state_dir=tmp_path)
    runtimes.append(second)
    second.start()
    assert out.until(900) == list(range(1, 901))  # nothing committed read again, nothing skipped
    # counting resumes from the checkpoint's 700 (SPEC §8): only the 200 new rows were read
    assert wait_until(lambda: second.details()["subscribers"]["in"]["records"] == 700 + 200, timeout=5)


def test_snapshot_source_emits_the_whole_result_every_poll(db: SqlService, runtimes: list[DagRuntime]) -> None:
    table = db.table("prices", "id INT PRIMARY KEY, name VARCHAR(10)")
    db.executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
    name = unique("snapshot")
    source = {"source": "sql://prices", **db.config(select_statement=f"SELECT id, name FROM {table} ORDER BY id"),
              "poll_interval": 0.2}
    dag = dag_of(name, source, {"destination": f"mem://queue/{name}-out"})
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    out = Collected(f"{name}-out")
    assert out.until(6)[:6] == [1, 2, 3, 1, 2, 3]
    assert out.items[:3] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    db.execute(f"UPDATE {table} SET name = 'B' WHERE id = 2")
    assert wait_until(lambda: out.ids() and {"id": 2, "name": "B"} in out.items, timeout=10)
    snapshot = SqlSource("sql://prices", source)
    assert snapshot.position() is None  # a snapshot has no position: a restart reads it all again


# -- outages -------------------------------------------------------------------------------------------------------
def test_sink_outage_mid_stream_reconnects_and_delivers_every_record(
        db: SqlService, proxy: TcpProxy, runtimes: list[DagRuntime]) -> None:
    table = db.table("sunk", "id INT PRIMARY KEY, price DOUBLE PRECISION, qty INT")
    name = unique("sink-outage")
    publisher = {"destination": "sql://sunk",
                 **db.through(proxy.address, insert_statement=db.insert_once(table, ["id", "price", "qty"]))}
    dag = dag_of(name, {"source": f"mem://queue/{name}-in"}, publisher, "ApplyDefaultsCalculator",
                 {"defaults": {"qty": 1}})
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    feeder = Feeder(lambda i: mem_put(f"{name}-in", [{"id": n, "price": n / 2} for n in range(i * 50, i * 50 + 50)]),
                    steps=60, pause=0.1)
    feeder.start()

    def status() -> str:
        return runtime.details()["publishers"]["out"]["status"]

    assert wait_until(lambda: db.count(table) >= 300, timeout=15)
    proxy.cut()
    assert wait_until(lambda: status() == "reconnecting", timeout=10), status()
    time.sleep(OUTAGE)  # the length of the outage
    assert not feeder.done.is_set()  # the stream went on during the outage
    proxy.restore()
    assert wait_until(lambda: db.count(table) >= 3000, timeout=30), db.count(table)
    assert db.query(f"SELECT COUNT(DISTINCT id), MIN(id), MAX(id) FROM {table}") == [(3000, 0, 2999)]
    assert wait_until(lambda: status() == "connected", timeout=5) and runtime.state == "running"


def test_source_outage_mid_stream_reconnects_and_delivers_every_row(
        db: SqlService, proxy: TcpProxy, runtimes: list[DagRuntime]) -> None:
    table = db.table("polled", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    name = unique("source-outage")
    dag = dag_of(name, cursor_source(db, table, proxy.address), {"destination": f"mem://queue/{name}-out"})
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    feeder = Feeder(lambda i: add_rows(db, table, range(i * 50 + 1, i * 50 + 51)), steps=60, pause=0.1)
    feeder.start()
    out = Collected(f"{name}-out")

    def status() -> str:
        return runtime.details()["subscribers"]["in"]["status"]

    out.until(300)
    proxy.cut()
    assert wait_until(lambda: status() == "reconnecting", timeout=10), status()
    time.sleep(OUTAGE)
    assert not feeder.done.is_set()
    proxy.restore()
    assert out.until(3000) == list(range(1, 3001))  # every row, once, in order
    assert wait_until(lambda: status() == "connected", timeout=5)


def test_a_sink_that_cannot_reach_its_database_raises_after_publish_timeout(db: SqlService, proxy: TcpProxy) -> None:
    table = db.table("late", "id INT PRIMARY KEY")
    sink = SqlSink("sql://late", db.through(proxy.address, publish_timeout=2,
                                            insert_statement=f"INSERT INTO {table} (id) VALUES (%(id)s)"))
    sink.open()
    try:
        assert sink.write_batch([{"id": 1}]) is None
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=r"not written .* within publish_timeout 2s"):
            sink.write_batch([{"id": 2}])
        assert 2 <= time.monotonic() - started < 5 and sink.status == "reconnecting"
        proxy.restore()
        assert sink.write_batch([{"id": 2}]) is None and sink.status == "connected"  # the same sink, back
        assert [row[0] for row in db.query(f"SELECT id FROM {table} ORDER BY id")] == [1, 2]
    finally:
        sink.close()


def test_a_stalled_database_is_noticed_and_polling_resumes(db: SqlService, proxy: TcpProxy) -> None:
    table = db.table("stalled", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    add_rows(db, table, range(1, 11))
    source = SqlSource("sql://stalled", cursor_source(db, table, proxy.address, query_timeout=1))
    source.open(None)
    try:
        got: list[Any] = []
        assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or len(got) >= 10, timeout=10)
        proxy.stall()  # connections stay open, no byte goes through
        started = time.monotonic()
        assert wait_until(lambda: source.status == "reconnecting", timeout=10)
        assert time.monotonic() - started < 5
        assert source.read_batch(100, 0.05) == []  # meanwhile reads come back empty, and quickly
        add_rows(db, table, range(11, 21))
        proxy.unstall()
        assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or len(got) >= 20, timeout=20)
        assert [r["id"] for r in got] == list(range(1, 21)) and source.status == "connected"
    finally:
        source.close()
