"""The ``sql://LABEL`` source (SPEC §6): a ``select_statement`` polled on a thread of its own.

The statement runs every ``poll_interval`` seconds in autocommit, its rows buffered for
``read_batch``. With ``cursor_column`` the statement gets the last cursor value handed out as
``%(cursor)s`` (``cursor_start`` before the first row) and must return rows in cursor order;
that value is the position. Without it, each poll hands out the whole result (snapshot
polling), and there is no position. A database out of reach at ``open()`` leaves the source
``reconnecting`` while the poller keeps trying (backoff capped at 10 s).

Usage::

    src = SqlSource("sql://shop", {"db_type": "postgres", "database": "test", "user": "postgres",
                                   "select_statement": "SELECT * FROM t WHERE id > %(cursor)s ORDER BY id LIMIT 1000",
                                   "cursor_column": "id"})
    src.open(None); src.read_batch(500, timeout=1.0); src.position()  # {'cursor': 1, 'below': 0, 'ties': ['5c1e..']}
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from adapters.base import CLOSED, CONNECTED, RECONNECTING, RejectedRecord, Source, setting
from adapters.sql.connect import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    QUERY_TIMEOUT,
    close_quietly,
    connect,
    describe_error,
    first_connection,
    is_transient,
    load_driver,
    positive_seconds,
    resolve_settings,
    time_limit,
)
from adapters.sql.cursor import CursorTrack, Mark, cursor_value
from adapters.sql.values import columns_to_parse, statement_parameters, to_record

log = logging.getLogger("adapters.sql")

LOW_WATER = 1000  # a cursor source polls again once fewer rows than this wait in its buffer
CLOSE_WAIT = 2.0  # seconds close() waits for the polling thread


def _check_parameters(origin: str, names: list[str], cursor_column: str | None, key_column: str | None) -> None:
    """The select_statement's parameters must be those its cursor settings give it."""
    if key_column is not None and cursor_column is None:
        raise ValueError(f"{origin}: a key_column ({key_column!r}) breaks ties of a cursor_column, which is missing")
    if cursor_column is None:
        if names:
            raise ValueError(f"{origin}: the select_statement has parameters {names}, but only %(cursor)s, with a "
                             "cursor_column (and %(key)s, with a key_column), is given")
        return
    wanted = ["cursor", "key"] if key_column is not None else ["cursor"]
    if sorted(names) != wanted:
        takes = "both %(cursor)s and %(key)s" if key_column is not None else "exactly one parameter, %(cursor)s"
        raise ValueError(f"{origin}: with cursor_column {cursor_column!r}"
                         + (f" and key_column {key_column!r}" if key_column is not None else "")
                         + f" the select_statement takes {takes}, not {names}")


class SqlSource(Source):
    """Polls ``select_statement``; with a ``cursor_column`` the position is where the last row handed out
    stands (:class:`adapters.sql.cursor.CursorTrack`: ``{"cursor": ..., "key": ...}`` with a ``key_column``)."""

    shareable = False

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.settings = resolve_settings(self.parsed, self.config, "select_statement")
        origin = self.settings.origin
        if not self.settings.statement:
            raise ValueError(f"{origin}: a sql source needs a 'select_statement' (inline or in the sql_config_file)")
        self.statement: str = self.settings.statement
        self.cursor_column = setting(self.config, self.parsed, "cursor_column", None)
        self.key_column = setting(self.config, self.parsed, "key_column", None)
        _check_parameters(origin, statement_parameters(self.statement, "select_statement"), self.cursor_column,
                          self.key_column)
        self.cursor_start = setting(self.config, self.parsed, "cursor_start", 0)
        self._track = CursorTrack(self.cursor_column, self.key_column, self.cursor_start) \
            if self.cursor_column is not None else None
        self.poll_interval = setting(self.config, self.parsed, "poll_interval", 1.0, positive_seconds)
        self.timeout = setting(self.config, self.parsed, "query_timeout", QUERY_TIMEOUT, positive_seconds)
        json_columns = self.config.get("json_columns") or []
        if not isinstance(json_columns, list) or not all(isinstance(c, str) for c in json_columns):
            raise ValueError(f"{origin}: 'json_columns' must be a list of column names, not {json_columns!r}")
        self.json_columns = frozenset(json_columns)
        self._driver: Any = None
        self._cond = threading.Condition()
        self._buffer: deque[tuple[Any, Mark | None]] = deque()  # (record or RejectedRecord, the position after it)
        self._mark: Mark | None = None  # the position after the last row handed out
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unordered_warned = False

    def open(self, position: Any | None) -> None:
        """Connect and start polling; with a cursor, resume after ``position``. A database out of reach leaves
        the source ``reconnecting`` (the poller keeps trying); a login refused for good raises ConnectionError."""
        if self._thread is not None:
            self.close()
        self._driver = load_driver(self.settings.kind)
        conn = first_connection(self._driver, self.settings, self.uri, True, self.timeout)  # None: unreachable
        self._mark = self._track.restore(position) if self._track is not None else None
        self._buffer.clear()
        self._failure = None
        self._stop = threading.Event()
        self.status = CONNECTED if conn is not None else RECONNECTING  # the poller connects, with a backoff
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
                raise RuntimeError(f"{self.uri}: polling stopped: {describe_error(self._failure)}") from self._failure
            out = []
            while self._buffer and len(out) < max_records:
                item, mark = self._buffer.popleft()
                out.append(item)
                self._mark = mark
            self._cond.notify_all()  # the poller may be waiting for room
        return out

    def position(self) -> dict[str, Any] | None:
        mark = self._mark
        return mark.encode(self.key_column is not None) if mark is not None else None

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
                    log.warning("%s: %s; reconnecting in %.1fs", self.uri, describe_error(exc), backoff)
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
                    self._cond.notify_all()
                catching_up = bool(items) and self.cursor_column is not None
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
        params = self._track.params() if self._track is not None else {}  # a literal % is %% always
        with time_limit(self._driver, conn, self.timeout), conn.cursor() as cur:
            cur.execute(self.statement, params)
            if cur.description is None:
                raise ValueError(f"{self.settings.origin}: the select_statement returns no rows (is it a SELECT?)")
            return cur.description, cur.fetchall()

    def _items(self, description: Any, rows: list[Any]) -> list[tuple[Any, Mark | None]]:
        """The new rows as (record, position after it) pairs, in the order they came."""
        columns = [column[0] for column in description]
        for key, column in (("cursor_column", self.cursor_column), ("key_column", self.key_column)):
            if column is not None and column not in columns:
                raise ValueError(f"{self.settings.origin}: {key} {column!r} is not a column of the "
                                 f"select_statement's result ({', '.join(columns)})")
        parse = columns_to_parse(self.settings.kind, description, self.json_columns)
        records = [to_record(columns, row, parse) for row in rows]
        if self._track is None:
            return [(item, None) for item in records]
        at = columns.index(self._track.column)
        key_at = columns.index(self.key_column) if self.key_column is not None else None
        entries, last = [], None
        for item, row in zip(records, rows, strict=True):
            cursor = cursor_value(row[at])
            key = cursor_value(row[key_at]) if key_at is not None else None
            here = (cursor, key) if key_at is not None else cursor
            self._check_order(last, here)
            entries.append((item, item.raw if isinstance(item, RejectedRecord) else item, cursor, key))
            last = here
        return self._track.take(entries)

    def _check_order(self, last: Any, here: Any) -> None:
        try:
            behind = here is None or (last is not None and (here <= last if self.key_column else here < last))
        except TypeError:
            behind = False
        if behind and not self._unordered_warned:
            self._unordered_warned = True
            order = f"{self.cursor_column}, {self.key_column}" if self.key_column else self.cursor_column
            log.warning("%s: the rows went from %r to %r: the select_statement must return rows after its "
                        "parameters, in cursor order (ORDER BY %s)", self.uri, last, here, order)

    def _fail(self, exc: BaseException) -> None:
        log.error("%s: polling stopped: %s", self.uri, describe_error(exc))
        with self._cond:
            self._failure = exc
            self._cond.notify_all()
