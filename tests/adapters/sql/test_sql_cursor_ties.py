"""A cursor source never loses nor repeats rows that share a cursor value, on MariaDB and PostgreSQL (SPEC §6):
at a ``LIMIT`` boundary, across a restart from a checkpointed position (msgpack round trip, as the checkpoint
stores it), with a ``key_column`` tie-breaker and without one; and a DECIMAL cursor stays exact where a float
would conflate values (and skip or repeat rows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.runtime import DagRuntime
from adapters import registry
from adapters.builtin.mem import get_queue
from adapters.sql import SqlSource
from graphs.loader import load_dag_dict
from tests.support.sql_service import DATABASES, SqlService, sql_service
from tests.support.waiting import wait_until


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Iterator[SqlService]:
    yield from sql_service(request.param)


def stamped_table(db: SqlService, stamps: list[int]) -> str:
    """Rows id 1.. with the cursor column ``stamp`` set from ``stamps`` (ties where values repeat)."""
    table = db.table("stamped", "id INT PRIMARY KEY, stamp INT NOT NULL")
    db.executemany(f"INSERT INTO {table} (id, stamp) VALUES (%s, %s)", list(enumerate(stamps, start=1)))
    return table


def plain_source(db: SqlService, table: str, limit: int) -> SqlSource:
    """A cursor source as the seed writes it: ``stamp > %(cursor)s``, no tie-breaker."""
    statement = f"SELECT id, stamp FROM {table} WHERE stamp > %(cursor)s ORDER BY stamp LIMIT {limit}"
    return SqlSource("sql://stamped", db.config(select_statement=statement, cursor_column="stamp",
                                                poll_interval=0.05))


def keyed_source(db: SqlService, table: str, limit: int) -> SqlSource:
    """A cursor source with ``key_column`` id: the statement orders by (stamp, id) and starts after both."""
    statement = (f"SELECT id, stamp FROM {table} WHERE stamp > %(cursor)s OR (stamp = %(cursor)s AND id > %(key)s) "
                 f"ORDER BY stamp, id LIMIT {limit}")
    return SqlSource("sql://stamped", db.config(select_statement=statement, cursor_column="stamp", key_column="id",
                                                poll_interval=0.05))


def read(source: SqlSource, n: int, per_batch: int = 100) -> list[Any]:
    """Exactly ``n`` records from an open source (fails if they do not come), then none for a while."""
    got: list[Any] = []
    assert wait_until(lambda: got.extend(source.read_batch(min(per_batch, n - len(got)), 0.05)) or len(got) >= n,
                      timeout=10), got
    return got


def nothing_more(source: SqlSource) -> None:
    """No further record comes within a few polls (repeats would come at once: the rows are all there)."""
    assert not wait_until(lambda: bool(source.read_batch(100, 0.05)), timeout=0.6)


def checkpointed(position: Any) -> Any:
    """The position as a restart gets it back: through msgpack, as in the checkpoint file."""
    return msgpack.unpackb(msgpack.packb(position, use_bin_type=True), raw=False)


TIES = [1, 1, 2, 2, 3, 3, 3, 4]  # stamps of ids 1..8


@pytest.mark.parametrize("make", [plain_source, keyed_source], ids=["plain", "key_column"])
def test_ties_at_a_limit_boundary_are_all_read_once(db: SqlService, make: Any) -> None:
    table = stamped_table(db, TIES)
    source = make(db, table, 3)  # the first poll ends between the two rows of stamp 2
    source.open(None)
    try:
        ids = [r["id"] for r in read(source, 8)]
        assert sorted(ids) == list(range(1, 9))  # rows of one stamp come in any order without a key
        assert make is plain_source or ids == list(range(1, 9))
        nothing_more(source)
    finally:
        source.close()


def test_ties_larger_than_the_limit_need_the_key_column(db: SqlService) -> None:
    table = stamped_table(db, [5] * 7 + [6] * 3)
    source = keyed_source(db, table, 2)
    source.open(None)
    try:
        assert [r["id"] for r in read(source, 10)] == list(range(1, 11))
        assert source.position() == {"cursor": 6, "key": 10}
        nothing_more(source)
    finally:
        source.close()


@pytest.mark.parametrize("make", [plain_source, keyed_source], ids=["plain", "key_column"])
def test_ties_across_a_restart_from_the_checkpointed_position(db: SqlService, make: Any) -> None:
    table = stamped_table(db, [1, 1, 1, 2, 2])
    first = make(db, table, 10)
    first.open(None)
    try:
        before = [r["id"] for r in read(first, 2, per_batch=2)]  # handed out: two of the three rows of stamp 1
        assert set(before) < {1, 2, 3}
        position = checkpointed(first.position())
    finally:
        first.close()
    again = make(db, table, 10)
    again.open(position)
    try:
        after = [r["id"] for r in read(again, 3)]
        assert sorted(before + after) == [1, 2, 3, 4, 5]  # neither lost nor read twice
        nothing_more(again)
    finally:
        again.close()


def test_a_seed_position_still_resumes_after_its_cursor(db: SqlService) -> None:
    table = stamped_table(db, [10, 20, 30])
    source = plain_source(db, table, 10)
    source.open({"cursor": 20})  # a checkpoint written before ties were tracked
    try:
        assert [r["id"] for r in read(source, 1)] == [3]
        nothing_more(source)
    finally:
        source.close()


EXACT = ["9007199254740993.100", "9007199254740993.500", "9007199254740993.700", "9007199254740994.200"]


def test_a_decimal_cursor_stays_exact(db: SqlService) -> None:
    assert len({float(v) for v in EXACT}) < len(EXACT)  # as floats, some of them are one value
    table = db.table("priced", "id INT PRIMARY KEY, price DECIMAL(30, 3) NOT NULL")
    db.executemany(f"INSERT INTO {table} (id, price) VALUES (%s, %s)",
                   [(i, Decimal(v)) for i, v in enumerate(EXACT, start=1)])
    statement = f"SELECT id, price FROM {table} WHERE price > %(cursor)s ORDER BY price LIMIT 1"
    config = db.config(select_statement=statement, cursor_column="price", poll_interval=0.05)
    first = SqlSource("sql://priced", config)
    first.open(None)
    try:
        assert [r["id"] for r in read(first, 2, per_batch=1)] == [1, 2]
        position = checkpointed(first.position())
    finally:
        first.close()
    again = SqlSource("sql://priced", config)
    again.open(position)
    try:
        assert [r["id"] for r in read(again, 2)] == [3, 4]
        nothing_more(again)
    finally:
        again.close()


@pytest.mark.parametrize("make", [plain_source, keyed_source], ids=["plain", "key_column"])
def test_a_dag_stopped_inside_a_tie_group_resumes_from_its_checkpoint(
        db: SqlService, make: Any, runtimes: list[DagRuntime], tmp_path: Path) -> None:
    stamps = [i // 3 for i in range(3, 33)]  # ids 1..30: stamps 1,1,1,2,2,2,...,10,10,10
    table = stamped_table(db, stamps[:-1])  # id 30, the third of stamp 10, is committed later
    name = f"ties-{uuid.uuid4().hex[:8]}"
    source = make(db, table, 4)
    doc = {"name": name, "checkpoint": {"every_epochs": 1}, "epochs": {"max_records": 2, "max_inflight": 1},
           "subscribers": [{"name": "in", "config": {"source": "sql://stamped", **source.config}}],
           "publishers": [{"name": "out", "config": {"destination": f"mem://queue/{name}-out"}}],
           "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                     {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
           "edges": [{"from_node": "ingest", "to_node": "publish"}]}
    dag = load_dag_dict(doc, uris=registry)
    out = get_queue(f"{name}-out")
    published: list[int] = []

    def until(n: int) -> list[int]:
        assert wait_until(lambda: published.extend(r["id"] for r in out.get(1000, 0.01)) or len(published) >= n,
                          timeout=20), published
        return published

    first = DagRuntime(dag, state_dir=tmp_path)
    runtimes.append(first)
    first.start()
    until(29)
    assert first.stop(timeout=15)  # its last checkpoint: two of the three rows of stamp 10
    db.execute(f"INSERT INTO {table} (id, stamp) VALUES (30, 10), (31, 11)")
    second = DagRuntime(dag, state_dir=tmp_path)
    runtimes.append(second)
    second.start()
    until(31)
    assert not wait_until(lambda: bool(out.get(1000, 0.01)), timeout=0.6)  # nothing read twice
    assert sorted(published) == list(range(1, 32)) and len(published) == 31
