"""``upsert_key`` (SPEC §12): the SQL sink inserts or updates on those columns, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters import registry
from adapters.sql import SqlSink
from adapters.sql.upsert import upsert_statement
from tests.support.sql_service import DATABASES, SqlService, sql_service


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Iterator[SqlService]:
    yield from sql_service(request.param)


def test_rewrites_for_each_database() -> None:
    statement = 'INSERT INTO t (id, "v", w) VALUES (%(id)s, %(v)s, now());'
    assert upsert_statement(statement, ["id"], "postgres") == (
        'INSERT INTO t (id, "v", w) VALUES (%(id)s, %(v)s, now()) ON CONFLICT (id) DO UPDATE SET "v" = EXCLUDED."v", '
        "w = EXCLUDED.w")
    assert upsert_statement("INSERT INTO t (id, v) VALUES (%(id)s, %(v)s)", ["id"], "mysql") == (
        "INSERT INTO t (id, v) VALUES (%(id)s, %(v)s) ON DUPLICATE KEY UPDATE v = VALUES(v)")
    assert upsert_statement("INSERT INTO t (id) VALUES (%(id)s)", ["id"], "postgres").endswith("DO NOTHING")


@pytest.mark.parametrize(("statement", "key", "says"), [
    ("INSERT INTO t (id) VALUES (%(id)s) ON CONFLICT DO NOTHING", ["id"], "no ON CONFLICT"),
    ("INSERT INTO t VALUES (%(id)s)", ["id"], "shaped"),
    ("INSERT INTO t (id) SELECT 1", ["id"], "shaped"),
    ("INSERT INTO t (id) VALUES (%(id)s)", ["other"], "not among"),
    ("INSERT INTO t (id) VALUES (%(id)s)", "id", "non-empty list"),
])
def test_statements_it_cannot_rewrite_are_refused_by_check(statement: str, key: object, says: str) -> None:
    config = {"destination": "sql://x", "db_type": "postgres", "insert_statement": statement, "upsert_key": key}
    problems = registry.check_config("sql://x", config, "destination", {})
    assert [p.key for p in problems] == ["upsert_key"] and says in problems[0].message, problems
    with pytest.raises(ValueError, match=says):
        SqlSink("sql://x", config)


def test_a_written_key_is_updated_not_added(db: SqlService) -> None:
    table = db.table("upsert", "id INT PRIMARY KEY, v INT NOT NULL")
    sink = SqlSink("sql://x", db.config(insert_statement=f"INSERT INTO {table} (id, v) VALUES (%(id)s, %(v)s)",
                                        upsert_key=["id"]))
    sink.open()
    try:
        assert not sink.write_batch([{"id": 1, "v": 1}, {"id": 2, "v": 2}])
        assert not sink.write_batch([{"id": 1, "v": 10}, {"id": 3, "v": 3}])  # a replay, with a newer value
    finally:
        sink.close()
    assert db.query(f"SELECT id, v FROM {table} ORDER BY id") == [(1, 10), (2, 2), (3, 3)]
