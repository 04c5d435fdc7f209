"""Redis and SQL throughput: the engine against plain redis-py / psycopg loops on the local services.

:func:`redis_figures` adds ``count`` JSON records to a Redis stream, then measures

- ``redis_raw_rps``: a plain loop in this process — XREADGROUP a batch, compute
  ``price * qty``, XADD the results in one pipeline, XACK the batch;
- ``redis_rps_1w``: the engine — a DAG ``redis://stream/A`` → MultiplicationCalculator →
  ``redis://stream/B`` run by a supervisor with one worker process, timed from the first
  output entry to the last;
- ``sql_raw_rps``: the same stream read by a plain loop inserting each batch into a
  PostgreSQL table with ``executemany`` and one commit per batch;
- ``sql_rps_1w``: the engine — stream → calculator → ``sql://`` PostgreSQL insert, timed
  by watching the table's row count.

Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (user ``postgres``, database
``test``) must be running. Usage::

    python -m bench.redis            # 100k records; prints one JSON line
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from bench.serving import running

REDIS = {"host": "127.0.0.1", "port": 6379}
POSTGRES = {"db_type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
BATCH = 1000
TIMEOUT = 300.0  # seconds any one measurement may take


def bench_record(i: int) -> dict[str, Any]:
    return {"id": i, "price": float(i % 100), "qty": 2}


def fill_stream(client: Any, stream: str, count: int) -> None:
    for start in range(0, count, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + BATCH)):
            pipe.xadd(stream, {"data": json.dumps(bench_record(i), separators=(",", ":"))})
        pipe.execute()


def raw_redis_rps(client: Any, source: str, target: str, count: int) -> float:
    """XREADGROUP → price*qty → pipelined XADD → XACK, batch by batch; records per second."""
    group = f"raw-{uuid.uuid4().hex[:6]}"
    client.xgroup_create(source, group, id="0")
    seen, start = 0, time.perf_counter()
    deadline = time.monotonic() + TIMEOUT
    while seen < count and time.monotonic() < deadline:
        reply = client.xreadgroup(group, "raw", {source: ">"}, count=BATCH, block=200)
        if not reply:
            continue
        entries = reply[0][1]
        pipe = client.pipeline(transaction=False)
        for _, fields in entries:
            record = json.loads(fields[b"data"])
            out = {"value": float(record["price"]) * float(record["qty"])}
            pipe.xadd(target, {"data": json.dumps(out, separators=(",", ":"))})
        pipe.xack(source, group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
        seen += len(entries)
    if seen < count:
        raise RuntimeError(f"the raw redis loop saw {seen} of {count} records")
    return seen / (time.perf_counter() - start)


def raw_sql_rps(client: Any, source: str, table: str, count: int) -> float:
    """XREADGROUP → price*qty → executemany INSERT + commit → XACK, batch by batch; records per second."""
    import psycopg

    group = f"rawsql-{uuid.uuid4().hex[:6]}"
    client.xgroup_create(source, group, id="0")
    conn = psycopg.connect(host=POSTGRES["host"], port=POSTGRES["port"], user=POSTGRES["user"],
                           dbname=POSTGRES["database"])
    seen, start = 0, time.perf_counter()
    deadline = time.monotonic() + TIMEOUT
    try:
        while seen < count and time.monotonic() < deadline:
            reply = client.xreadgroup(group, "raw", {source: ">"}, count=BATCH, block=200)
            if not reply:
                continue
            entries = reply[0][1]
            rows = []
            for _, fields in entries:
                record = json.loads(fields[b"data"])
                rows.append({"id": record["id"], "value": float(record["price"]) * float(record["qty"])})
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} (id, value) VALUES (%(id)s, %(value)s) "
                                "ON CONFLICT DO NOTHING", rows)
            conn.commit()
            client.xack(source, group, *[entry_id for entry_id, _ in entries])
            seen += len(entries)
    finally:
        conn.close()
    if seen < count:
        raise RuntimeError(f"the raw sql loop saw {seen} of {count} records")
    return seen / (time.perf_counter() - start)


def stream_dag(source: str, destination: dict[str, Any], with_id: bool = False) -> dict[str, Any]:
    """stream → ``value = price * qty`` → destination; ``with_id``: the output also carries the input's ``id``
    (a second node keeping only ``id``, merged with the first by the publication node)."""
    calculators = [{"name": "value", "type": "MultiplicationCalculator",
                    "config": {"arguments": ["price", "qty"], "output_attribute": "value"}}]
    nodes = [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
             {"name": "value", "calculator": "value"},
             {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}]
    edges = [{"from_node": "ingest", "to_node": "value"}, {"from_node": "value", "to_node": "publish"}]
    if with_id:
        calculators.append({"name": "id", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["id"]}})
        nodes.append({"name": "id", "calculator": "id"})
        edges += [{"from_node": "ingest", "to_node": "id"}, {"from_node": "id", "to_node": "publish"}]
    return {
        "name": f"redis_bench_{uuid.uuid4().hex[:6]}",
        "epochs": {"max_records": BATCH, "max_inflight": 4},
        "checkpoint": {"every_epochs": 50},
        "subscribers": [{"name": "in", "config": {"source": f"redis://stream/{source}", **REDIS}}],
        "publishers": [{"name": "out", "config": destination}],
        "calculators": calculators, "nodes": nodes, "edges": edges,
    }


def engine_rps(dag: dict[str, Any], done: Any, count: int) -> float:
    """Run ``dag`` under a supervisor with one worker; ``done()`` says how many outputs exist so far.
    Records per second from the first output to the last."""
    first: float | None = None
    seen = 0
    with running([dag]):
        deadline = time.monotonic() + TIMEOUT
        while seen < count and time.monotonic() < deadline:
            seen = done()
            if seen and first is None:
                first = time.perf_counter()
            time.sleep(0.005)
        last = time.perf_counter()
    if seen < count or first is None:
        raise RuntimeError(f"the engine delivered {seen} of {count} records")
    return seen / max(last - first, 1e-9)


def redis_figures(count: int = 100_000, sql: bool = True) -> dict[str, float]:
    """``redis_rps_1w`` / ``redis_raw_rps`` (and, ``sql``, ``sql_rps_1w`` / ``sql_raw_rps``), records per second."""
    import redis

    client = redis.Redis(**REDIS)
    tag = uuid.uuid4().hex[:8]
    source, raw_out, engine_out = f"bench-in-{tag}", f"bench-raw-{tag}", f"bench-engine-{tag}"
    figures: dict[str, float] = {}
    try:
        fill_stream(client, source, count)
        figures["redis_raw_rps"] = raw_redis_rps(client, source, raw_out, count)
        dag = stream_dag(source, {"destination": f"redis://stream/{engine_out}", **REDIS})
        figures["redis_rps_1w"] = engine_rps(dag, lambda: client.xlen(engine_out), count)
        if sql:
            figures.update(sql_figures(client, source, count, tag))
    finally:
        client.delete(source, raw_out, engine_out)
        client.close()
    return figures


def sql_figures(client: Any, source: str, count: int, tag: str) -> dict[str, float]:
    import psycopg

    raw_table, engine_table = f"bench_raw_{tag}", f"bench_engine_{tag}"
    conn = psycopg.connect(host=POSTGRES["host"], port=POSTGRES["port"], user=POSTGRES["user"],
                           dbname=POSTGRES["database"], autocommit=True)
    try:
        for table in (raw_table, engine_table):
            conn.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, value DOUBLE PRECISION)")
        raw = raw_sql_rps(client, source, raw_table, count)
        insert = f"INSERT INTO {engine_table} (id, value) VALUES (%(id)s, %(value)s) ON CONFLICT DO NOTHING"
        dag = stream_dag(source, {"destination": "sql://bench", **POSTGRES, "insert_statement": insert}, with_id=True)

        def rows() -> int:
            """``count`` once the last id is in (records arrive in order), else 1 when any row is: two index
            probes, so watching the table does not slow the inserts down as a count(*) would."""
            probe = f"SELECT EXISTS (SELECT 1 FROM {engine_table} WHERE id = %s)"
            if conn.execute(probe, (count - 1,)).fetchone()[0]:
                return count
            return int(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {engine_table})").fetchone()[0])

        engine = engine_rps(dag, rows, count)
        stored = conn.execute(f"SELECT count(*) FROM {engine_table}").fetchone()[0]
        if stored != count:
            raise RuntimeError(f"the engine stored {stored} of {count} rows")
    finally:
        for table in (raw_table, engine_table):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()
    return {"sql_rps_1w": engine, "sql_raw_rps": raw}


if __name__ == "__main__":
    found = redis_figures()
    print(json.dumps({**found, "redis_ratio": found["redis_rps_1w"] / found["redis_raw_rps"],
                      "sql_ratio": found["sql_rps_1w"] / found["sql_raw_rps"]}))
