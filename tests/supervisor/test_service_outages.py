"""A service cut away from a running server shows as ``reconnecting`` in the API and in /metrics (SPEC §6, §8).

Each case runs a real ``dagserver serve`` whose DAG reaches a real service (Redis, MariaDB,
PostgreSQL) through a TCP proxy. The proxy cuts every connection and refuses new ones for
a while: the endpoint's status in ``GET /api/dags/NAME`` and its ``dagserver_*_status``
sample say ``reconnecting``; once the service is back they say ``connected`` again and the
records written meanwhile arrive (the adapter tests count them exactly; here the point is
what an operator sees).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import require_module, require_port
from tests.support.supervised import SupervisedServer, line_count, metronome_dag
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

DATABASES = {
    "postgres": {"port": 5432, "module": "psycopg", "db": {"db_type": "postgres", "user": "postgres"}},
    "mariadb": {"port": 3306, "module": "pymysql", "db": {"db_type": "mysql", "user": "root"}},
}


def connect(kind: str) -> Any:
    if kind == "postgres":
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True)
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", autocommit=True)


def execute(conn: Any, statement: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchone() if cur.description else None


def status_sample(metrics: str, family: str, endpoint: str, status: str) -> float | None:
    """The value of ``dagserver_FAMILY{..., ENDPOINT, ..., status="STATUS"}``, or None when absent."""
    for line in metrics.splitlines():
        if line.startswith(f"dagserver_{family}{{") and endpoint in line and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def shows(server: SupervisedServer, dag: str, kind: str, endpoint: str, status: str) -> bool:
    """The API and /metrics both say ``status`` for the subscriber/publisher ``endpoint`` of ``dag``."""
    role, family = ("subscribers", "source_status") if kind == "subscriber" else ("publishers", "sink_status")
    in_api = server.dag(dag)[role][endpoint]["status"] == status
    return in_api and status_sample(server.metrics(), family, f'{kind}="{endpoint}"', status) == 1.0


def cut_and_restore(server: SupervisedServer, proxy: TcpProxy, dag: str, kind: str, endpoint: str,
                    progress: Callable[[], int]) -> None:
    assert wait_until(lambda: progress() > 0, timeout=30), server.log()[-3000:]
    proxy.cut()
    assert wait_until(lambda: shows(server, dag, kind, endpoint, "reconnecting"), timeout=30), \
        (server.dag(dag), server.log()[-3000:])
    before = progress()
    proxy.restore()
    assert wait_until(lambda: shows(server, dag, kind, endpoint, "connected"), timeout=40), \
        (server.dag(dag), server.log()[-3000:])
    assert wait_until(lambda: progress() > before, timeout=30), (before, server.dag(dag), server.log()[-3000:])
    assert server.dag(dag)["state"] == "running"


@pytest.fixture(params=sorted(DATABASES))
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, str]]:
    kind = request.param
    spec = DATABASES[kind]
    require_module(spec["module"], "sql")
    require_port("127.0.0.1", spec["port"], kind)
    conn = connect(kind)
    table = f"outage_{uuid.uuid4().hex[:8]}"
    execute(conn, f"CREATE TABLE {table} (id INTEGER NOT NULL, message TEXT)")
    yield kind, conn, table
    execute(conn, f"DROP TABLE IF EXISTS {table}")
    conn.close()


def test_a_database_cut_away_from_its_sink_shows_reconnecting(tmp_path: Path, database: Any) -> None:
    kind, conn, table = database
    spec = DATABASES[kind]
    with TcpProxy(("127.0.0.1", spec["port"])) as proxy:
        dag = metronome_dag("ticks", tmp_path / "unused.jsonl", interval=0.05)
        dag["calculators"] = [{"name": "count", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"id": 1}}}]
        dag["nodes"][0]["calculator"] = "count"
        dag["publishers"] = [{"name": "sink", "config": {
            "destination": "sql://outage", **spec["db"], "host": "127.0.0.1", "port": proxy.port, "database": "test",
            "insert_statement": f"INSERT INTO {table} (id, message) VALUES (%(id)s, %(message)s)",
            "query_timeout": 3}}]
        with SupervisedServer(tmp_path, {"ticks": dag}, workers=1) as server:
            server.wait_dags("running")
            cut_and_restore(server, proxy, "ticks", "publisher", "sink",
                            lambda: execute(conn, f"SELECT count(*) FROM {table}")[0])


def test_redis_cut_away_from_a_stream_subscriber_shows_reconnecting(tmp_path: Path) -> None:
    require_module("redis", "redis")
    require_port("127.0.0.1", 6379, "Redis")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    stream, out = f"outage-{uuid.uuid4().hex[:8]}", tmp_path / "out.jsonl"
    try:
        with TcpProxy(("127.0.0.1", 6379)) as proxy:
            dag = metronome_dag("copy", out)
            dag["subscribers"] = [{"name": "clock", "config": {"source": f"redis://stream/{stream}",
                                                               "host": "127.0.0.1", "port": proxy.port}}]
            with SupervisedServer(tmp_path, {"copy": dag}, workers=1) as server:
                server.wait_dags("running")

                added = itertools.count()

                def progress() -> int:  # keep entries coming, cut or not (each differs: unchanged outputs are not sent)
                    client.xadd(stream, {"data": json.dumps({"n": next(added)})})
                    return line_count(out)

                cut_and_restore(server, proxy, "copy", "subscriber", "clock", progress)
    finally:
        client.delete(stream)
        client.close()
