"""SQL databases: ``sql://LABEL`` (SPEC §6), MySQL/MariaDB through pymysql, PostgreSQL through psycopg 3.

LABEL names the connection in logs and messages; where it goes comes from the config
(inline keys, or the seed's ``sql_config_file``: see :mod:`adapters.sql.connect`).

Sink: each batch (one epoch) is one transaction: ``insert_statement`` (``%(attribute)s``
parameters) run with executemany, then COMMIT; the batch is acknowledged once committed. A
record without an attribute the statement names, or one the database refuses for its values
(a constraint, a bad value), is returned as a :class:`RejectedRecord` and the rest is written.
A lost connection is reopened (status ``reconnecting``, backoff up to 10 s) and the batch's
transaction, rolled back by the loss, run again; after ``publish_timeout`` seconds the sink raises.

Source: ``select_statement`` run every ``poll_interval`` seconds on a thread of its own, in
autocommit, its rows buffered for ``read_batch``. With ``cursor_column`` the statement gets the
last cursor value handed out as ``%(cursor)s`` (``cursor_start`` before the first row) and must
return rows in cursor order; that value is the position. Without it, each poll hands out the
whole result (snapshot polling), and there is no position. Values: :mod:`adapters.sql.values`.

Usage::

    sink = SqlSink("sql://shop", {"db_type": "postgres", "database": "test", "user": "postgres",
                                  "insert_statement": "INSERT INTO t (id) VALUES (%(id)s) ON CONFLICT DO NOTHING"})
    sink.open(); sink.write_batch([{"id": 1}]); sink.close()
    src = SqlSource("sql://shop", {"db_type": "postgres", "database": "test", "user": "postgres",
                                   "select_statement": "SELECT * FROM t WHERE id > %(cursor)s ORDER BY id LIMIT 1000",
                                   "cursor_column": "id"})
    src.open(None); src.read_batch(500, timeout=1.0); src.position()     # {'cursor': 1}
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from adapters.base import CLOSED, CONNECTED, RECONNECTING, Adapter, ParsedUri, RejectedRecord, Sink, Source, setting
from adapters.sql.connect import (
    CONNECTION_KEYS,
    SqlSettings,
    close_quietly,
    connect,
    db_type_problem,
    is_record_error,
    is_transient,
    load_driver,
    resolve_settings,
    time_limit,
)
from adapters.sql.values import columns_to_parse, param_value, statement_parameters, to_record

log = logging.getLogger(__name__)

KEYS = (*CONNECTION_KEYS, "sql_config_file", "query_timeout", "max_depth")
SOURCE_KEYS = (*KEYS, "select_statement", "poll_interval", "cursor_column", "cursor_start", "json_columns")
SINK_KEYS = (*KEYS, "insert_statement", "publish_interval", "batch_size")  # the last two: the seed's, ignored
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 10.0  # seconds between reconnection attempts (SPEC §6: capped at 10 s)
QUERY_TIMEOUT = 30.0  # seconds one statement may take before its connection is taken for dead
LOW_WATER = 1000  # a cursor source polls again once fewer rows than this wait in its buffer
CLOSE_WAIT = 2.0  # seconds close() waits for the polling thread


def check_sql_uri(parsed: ParsedUri) -> str | None:
    if not parsed.parts:
        return f"sql URI {parsed.raw!r} must name a connection label (sql://LABEL)"
    if "db_type" in parsed.params:
        return db_type_problem(parsed.params["db_type"], f"sql URI {parsed.raw!r}")
    if "port" in parsed.params and not parsed.params["port"].isdigit():
        return f"sql URI {parsed.raw!r}: 'port' must be a number, not {parsed.params['port']!r}"
    return None


def _positive(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _open_connection(driver: Any, settings: SqlSettings, uri: str, autocommit: bool, timeout: float) -> Any:
    """A first connection: a failure here (wrong host, password, database) fails the endpoint's opening."""
    try:
        return connect(driver, settings, autocommit=autocommit, timeout=timeout)
    except Exception as exc:
        raise ConnectionError(f"{uri}: cannot connect to {settings.describe()}: {_describe(exc)}") from exc


class SqlSink(Sink):
    """Writes each batch with ``insert_statement`` in one transaction; acknowledged = committed."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.settings = resolve_settings(self.parsed, self.config, "insert_statement")
        if not self.settings.statement:
            raise ValueError(f"{self.settings.origin}: a sql sink needs an 'insert_statement' (inline or in the "
                             "sql_config_file)")
        self.statement: str = self.settings.statement
        self.names = statement_parameters(self.statement, "insert_statement")
        self.wait_limit = float(self.config.get("publish_timeout") or 30.0)  # as the publisher's watchdog
        query_timeout = setting(self.config, self.parsed, "query_timeout", QUERY_TIMEOUT, _positive)
        self.timeout = min(query_timeout, max(1.0, self.wait_limit / 2))  # leaves time for a retry
        self._driver: Any = None
        self._conn: Any = None

    def open(self) -> None:
        self._driver = load_driver(self.settings.kind)
        self._conn = _open_connection(self._driver, self.settings, self.uri, False, self.timeout)
        self.status = CONNECTED

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
                    self._conn = connect(self._driver, self.settings, autocommit=False, timeout=self.timeout)
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
                    raise ConnectionError(f"{self.uri}: {len(rows)} records not written to {self.settings.describe()} "
                                          f"within publish_timeout {self.wait_limit:g}s: {_describe(exc)}") from exc
                log.warning("%s: %s; reconnecting in %.1fs", self.uri, _describe(exc), min(backoff, left))
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
                    refused.append(RejectedRecord(record, f"{self.uri}: refused by the database: {_describe(exc)}"))
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
        conn, self._conn = self._conn, None
        close_quietly(conn)
        self.status = CLOSED


class SqlSource(Source):
    """Polls ``select_statement``; position = ``{"cursor": last value handed out}`` with a ``cursor_column``."""

    shareable = False

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.settings = resolve_settings(self.parsed, self.config, "select_statement")
        origin = self.settings.origin
        if not self.settings.statement:
            raise ValueError(f"{origin}: a sql source needs a 'select_statement' (inline or in the sql_config_file)")
        self.statement: str = self.settings.statement
        self.cursor_column = setting(self.config, self.parsed, "cursor_column", None)
        names = statement_parameters(self.statement, "select_statement")
        if self.cursor_column is not None and names != ["cursor"]:
            raise ValueError(f"{origin}: with a cursor_column the select_statement takes exactly one parameter, "
                             f"%(cursor)s, not {names}")
        if self.cursor_column is None and names:
            raise ValueError(f"{origin}: the select_statement has parameters {names}, but only %(cursor)s, with a "
                             "cursor_column, is given")
        self.cursor_start = setting(self.config, self.parsed, "cursor_start", 0)
        self.poll_interval = setting(self.config, self.parsed, "poll_interval", 1.0, _positive)
        self.timeout = setting(self.config, self.parsed, "query_timeout", QUERY_TIMEOUT, _positive)
        json_columns = self.config.get("json_columns") or []
        if not isinstance(json_columns, list) or not all(isinstance(c, str) for c in json_columns):
            raise ValueError(f"{origin}: 'json_columns' must be a list of column names, not {json_columns!r}")
        self.json_columns = frozenset(json_columns)
        self._driver: Any = None
        self._cond = threading.Condition()
        self._buffer: deque[tuple[Any, Any]] = deque()  # (record or RejectedRecord, its cursor value)
        self._cursor: Any = None  # the last cursor value handed out: the position
        self._polled: Any = None  # the last cursor value fetched: the next poll's %(cursor)s
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unordered_warned = False

    def open(self, position: Any | None) -> None:
        """Connect and start polling; with a cursor, resume after ``position``'s cursor value."""
        if self._thread is not None:
            self.close()
        self._driver = load_driver(self.settings.kind)
        conn = _open_connection(self._driver, self.settings, self.uri, True, self.timeout)
        found = isinstance(position, Mapping) and "cursor" in position
        self._cursor = self._polled = position["cursor"] if found else self.cursor_start  # type: ignore[index]
        self._buffer.clear()
        self._failure = None
        self._stop = threading.Event()
        self.status = CONNECTED
        self._thread = threading.Thread(target=self._run, args=(conn, self._stop), daemon=True,
                                        name=f"sql-poll-{self.parsed.body}")
        self._thread.start()

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self._thread is None:
            raise RuntimeError(f"{self!r} is not open")
        with self._cond:
            if not self._buffer and self._failure is None:
                self._cond.wait(max(0.0, timeout))
            if not self._buffer and self._failure is not None:
                raise RuntimeError(f"{self.uri}: polling stopped: {_describe(self._failure)}") from self._failure
            out = []
            while self._buffer and len(out) < max_records:
                item, cursor = self._buffer.popleft()
                out.append(item)
                self._cursor = cursor
            self._cond.notify_all()  # the poller may be waiting for room
        return out

    def position(self) -> dict[str, Any] | None:
        return {"cursor": self._cursor} if self.cursor_column is not None else None

    def backlog(self) -> int | None:
        return len(self._buffer)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(CLOSE_WAIT)  # a thread stuck in a query ends by itself within query_timeout
        self.status = CLOSED

    # -- the polling thread ----------------------------------------------------------------------
    def _run(self, conn: Any, stop: threading.Event) -> None:
        backoff, due = FIRST_BACKOFF, 0.0
        try:
            while self._wait_until_due(due, stop):
                started = time.monotonic()
                try:
                    if conn is None:
                        conn = connect(self._driver, self.settings, autocommit=True, timeout=self.timeout)
                    description, rows = self._query(conn)
                except Exception as exc:
                    if stop.is_set():
                        return
                    if not is_transient(self._driver, exc):
                        self._fail(exc)
                        return
                    self.status = RECONNECTING
                    log.warning("%s: %s; reconnecting in %.1fs", self.uri, _describe(exc), backoff)
                    close_quietly(conn)
                    conn = None
                    stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                if stop.is_set():
                    return
                self.status, backoff = CONNECTED, FIRST_BACKOFF
                try:
                    items = self._items(description, rows)
                except ValueError as exc:
                    self._fail(exc)
                    return
                with self._cond:
                    self._buffer.extend(items)
                    if items and self.cursor_column is not None:
                        self._polled = items[-1][1]
                    self._cond.notify_all()
                catching_up = bool(rows) and self.cursor_column is not None
                due = 0.0 if catching_up else started + self.poll_interval
        finally:
            close_quietly(conn)

    def _wait_until_due(self, due: float, stop: threading.Event) -> bool:
        """Wait until a poll is due and there is room for its rows; False once stopped."""
        with self._cond:
            while not stop.is_set():
                full = len(self._buffer) >= LOW_WATER if self.cursor_column is not None else bool(self._buffer)
                wait = 0.5 if full else due - time.monotonic()
                if wait <= 0:
                    return True
                self._cond.wait(wait)
        return False

    def _query(self, conn: Any) -> tuple[Any, list[Any]]:
        params = {"cursor": self._polled} if self.cursor_column is not None else {}  # a literal % is %% always
        with time_limit(self._driver, conn, self.timeout), conn.cursor() as cur:
            cur.execute(self.statement, params)
            if cur.description is None:
                raise ValueError(f"{self.settings.origin}: the select_statement returns no rows (is it a SELECT?)")
            return cur.description, cur.fetchall()

    def _items(self, description: Any, rows: list[Any]) -> list[tuple[Any, Any]]:
        """Rows as (record, cursor value) pairs, in the order they came."""
        columns = [column[0] for column in description]
        column = self.cursor_column
        if column is not None and column not in columns:
            raise ValueError(f"{self.settings.origin}: cursor_column {column!r} is not a column of the "
                             f"select_statement's result ({', '.join(columns)})")
        parse = columns_to_parse(self.settings.kind, description, self.json_columns)
        items, last = [], self._polled
        for row in rows:
            item = to_record(columns, row, parse)
            if column is None:
                items.append((item, None))
                continue
            cursor = (item.raw if isinstance(item, RejectedRecord) else item)[column]
            self._check_order(last, cursor)
            items.append((item, cursor))
            last = cursor
        return items

    def _check_order(self, last: Any, cursor: Any) -> None:
        try:
            behind = cursor is None or (last is not None and cursor <= last)
        except TypeError:
            behind = False
        if behind and not self._unordered_warned:
            self._unordered_warned = True
            log.warning("%s: cursor_column %r went from %r to %r: the select_statement must return rows with "
                        "cursor values above %%(cursor)s, in cursor order (ORDER BY %s)", self.uri,
                        self.cursor_column, last, cursor, self.cursor_column)

    def _fail(self, exc: BaseException) -> None:
        log.error("%s: polling stopped: %s", self.uri, _describe(exc))
        with self._cond:
            self._failure = exc
            self._cond.notify_all()


ADAPTER = Adapter("sql", check_sql_uri, source=SqlSource, sink=SqlSink, source_keys=SOURCE_KEYS,
                  sink_keys=SINK_KEYS, extra="sql")  # one poller per query: not shareable
