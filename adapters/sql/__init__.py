"""SQL databases: ``sql://LABEL`` (SPEC §6), MySQL/MariaDB through pymysql, PostgreSQL through psycopg 3.

LABEL names the connection in logs and messages; where it goes comes from the config
(inline keys, or the seed's ``sql_config_file``: see :mod:`adapters.sql.connect`).

Sink: each batch (one epoch) is one transaction: ``insert_statement`` (``%(attribute)s``
parameters) run with executemany, then COMMIT; the batch is acknowledged once committed. A
record without an attribute the statement names, or one the database refuses for its values
(a constraint, a bad value), is returned as a :class:`RejectedRecord` and the rest is written.
A lost connection is reopened (status ``reconnecting``, backoff up to 10 s) and the batch's
transaction, rolled back by the loss, run again; after ``publish_timeout`` seconds the sink raises.
With ``upsert_key`` (a list of columns) the statement becomes an insert-or-update on them
(:mod:`adapters.sql.upsert`), so a replay after a crash leaves one row per key (SPEC §12).

Source: :mod:`adapters.sql.source`. Connections, error kinds and the shared helpers:
:mod:`adapters.sql.connect`; values: :mod:`adapters.sql.values`.

Usage::

    sink = SqlSink("sql://shop", {"db_type": "postgres", "database": "test", "user": "postgres",
                                  "insert_statement": "INSERT INTO t (id) VALUES (%(id)s) ON CONFLICT DO NOTHING"})
    sink.open(); sink.write_batch([{"id": 1}]); sink.close()
    src = SqlSource("sql://shop", {"db_type": "postgres", "database": "test", "user": "postgres",
                                   "select_statement": "SELECT * FROM t WHERE id > %(cursor)s ORDER BY id LIMIT 1000",
                                   "cursor_column": "id"})
    src.open(None); src.read_batch(500, timeout=1.0); src.position()  # {'cursor': 1, 'below': 0, 'ties': ['5c1e..']}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from adapters.base import (
    CLOSED,
    CONNECTED,
    DESTINATION,
    RECONNECTING,
    Adapter,
    ConfigProblem,
    ParsedUri,
    RejectedRecord,
    Sink,
    setting,
)
from adapters.sql.connect import (
    CONNECTION_KEYS,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    QUERY_TIMEOUT,
    close_quietly,
    connect,
    db_type_problem,
    describe_error,
    first_connection,
    is_record_error,
    is_transient,
    load_driver,
    positive_seconds,
    resolve_settings,
    time_limit,
)
from adapters.sql.source import SqlSource
from adapters.sql.upsert import upsert_key_problem, upsert_statement
from adapters.sql.values import param_value, statement_parameters

log = logging.getLogger(__name__)

KEYS = (*CONNECTION_KEYS, "sql_config_file", "query_timeout", "max_depth")
SOURCE_KEYS = (*KEYS, "select_statement", "poll_interval", "cursor_column", "key_column", "cursor_start",
               "json_columns")
SINK_KEYS = (*KEYS, "insert_statement", "upsert_key", "publish_interval", "batch_size")  # the last two: ignored


def check_upsert_key(parsed: ParsedUri, config: Mapping[str, Any], role: str,
                     dag: Mapping[str, int]) -> list[ConfigProblem]:
    """``dagserver check``: a publisher's ``upsert_key`` is a list of columns of an inline ``insert_statement``
    that can be rewritten (adapters/sql/upsert.py)."""
    key = config.get("upsert_key")
    if role != DESTINATION or key is None:
        return []
    problem = upsert_key_problem(key)
    statement = config.get("insert_statement")
    if problem is None and isinstance(statement, str):
        try:
            upsert_statement(statement, key, "postgres")  # the parse is the same for both databases
        except ValueError as exc:
            problem = str(exc)
    return [] if problem is None else [ConfigProblem(
        "upsert_key", problem, "write the insert_statement as INSERT INTO table (col, ...) VALUES (%(col)s, ...) "
        "and name some of its columns (with a unique index or primary key on them) in upsert_key")]


def check_sql_uri(parsed: ParsedUri) -> str | None:
    if not parsed.parts:
        return f"sql URI {parsed.raw!r} must name a connection label (sql://LABEL)"
    if "db_type" in parsed.params:
        return db_type_problem(parsed.params["db_type"], f"sql URI {parsed.raw!r}")
    if "port" in parsed.params and not parsed.params["port"].isdigit():
        return f"sql URI {parsed.raw!r}: 'port' must be a number, not {parsed.params['port']!r}"
    return None


class SqlSink(Sink):
    """Writes each batch with ``insert_statement`` in one transaction; acknowledged = committed."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.settings = resolve_settings(self.parsed, self.config, "insert_statement")
        if not self.settings.statement:
            raise ValueError(f"{self.settings.origin}: a sql sink needs an 'insert_statement' (inline or in the "
                             "sql_config_file)")
        self.statement: str = self.settings.statement
        if self.config.get("upsert_key") is not None:  # insert-or-update: a replay updates rows, adds none
            self.statement = upsert_statement(self.statement, self.config["upsert_key"], self.settings.kind)
        self.names = statement_parameters(self.statement, "insert_statement")
        self.wait_limit = float(self.config.get("publish_timeout") or 30.0)  # as the publisher's watchdog
        query_timeout = setting(self.config, self.parsed, "query_timeout", QUERY_TIMEOUT, positive_seconds)
        self.timeout = min(query_timeout, max(1.0, self.wait_limit / 2))  # leaves time for a retry
        self._driver: Any = None
        self._conn: Any = None
        self._handover = threading.Lock()  # the writer and the background connector both may set _conn
        self._closing = threading.Event()

    def open(self) -> None:
        """Connect; a database out of reach leaves the sink ``reconnecting`` (a thread keeps trying until it
        is back, and every batch tries too); a refused login raises."""
        self._driver = load_driver(self.settings.kind)
        self._closing = threading.Event()
        self._conn = first_connection(self._driver, self.settings, self.uri, False, self.timeout)
        self.status = CONNECTED if self._conn is not None else RECONNECTING
        if self._conn is None:
            threading.Thread(target=self._connect_later, args=(self._closing,), daemon=True,
                             name=f"sql-connect-{self.parsed.body}").start()

    def _connect_later(self, closing: threading.Event) -> None:
        """Connect with a backoff (up to 10 s) until connected, so an idle sink says when its database is back."""
        backoff = FIRST_BACKOFF
        while not closing.wait(backoff) and self._conn is None:
            try:
                conn = connect(self._driver, self.settings, autocommit=False, timeout=self.timeout)
            except Exception as exc:
                log.debug("%s: still cannot connect: %s", self.uri, describe_error(exc))
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self._adopt(conn, closing)
            return

    def _adopt(self, conn: Any, closing: threading.Event) -> None:
        """Make ``conn`` the sink's connection unless it has one already (or is closing): then close it."""
        with self._handover:
            if self._conn is None and not closing.is_set():
                self._conn, conn = conn, None
                self.status = CONNECTED
        close_quietly(conn)

    def write_batch(self, records: list[dict]) -> list[RejectedRecord] | None:
        if self._driver is None:
            raise RuntimeError(f"{self!r} is not open")
        rows, refused = [], []
        for record in records:
            missing = [name for name in self.names if name not in record]
            if missing:
                refused.append(RejectedRecord(record, f"{self.uri}: the record has no {', '.join(map(repr, missing))} "
                                                      "for the insert_statement"))
            else:
                rows.append((record, {name: param_value(record[name]) for name in self.names}))
        if rows:
            refused += self._write(rows)
        return refused or None

    def _write(self, rows: list[tuple[dict, dict[str, Any]]]) -> list[RejectedRecord]:
        """Run the batch's transaction until it commits; reconnect on a lost connection until ``publish_timeout``."""
        deadline = time.monotonic() + self.wait_limit
        backoff = FIRST_BACKOFF
        while True:
            try:
                if self._conn is None:
                    self._adopt(connect(self._driver, self.settings, autocommit=False, timeout=self.timeout),
                                self._closing)
                refused = self._transaction(self._conn, rows)
                self.status = CONNECTED
                return refused
            except Exception as exc:
                if not is_transient(self._driver, exc):
                    self._rollback()
                    raise
                self.status = RECONNECTING
                close_quietly(self._conn)
                self._conn = None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionError(f"{self.uri}: {len(rows)} records not written to "
                                          f"{self.settings.describe()} within publish_timeout "
                                          f"{self.wait_limit:g}s: {describe_error(exc)}") from exc
                log.warning("%s: %s; reconnecting in %.1fs", self.uri, describe_error(exc), min(backoff, left))
                time.sleep(min(backoff, left))
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _transaction(self, conn: Any, rows: list[tuple[dict, dict[str, Any]]]) -> list[RejectedRecord]:
        driver, refused = self._driver, []
        try:
            with time_limit(driver, conn, self.timeout), conn.cursor() as cur:
                cur.executemany(self.statement, [params for _, params in rows])
        except Exception as exc:
            if not is_record_error(driver, exc):
                raise
            with time_limit(driver, conn, self.timeout):
                conn.rollback()
            refused = self._row_by_row(conn, rows)
        with time_limit(driver, conn, self.timeout):
            conn.commit()
        return refused

    def _row_by_row(self, conn: Any, rows: list[tuple[dict, dict[str, Any]]]) -> list[RejectedRecord]:
        """The batch again, one row at a time behind a savepoint: the rows the database refuses are left out."""
        refused = []
        with time_limit(self._driver, conn, self.timeout), conn.cursor() as cur:
            for record, params in rows:
                cur.execute("SAVEPOINT dagserver_row")
                try:
                    cur.execute(self.statement, params)
                except Exception as exc:
                    if not is_record_error(self._driver, exc):
                        raise
                    cur.execute("ROLLBACK TO SAVEPOINT dagserver_row")
                    reason = f"{self.uri}: refused by the database: {describe_error(exc)}"
                    refused.append(RejectedRecord(record, reason))
        return refused

    def _rollback(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            with time_limit(self._driver, conn, self.timeout):
                conn.rollback()
        except Exception:  # the connection is unusable: the next batch opens another
            close_quietly(conn)
            self._conn = None

    def flush(self) -> None:
        """Nothing to do: every batch was committed by ``write_batch``."""

    def close(self) -> None:
        self._closing.set()
        with self._handover:
            conn, self._conn = self._conn, None
        close_quietly(conn)
        self.status = CLOSED


# one poller per query: not shareable
ADAPTER = Adapter("sql", check_sql_uri, source=SqlSource, sink=SqlSink, source_keys=SOURCE_KEYS,
                  sink_keys=SINK_KEYS, extra="sql", check_config=check_upsert_key)

__all__ = ["ADAPTER", "SqlSink", "SqlSource"]
