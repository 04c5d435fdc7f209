"""A DAG started, and started again, while its database is down runs with its sql:// endpoints
``reconnecting`` and catches up once the database is back (SPEC §6: an outage at ``open()`` never spends
the restart budget or leaves a DAG ``failed``).

A real ``dagserver serve`` runs a DAG reading one table (a cursor source) and writing another (a sink), both
through a TcpProxy that refuses every connection for OUTAGE seconds: once at the first start, once more
when the DAG is stopped and started again. It must end ``running`` with every row copied, its restart
budget untouched (``actor_restarts`` 0), on MariaDB and on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sql_service import DATABASES, SqlService, sql_service
from tests.support.supervised import SupervisedServer
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

OUTAGE = 20.0  # seconds the database stays unreachable: far beyond a restart budget spent on failed opens


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> Iterator[SqlService]:
    yield from sql_service(request.param)


def copy_dag(db: SqlService, proxy: TcpProxy, source_table: str, sink_table: str) -> dict[str, Any]:
    keys = db.through(proxy.address, query_timeout=3)
    return {
        "name": "copy",
        "checkpoint": {"every_epochs": 1},
        "subscribers": [{"name": "rows", "config": {
            "source": "sql://origin", **keys, "cursor_column": "id", "poll_interval": 0.2,
            "select_statement": f"SELECT id, price FROM {source_table} WHERE id > %(cursor)s ORDER BY id LIMIT 50"}}],
        "publishers": [{"name": "copies", "config": {
            "destination": "sql://copies", **keys, "publish_timeout": 10,
            "insert_statement": db.insert_once(sink_table, ["id", "price"])}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "rows"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["copies"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
    }


def add_rows(db: SqlService, table: str, ids: range) -> None:
    db.executemany(f"INSERT INTO {table} (id, price) VALUES (%s, %s)", [(i, i / 4) for i in ids])


def endpoints(server: SupervisedServer) -> tuple[str, str, str]:
    """The DAG's state, its subscriber's status and its publisher's status."""
    dag = server.dag("copy")
    subscriber = (dag.get("subscribers") or {}).get("rows") or {}  # absent until the runtime reports
    publisher = (dag.get("publishers") or {}).get("copies") or {}
    return dag["state"], subscriber.get("status", "?"), publisher.get("status", "?")


def ride_out_the_outage(server: SupervisedServer, proxy: TcpProxy) -> None:
    """With the database unreachable: the DAG runs, both endpoints ``reconnecting``, for OUTAGE seconds."""
    assert wait_until(lambda: endpoints(server) == ("running", "reconnecting", "reconnecting"), timeout=20), \
        (endpoints(server), server.log()[-3000:])
    until = time.monotonic() + OUTAGE
    while time.monotonic() < until:  # it must stay so throughout, not fail in between
        assert endpoints(server)[0] == "running", (endpoints(server), server.log()[-3000:])
        time.sleep(0.5)
    proxy.restore()


def copied(db: SqlService, table: str) -> list[int]:
    return [row[0] for row in db.query(f"SELECT id FROM {table} ORDER BY id")]


def test_a_dag_started_twice_while_its_database_is_down_ends_running_with_every_row(
        tmp_path: Path, db: SqlService) -> None:
    source_table = db.table("origin", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    sink_table = db.table("copies", "id INT PRIMARY KEY, price DOUBLE PRECISION")
    add_rows(db, source_table, range(1, 201))
    with TcpProxy((db.keys["host"], db.keys["port"])) as proxy:
        proxy.cut()  # down before the server starts
        dag = copy_dag(db, proxy, source_table, sink_table)
        with SupervisedServer(tmp_path, {"copy": dag}, workers=1, max_restarts=3, within_seconds=120) as server:
            ride_out_the_outage(server, proxy)
            assert wait_until(lambda: copied(db, sink_table) == list(range(1, 201)), timeout=30), \
                (len(copied(db, sink_table)), endpoints(server), server.log()[-3000:])
            assert wait_until(lambda: endpoints(server) == ("running", "connected", "connected"), timeout=15)

            assert server.post("/api/dags/copy/stop")[0] == 200
            server.wait_dags("stopped", ["copy"], timeout=30)
            proxy.cut()
            add_rows(db, source_table, range(201, 401))  # written while the DAG is away
            assert server.post("/api/dags/copy/start")[0] == 200
            ride_out_the_outage(server, proxy)
            assert wait_until(lambda: copied(db, sink_table) == list(range(1, 401)), timeout=30), \
                (len(copied(db, sink_table)), endpoints(server), server.log()[-3000:])
            assert wait_until(lambda: endpoints(server) == ("running", "connected", "connected"), timeout=15)
            assert server.dag("copy")["actor_restarts"] == 0, server.log()[-3000:]
