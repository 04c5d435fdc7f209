"""sql:// against the real MariaDB and PostgreSQL: the declaration and its errors, the sink through a
whole DAG (idempotent inserts, bad records dead-lettered), the seed's sql_config_file, and the type
mapping of the source. Sources through a DAG, restarts and outages: test_sql_source.py."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.restart import RestartPolicy
from actors.runtime import FAILED, DagRuntime
from adapters import registry
from adapters.builtin.mem import mem_drain, mem_put
from adapters.sql import SqlSink, SqlSource
from graphs.loader import check_dag_dict, load_dag_dict
from graphs.reference import ReferenceEvaluator
from tests.support.sql_service import DATABASES, SqlService, sql_service
from tests.support.tcp_proxy import free_port
from tests.support.waiting import wait_until

DB_CHOICES = "mysql, mariadb, postgres, postgresql"


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Iterator[SqlService]:
    yield from sql_service(request.param)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def sink_doc(name: str, publisher: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """mem://queue/NAME-in -> ApplyDefaults (qty 1) -> the publisher ``out``."""
    return {
        "name": name,
        "checkpoint": {"every_epochs": 2},
        "epochs": {"max_records": 200, "max_inflight": 2},
        "subscribers": [{"name": "in", "config": {"source": f"mem://queue/{name}-in"}}],
        "publishers": [{"name": "out", "config": publisher}],
        "calculators": [{"name": "qty", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"qty": 1}}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "compute", "calculator": "qty"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "compute"}, {"from_node": "compute", "to_node": "publish"}],
        **extra,
    }


def lines(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "price": i + 0.5, "qty": None if i % 3 else 2, "note": f"n{i}"} for i in range(start, start + n)]


def rows_of(db: SqlService, table: str) -> list[tuple]:
    return db.query(f"SELECT id, price, qty, note FROM {table} ORDER BY id")


LINE_COLUMNS = "id INT PRIMARY KEY, price DOUBLE PRECISION NOT NULL, qty INT, note VARCHAR(8)"


# -- declaration and configuration errors (no database needed) ---------------------------------------
def test_the_declaration_checks_uris_keys_and_sharing() -> None:
    assert registry.check_uri("sql://shop", "source") is None
    assert registry.check_uri("sql://shop", "destination") is None
    assert "connection label" in (registry.check_uri("sql://", "source") or "")
    problem = registry.check_uri("sql://shop?db_type=oracle", "destination") or ""
    assert "'oracle'" in problem and DB_CHOICES in problem
    assert not registry.is_shareable("sql://shop")
    assert {"sql_config_file", "select_statement", "cursor_column", "poll_interval", "max_depth"} <= set(
        registry.config_keys("sql://shop", "source") or ())
    assert {"insert_statement", "publish_timeout", "publish_interval", "batch_size", "max_depth"} <= set(
        registry.config_keys("sql://shop", "destination") or ())
    doc = sink_doc("keys", {"destination": "sql://shop", "db_type": "postgres", "insert_statment": "INSERT"})
    _, problems = check_dag_dict(doc, uris=registry)
    assert any("insert_statment" in str(p) and "did you mean 'insert_statement'?" in str(p) for p in problems), problems
    shared = sink_doc("shared", {"destination": "mem://queue/x"}, replicas=2)
    shared["subscribers"][0]["config"] = {"source": "sql://shop", "db_type": "postgres", "select_statement": "SELECT 1"}
    _, problems = check_dag_dict(shared, uris=registry)
    assert any("sql://shop" in str(p) and "cannot be shared" in str(p) for p in problems), problems


def test_configuration_errors_name_the_value_the_key_and_the_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    insert = {"insert_statement": "INSERT INTO t (a) VALUES (%(a)s)"}
    with pytest.raises(ValueError, match=f"'db_type' must be one of {DB_CHOICES}, not 'oracle'"):
        SqlSink("sql://shop", {"db_type": "oracle", **insert})
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ValueError, match=re.escape(f"sql_config_file '{missing}' not found")):
        SqlSink("sql://shop", {"sql_config_file": str(missing)})
    bad = tmp_path / "bad.json"
    bad.write_text('{"db_type": "mysql",}')
    with pytest.raises(ValueError, match=re.escape(f"sql_config_file '{bad}' is not valid JSON:") + ".* line 1"):
        SqlSource("sql://shop", {"sql_config_file": str(bad)})
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"db_type": "mysql", "hots": "db1"}))
    with pytest.raises(ValueError, match="unknown key 'hots' \\(did you mean 'host'\\?\\)"):
        SqlSink("sql://shop", {"sql_config_file": str(typo), **insert})
    no_type = tmp_path / "no_type.json"
    no_type.write_text(json.dumps({"host": "db1", **insert}))
    with pytest.raises(ValueError, match=r"no_type\.json.*'db_type' is missing"):
        SqlSink("sql://shop", {"sql_config_file": str(no_type)})
    with pytest.raises(ValueError, match="'port' must be a TCP port number, not 'x'"):
        SqlSink("sql://shop", {"db_type": "mysql", "port": "x", **insert})
    monkeypatch.delenv("DAGSERVER_NO_SUCH_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="environment variable DAGSERVER_NO_SUCH_PASSWORD, which is not set"):
        SqlSink("sql://shop", {"db_type": "mysql", "password": "${DAGSERVER_NO_SUCH_PASSWORD}", **insert})
    with pytest.raises(ValueError, match="needs an 'insert_statement'"):
        SqlSink("sql://shop", {"db_type": "postgres"})
    with pytest.raises(ValueError, match="positional '%s'"):
        SqlSink("sql://shop", {"db_type": "postgres", "insert_statement": "INSERT INTO t VALUES (%s)"})
    with pytest.raises(ValueError, match="exactly one parameter, %\\(cursor\\)s"):
        SqlSource("sql://shop", {"db_type": "postgres", "select_statement": "SELECT * FROM t", "cursor_column": "id"})
    with pytest.raises(ValueError, match="takes both %\\(cursor\\)s and %\\(key\\)s, not \\['cursor'\\]"):
        SqlSource("sql://shop", {"db_type": "postgres", "select_statement": "SELECT * FROM t WHERE id > %(cursor)s",
                                 "cursor_column": "at", "key_column": "id"})
    with pytest.raises(ValueError, match="key_column \\('id'\\) breaks ties of a cursor_column, which is missing"):
        SqlSource("sql://shop", {"db_type": "postgres", "select_statement": "SELECT * FROM t", "key_column": "id"})
    with pytest.raises(ValueError, match="only %\\(cursor\\)s, with a cursor_column"):
        SqlSource("sql://shop", {"db_type": "postgres", "select_statement": "SELECT * FROM t WHERE id > %(cursor)s"})
    # the file's keys, overridden inline; the port defaults by type; a relative path is from the cwd
    (tmp_path / "shop.json").write_text(json.dumps({"db_type": "postgresql", "host": "db1", "user": "u",
                                                    "password": "${DAGSERVER_TEST_PW}", **insert}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSERVER_TEST_PW", "s3cret")
    settings = SqlSink("sql://shop", {"sql_config_file": "shop.json", "host": "db2"}).settings
    assert (settings.kind, settings.host, settings.port, settings.user, settings.password) == (
        "postgres", "db2", 5432, "u", "s3cret")
    assert SqlSink("sql://shop", {"db_type": "MariaDB", **insert}).settings.port == 3306


def test_a_bad_db_type_fails_the_dag_with_the_reason(runtimes: list[DagRuntime]) -> None:
    doc = sink_doc(unique("badtype"), {"destination": "sql://shop", "db_type": "oracle",
                                       "insert_statement": "INSERT INTO t (a) VALUES (%(a)s)"})
    runtime = DagRuntime(load_dag_dict(doc, uris=registry), restart=RestartPolicy(max_restarts=0))
    runtimes.append(runtime)
    runtime.start()
    assert wait_until(lambda: runtime.state == FAILED, timeout=10), runtime.reason
    assert "'oracle'" in runtime.reason and DB_CHOICES in runtime.reason


# -- the sink through a DAG ------------------------------------------------------------------------------
def test_sink_round_trip_through_a_dag_with_an_idempotent_insert(db: SqlService, runtimes: list[DagRuntime]) -> None:
    table = db.table("lines", LINE_COLUMNS)
    insert = db.insert_once(table, ["id", "price", "qty", "note"], ignore=True)
    doc = sink_doc(unique("sink"), {"destination": "sql://shop", **db.config(insert_statement=insert)})
    dag = load_dag_dict(doc, uris=registry)
    reference = ReferenceEvaluator(dag)
    inputs = lines(3000)
    expected = [r for record in inputs for _, r in reference.ingest("in", record)]
    assert len(expected) == 3000
    runtime = DagRuntime(dag)
    runtimes.append(runtime)
    runtime.start()
    mem_put(f"{dag.name}-in", inputs)
    assert wait_until(lambda: db.count(table) >= 3000, timeout=30), db.count(table)
    assert rows_of(db, table) == [(r["id"], r["price"], r["qty"], r["note"]) for r in expected]
    # a replay (as after a restart from a checkpoint) writes nothing twice
    mem_put(f"{dag.name}-in", inputs[:500])
    assert wait_until(lambda: runtime.details()["publishers"]["out"]["records"] == 3500, timeout=30)
    assert db.count(table) == 3000
    out = runtime.details()["publishers"]["out"]
    assert out["status"] == "connected" and out["errors"] == 0


def test_bad_records_are_dead_lettered_and_the_rest_written(db: SqlService, runtimes: list[DagRuntime]) -> None:
    table = db.table("bad", LINE_COLUMNS)
    insert = db.insert_once(table, ["id", "price", "qty", "note"])
    name = unique("badrec")
    doc = sink_doc(name, {"destination": "sql://shop", **db.config(insert_statement=insert)},
                   dead_letter=f"mem://queue/{name}-dl")
    runtime = DagRuntime(load_dag_dict(doc, uris=registry))
    runtimes.append(runtime)
    runtime.start()
    good = lines(300)
    bad = [{"id": 1000, "qty": 1, "note": "no price"},  # no parameter for %(price)s
           {"id": 1001, "price": None, "qty": 1, "note": "x"},  # NOT NULL
           {"id": 1002, "price": 1.0, "qty": 1, "note": "far too long for it"},  # VARCHAR(8)
           {"id": 1003, "price": 1.0, "qty": "many", "note": "x"}]  # not an integer
    mem_put(f"{name}-in", good[:150] + bad + good[150:])
    assert wait_until(lambda: db.count(table) >= 300 and runtime.details()["publishers"]["out"]["errors"] >= 4,
                      timeout=30), (db.count(table), runtime.details()["publishers"]["out"])
    assert [row[0] for row in rows_of(db, table)] == list(range(300))
    assert runtime.stop(timeout=15)  # the last checkpoint writes the dead letters out
    letters = mem_drain(f"{name}-dl")
    assert sorted(letter["input"]["id"] for letter in letters) == [1000, 1001, 1002, 1003]
    assert all(letter["publisher"] == "out" for letter in letters)
    reasons = {letter["input"]["id"]: letter["error"] for letter in letters}
    assert "no 'price'" in reasons[1000]
    assert all("refused by the database" in reasons[i] for i in (1001, 1002, 1003))
    assert runtime.details()["publishers"]["out"]["errors"] == 4


def test_the_seeds_sql_config_file_runs_unchanged(db: SqlService, runtimes: list[DagRuntime], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    table = db.table("seed", LINE_COLUMNS)
    keys = db.config()
    monkeypatch.setenv("DAGSERVER_TEST_SQL_PASSWORD", keys.pop("password", "unused-with-trust"))
    seed_file = {**keys, "password": "${DAGSERVER_TEST_SQL_PASSWORD}",
                 "insert_statement": f"INSERT INTO {table} (id, price, qty, note) "
                                     "VALUES (%(id)s, %(price)s, %(qty)s, %(note)s)"}
    (tmp_path / "warehouse.json").write_text(json.dumps(seed_file, indent=2))
    monkeypatch.chdir(tmp_path)  # the seed's relative path, from the current directory
    doc = sink_doc(unique("seed"), {"destination": "sql://warehouse", "sql_config_file": "warehouse.json",
                                    "publish_interval": 1, "batch_size": 100})
    model, problems = check_dag_dict(doc, uris=registry)
    assert problems == [] and model is not None
    runtime = DagRuntime(model)
    runtimes.append(runtime)
    runtime.start()
    mem_put(f"{model.name}-in", lines(250))
    assert wait_until(lambda: db.count(table) >= 250, timeout=30), db.count(table)
    assert [row[0] for row in rows_of(db, table)] == list(range(250))


# -- the type mapping of the source -------------------------------------------------------------------------
UID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
STAMP = datetime(2024, 2, 29, 13, 45, 1, tzinfo=UTC)
MARIADB_TYPES = ("id INT PRIMARY KEY, price DECIMAL(10,2), whole DECIMAL(12,0), huge DECIMAL(30,0), day DATE, "
                 "at DATETIME(6), stamp TIMESTAMP NULL, clock TIME, spent TIME, uid UUID, doc JSON, bin BLOB, "
                 "flag BOOLEAN, nothing VARCHAR(5)")
POSTGRES_TYPES = ("id INT PRIMARY KEY, price NUMERIC(10,2), whole NUMERIC(12,0), huge NUMERIC(30,0), day DATE, "
                  "at TIMESTAMP(6), stamp TIMESTAMPTZ, clock TIME, spent INTERVAL, uid UUID, doc JSON, jdoc JSONB, "
                  "bin BYTEA, flag BOOLEAN, tags INT[], nothing VARCHAR(5)")
ROW_SQL = ("12.50, 123456789012, 10000000000000000000000000, '2024-02-29', '2024-02-29 13:45:01.25', "
           "'2024-02-29 13:45:01{tz}', '13:45:01', '{spent}', '{uid}', '{{\"a\": [1, 2], \"b\": null}}'")


def read_all(config: dict[str, Any], n: int) -> list[Any]:
    source = SqlSource("sql://types", config)
    source.open(None)
    try:
        got: list[Any] = []
        assert wait_until(lambda: got.extend(source.read_batch(100, 0.05)) or len(got) >= n, timeout=10)
        return got[:n]
    finally:
        source.close()


def test_column_types_map_to_plain_values(db: SqlService) -> None:
    if db.is_postgres:
        table = db.table("types", POSTGRES_TYPES)
        values = ROW_SQL.format(tz="+00", spent="1 day 02:00:03", uid=UID)
        db.execute(f"INSERT INTO {table} VALUES (1, {values}, '{{\"b\": null, \"a\": [1, 2]}}', '\\x0001ff', TRUE, "
                   "'{1,2}', NULL)")
    else:
        table = db.table("types", MARIADB_TYPES)
        values = ROW_SQL.format(tz="", spent="26:00:03", uid=UID)
        db.execute(f"INSERT INTO {table} VALUES (1, {values}, X'0001FF', TRUE, NULL)")
    # a sink writes a map and bytes into the same columns: the map as JSON text
    sink = SqlSink("sql://types", db.config(insert_statement=f"INSERT INTO {table} (id, doc, bin) "
                                                             "VALUES (%(id)s, %(doc)s, %(bin)s)"))
    sink.open()
    try:
        assert sink.write_batch([{"id": 2, "doc": {"k": [1, "x"]}, "bin": b"\x02"}]) is None
    finally:
        sink.close()
    statement = f"SELECT * FROM {table} ORDER BY id"
    row, written = read_all(db.config(select_statement=statement), 2)
    for record in (row, written):
        msgpack.packb(record)  # every value travels between actors
    assert {"id": 1, "price": 12.5, "whole": 123456789012, "huge": 1e25, "day": "2024-02-29",
            "at": "2024-02-29T13:45:01.250000", "clock": "13:45:01", "spent": "26:00:03", "uid": UID,
            "bin": b"\x00\x01\xff", "nothing": None}.items() <= row.items()
    assert type(row["whole"]) is int and type(row["price"]) is float
    if db.is_postgres:
        assert datetime.fromisoformat(row["stamp"]) == STAMP  # with the session's UTC offset
        assert row["doc"] == row["jdoc"] == {"a": [1, 2], "b": None}  # json and jsonb arrive parsed
        assert row["flag"] is True and row["tags"] == [1, 2]
        assert written["doc"] == {"k": [1, "x"]}
    else:
        assert row["stamp"] == "2024-02-29T13:45:01"
        assert row["doc"] == '{"a": [1, 2], "b": null}'  # MariaDB's JSON is LONGTEXT: a string ...
        assert row["flag"] == 1  # BOOLEAN is TINYINT(1)
        parsed, again = read_all(db.config(select_statement=statement, json_columns=["doc"]), 2)
        assert parsed["doc"] == {"a": [1, 2], "b": None}  # ... unless listed in json_columns
        assert again["doc"] == {"k": [1, "x"]}
    assert written["bin"] == b"\x02"


def test_source_errors_stop_polling_with_the_reason_and_a_refused_login_fails_open(db: SqlService) -> None:
    table = db.table("errs", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    db.execute(f"INSERT INTO {table} (id, price) VALUES (1, 2.5)")
    cases = [(f"SELECT * FROM {table}_missing", {}, "polling stopped"),
             (f"SELECT price FROM {table} WHERE id > %(cursor)s ORDER BY id", {"cursor_column": "id"},
              "cursor_column 'id' is not a column of the select_statement's result \\(price\\)")]
    for statement, extra, message in cases:
        source = SqlSource("sql://errs", db.config(select_statement=statement, **extra))
        source.open(None)
        try:
            with pytest.raises(RuntimeError, match=message):
                wait_until(lambda s=source: s.read_batch(10, 0.05) and False, timeout=5)
        finally:
            source.close()
    no_such_database = SqlSource("sql://errs", db.config(select_statement=f"SELECT * FROM {table}",
                                                         database="no_such_database"))
    with pytest.raises(ConnectionError, match=r"sql://errs: cannot connect to .*no_such_database"):
        no_such_database.open(None)  # no retry would change that


def test_endpoints_opened_while_the_database_is_away_are_reconnecting_and_never_raise(db: SqlService) -> None:
    table = db.table("away", "id INT PRIMARY KEY")
    nowhere = db.config(port=free_port())  # nothing listens there: as a database that is down
    source = SqlSource("sql://away", {**nowhere, "select_statement": f"SELECT * FROM {table}"})
    sink = SqlSink("sql://away", {**nowhere, "insert_statement": f"INSERT INTO {table} (id) VALUES (%(id)s)",
                                  "publish_timeout": 1})
    source.open(None)
    sink.open()
    try:
        assert source.status == "reconnecting" and sink.status == "reconnecting"
        assert source.read_batch(10, 0.05) == []
        with pytest.raises(ConnectionError, match="within publish_timeout 1s"):
            sink.write_batch([{"id": 1}])  # a batch still fails after publish_timeout, as in any outage
        assert source.status == "reconnecting" and sink.status == "reconnecting"
    finally:
        source.close()
        sink.close()
