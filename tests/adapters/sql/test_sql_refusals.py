"""One row the database refuses for its values is that record's publish error, on MariaDB (strict mode) as on
PostgreSQL (SPEC §6): the sink returns it as a RejectedRecord and writes the rest of the batch in one
transaction; through a DAG it is counted and dead-lettered and the DAG goes on running.

Each refusal class is provoked for real: a bad date-time (MariaDB 1292, PostgreSQL 22007/22008), text that is
not JSON in a JSON column (4025 / 22P02), a CHECK constraint (4025 / 23514), text too long (1406 / 22001), an
incorrect integer (1366 / 22P02), a number out of range (1264 / 22003), a division by zero in the statement
(1365 / 22012)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from actors.runtime import DagRuntime
from adapters import registry
from adapters.builtin.mem import mem_drain, mem_put
from adapters.sql import SqlSink
from graphs.loader import load_dag_dict
from tests.support.sql_service import DATABASES, SqlService, sql_service
from tests.support.waiting import wait_until


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Iterator[SqlService]:
    yield from sql_service(request.param)


def checked_table(db: SqlService) -> str:
    if not db.is_postgres:  # MariaDB refuses bad values only in strict mode (its default): say so if it is off
        assert "STRICT_TRANS_TABLES" in db.query("SELECT @@GLOBAL.sql_mode")[0][0]
    moment = "TIMESTAMP" if db.is_postgres else "DATETIME"
    return db.table("refusals", f"id INT PRIMARY KEY, at {moment}, doc JSON, code VARCHAR(4), qty INT, "
                                "small SMALLINT, price INT CHECK (price > 0), share INT")


INSERT = ("INSERT INTO {table} (id, at, doc, code, qty, small, price, share) "
          "VALUES (%(id)s, %(at)s, %(doc)s, %(code)s, %(qty)s, %(small)s, %(price)s, 100 / %(parts)s)")
BAD = {  # id -> what makes the row unacceptable
    101: {"at": "not a date"},
    102: {"at": "2024-02-30 10:00:00"},
    103: {"doc": "{not json"},
    104: {"price": -5},
    105: {"code": "far too long"},
    106: {"qty": "many"},
    107: {"small": 1_000_000},
    108: {"parts": 0},
}


def row(i: int, **changes: Any) -> dict[str, Any]:
    return {"id": i, "at": "2024-01-02 03:04:05", "doc": {"n": i}, "code": "ok", "qty": i, "small": 1, "price": 10,
            "parts": 4, **changes}


def batch() -> list[dict[str, Any]]:
    """Good rows 1..20 with the bad ones in between."""
    rows = [row(i) for i in range(1, 11)] + [row(i, **change) for i, change in BAD.items()]
    return rows + [row(i) for i in range(11, 21)]


def test_each_refused_value_comes_back_alone_and_the_rest_is_written(db: SqlService) -> None:
    table = checked_table(db)
    sink = SqlSink("sql://checked", db.config(insert_statement=INSERT.format(table=table)))
    sink.open()
    try:
        refused = sink.write_batch(batch()) or []
        assert sorted(r.raw["id"] for r in refused) == sorted(BAD)
        assert all("refused by the database" in r.reason for r in refused)
        assert [r[0] for r in db.query(f"SELECT id FROM {table} ORDER BY id")] == list(range(1, 21))
        assert sink.write_batch([row(21)]) is None and sink.status == "connected"  # the connection is still fine
    finally:
        sink.close()
    assert db.count(table) == 21


def test_a_dag_dead_letters_the_refused_rows_and_keeps_running(db: SqlService, runtimes: list[DagRuntime]) -> None:
    table = checked_table(db)
    name = f"refused-{uuid.uuid4().hex[:8]}"
    doc = {
        "name": name,
        "checkpoint": {"every_epochs": 1},
        "subscribers": [{"name": "in", "config": {"source": f"mem://queue/{name}-in"}}],
        "publishers": [{"name": "out", "config": {"destination": "sql://checked",
                                                  **db.config(insert_statement=INSERT.format(table=table))}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
        "dead_letter": f"mem://queue/{name}-dl",
    }
    runtime = DagRuntime(load_dag_dict(doc, uris=registry))
    runtimes.append(runtime)
    runtime.start()
    mem_put(f"{name}-in", batch())
    assert wait_until(lambda: db.count(table) >= 20 and runtime.details()["publishers"]["out"]["errors"] >= len(BAD),
                      timeout=30), (db.count(table), runtime.details()["publishers"]["out"], runtime.state)
    assert runtime.state == "running"
    assert runtime.stop(timeout=15)  # the last checkpoint writes the dead letters out
    letters = mem_drain(f"{name}-dl")
    assert sorted(letter["input"]["id"] for letter in letters) == sorted(BAD)
    assert db.count(table) == 20 and runtime.details()["publishers"]["out"]["errors"] == len(BAD)
