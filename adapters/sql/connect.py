"""Connections of the ``sql://LABEL`` adapter: settings, drivers, time limits and error kinds.

An endpoint's connection settings come from, in this order: its inline config, the URI query
(``sql://warehouse?db_type=postgres&host=db1``), the JSON file named by ``sql_config_file``
(the seed's way; a relative path is taken from the current directory), then the defaults
(``host`` localhost, ``port`` 3306 for MySQL/MariaDB and 5432 for PostgreSQL). A password
written ``"${NAME}"`` is read from the environment variable NAME. Every error names where the
bad value came from.

The drivers are pymysql (``db_type`` ``mysql`` / ``mariadb``) and psycopg 3 (``postgres`` /
``postgresql``), imported only when a connection opens. Both take ``%(name)s`` parameters.

Usage::

    settings = resolve_settings(parse_uri("sql://shop"), {"sql_config_file": "db.json"}, "insert_statement")
    driver = load_driver(settings.kind)
    conn = connect(driver, settings, autocommit=False, timeout=30)
    with time_limit(driver, conn, 30):       # a stalled server cannot hold the caller longer
        conn.cursor().execute("SELECT 1")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.base import ParsedUri, from_environment
from adapters.registry import AdapterNotAvailable
from graphs.suggest import mean_phrase

log = logging.getLogger("adapters.sql")

MYSQL, POSTGRES = "mysql", "postgres"
DB_TYPES = {"mysql": MYSQL, "mariadb": MYSQL, "postgres": POSTGRES, "postgresql": POSTGRES}
DEFAULT_PORTS = {MYSQL: 3306, POSTGRES: 5432}
CONNECTION_KEYS = ("db_type", "host", "port", "user", "password", "database")
STATEMENT_KEYS = ("insert_statement", "select_statement")
FILE_KEYS = (*CONNECTION_KEYS, *STATEMENT_KEYS)  # what a sql_config_file may hold
CONNECT_TIMEOUT = 10.0  # seconds, at most: opening a connection (handshake and login included)
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 10.0  # seconds between reconnection attempts (SPEC §6: capped at 10 s)
QUERY_TIMEOUT = 30.0  # seconds one statement may take before its connection is taken for dead
# MySQL/MariaDB server errors worth a new connection and a retry: too many connections, shutdown,
# lock wait timeout, deadlock, connection killed. Client errors (2000-2999: lost, gone away) are too.
_MYSQL_RETRY = {1040, 1053, 1205, 1213, 1927}
# MySQL/MariaDB server errors about the values of one row (SPEC §6: that record's publish error, the rest of the
# batch is written), whatever exception class pymysql maps them to (1292, 4025, 1365 and 3819 come as
# OperationalError): 1048 NULL into NOT NULL, 1062 duplicate key, 1264 out of range, 1265 data truncated,
# 1292 incorrect date/time or number, 1365 division by 0, 1366 incorrect integer/string value, 1367 illegal
# value, 1406 data too long, 1411 incorrect value for a function, 1416 not a geometry, 1451/1452 foreign key,
# 1690 out of range in an expression, 3140 invalid JSON text, 3156 invalid JSON for CAST, 3819 CHECK violated
# (MySQL), 4025 CONSTRAINT failed (MariaDB: a CHECK or a JSON column's JSON_VALID). Besides these, any error
# whose SQLSTATE is of class 22 (data exception) or 23 (integrity constraint violation), on both databases.
MYSQL_RECORD_ERRORS = frozenset({1048, 1062, 1264, 1265, 1292, 1365, 1366, 1367, 1406, 1411, 1416, 1451, 1452,
                                 1690, 3140, 3156, 3819, 4025})
RECORD_SQLSTATE_CLASSES = ("22", "23")


@dataclass(frozen=True)
class SqlSettings:
    """Where and how one endpoint connects, and its statement (insert for a sink, select for a source)."""

    kind: str  # MYSQL or POSTGRES
    host: str
    port: int
    user: str | None
    password: str | None
    database: str | None
    statement: str | None
    origin: str  # "sql://LABEL", plus the config file when there is one: for messages

    def describe(self) -> str:
        """``postgres://user@host:port/database`` (no password): for logs and errors."""
        who = f"{self.user}@" if self.user else ""
        return f"{self.kind}://{who}{self.host}:{self.port}/{self.database or ''}"


def db_type_problem(value: Any, where: str) -> str | None:
    """What is wrong with a ``db_type`` value, naming it and the choices; None if it is fine."""
    if isinstance(value, str) and value.lower() in DB_TYPES:
        return None
    return f"{where}: 'db_type' must be one of {', '.join(DB_TYPES)}, not {value!r}"


def read_config_file(path: str) -> dict[str, Any]:
    """The JSON object of a ``sql_config_file`` (relative paths: from the current directory).

    Raises ValueError naming the file for a missing or unreadable file, bad JSON, something
    other than an object, or a key that is not one of :data:`FILE_KEYS`.
    """
    where = f"sql_config_file {path!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{where} not found (a relative path is taken from the current directory, "
                         f"{os.getcwd()})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a JSON object, not {type(data).__name__}")
    for key in data:
        if key not in FILE_KEYS:
            hint = mean_phrase(key, FILE_KEYS) or f"accepted: {', '.join(FILE_KEYS)}"
            raise ValueError(f"{where}: unknown key {key!r} ({hint})")
    return data


def resolve_settings(parsed: ParsedUri, config: Mapping[str, Any], statement_key: str) -> SqlSettings:
    """An endpoint's settings: inline config, else URI query, else ``sql_config_file``, else defaults."""
    file_name = config.get("sql_config_file") or parsed.params.get("sql_config_file")
    if file_name is not None and not isinstance(file_name, str):
        raise ValueError(f"{parsed.raw}: 'sql_config_file' must be a path, not {file_name!r}")
    from_file = read_config_file(file_name) if file_name else {}
    origin = f"{parsed.raw} (sql_config_file {file_name!r})" if file_name else parsed.raw

    def pick(key: str) -> tuple[Any, str]:
        if config.get(key) is not None:
            return config[key], parsed.raw
        if key in parsed.params:
            return parsed.params[key], f"{parsed.raw} (URI query)"
        if from_file.get(key) is not None:
            return from_file[key], f"sql_config_file {file_name!r}"
        return None, origin

    db_type, where = pick("db_type")
    if db_type is None:
        raise ValueError(f"{origin}: 'db_type' is missing (one of {', '.join(DB_TYPES)}; inline or in the "
                         "sql_config_file)")
    if problem := db_type_problem(db_type, where):
        raise ValueError(problem)
    kind = DB_TYPES[db_type.lower()]
    port, where = pick("port")
    if port is None:
        port = DEFAULT_PORTS[kind]
    elif isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where}: 'port' must be a TCP port number, not {port!r}")
    text = {key: _text(key, *pick(key)) for key in ("host", "user", "password", "database", statement_key)}
    return SqlSettings(kind=kind, host=text["host"] or "localhost", port=int(port), user=text["user"],
                       password=_password(text["password"], pick("password")[1]), database=text["database"],
                       statement=text[statement_key], origin=origin)


def _text(key: str, value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string, not {value!r}")
    return value


def _password(value: str | None, where: str) -> str | None:
    """The password, with ``"${NAME}"`` read from the environment (an unset NAME is an error naming it)."""
    return from_environment(value, f"{where}: 'password'")


def load_driver(kind: str) -> Any:
    """pymysql (MySQL/MariaDB) or psycopg 3 (PostgreSQL), or a clear error naming the extra that installs it."""
    try:
        if kind == MYSQL:
            import pymysql

            return pymysql
        import psycopg

        return psycopg
    except ImportError as exc:
        package = "pymysql" if kind == MYSQL else "psycopg"
        raise AdapterNotAvailable(f"sql:// with db_type {kind} needs the Python package {package}: "
                                  "pip install 'dagserver[sql]'") from exc


def connect(driver: Any, settings: SqlSettings, *, autocommit: bool, timeout: float) -> Any:
    """A new connection. ``timeout`` bounds each read and write on it (MySQL; PostgreSQL: see :func:`time_limit`)."""
    wait = min(CONNECT_TIMEOUT, timeout)
    if settings.kind == MYSQL:
        return driver.connect(host=settings.host, port=settings.port, user=settings.user,
                              password=settings.password or "", database=settings.database, charset="utf8mb4",
                              autocommit=autocommit, connect_timeout=wait, read_timeout=timeout,
                              write_timeout=timeout)
    given = {"host": settings.host, "port": settings.port, "user": settings.user, "password": settings.password,
             "dbname": settings.database}
    return driver.connect(**{k: v for k, v in given.items() if v is not None}, autocommit=autocommit,
                          connect_timeout=max(2, int(wait)), application_name="dagserver")


@contextlib.contextmanager
def time_limit(driver: Any, conn: Any, seconds: float) -> Iterator[None]:
    """Cut ``conn``'s socket if what runs inside takes longer than ``seconds`` (the call then fails with a
    connection error). psycopg has no read timeout and a stalled server keeps its TCP connection alive,
    so only this notices; pymysql's ``read_timeout`` does the same for MySQL, and this is a no-op there."""
    if getattr(driver, "__name__", "") != "psycopg":
        yield
        return
    lock, active = threading.Lock(), [True]
    fileno = conn.fileno()

    def sever() -> None:
        with lock:
            if active[0]:
                _shutdown(fileno)

    timer = threading.Timer(seconds, sever)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            active[0] = False
        timer.cancel()


def _shutdown(fileno: int) -> None:
    """Shut the socket behind ``fileno`` down (both ways) without closing the owner's descriptor."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fileno))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def is_transient(driver: Any, exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is gone or the server asked for a retry (reconnect, retry)."""
    if isinstance(exc, OSError | EOFError):
        return True
    if isinstance(exc, driver.InterfaceError):
        return True
    if not isinstance(exc, driver.OperationalError):
        return False
    if getattr(driver, "__name__", "") != "pymysql":
        return True  # psycopg: connection exceptions, shutdowns, cancels, serialization failures, deadlocks
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return 2000 <= code < 3000 or code in _MYSQL_RETRY


# MySQL/MariaDB answers to a login that no retry changes: access denied (1044, 1045, 1698), unknown database (1049)
_MYSQL_REFUSED = {1044, 1045, 1049, 1698}
# what PostgreSQL says (psycopg gives no SQLSTATE at connect) when it refuses a login for good
_POSTGRES_REFUSED = ("authentication failed", "does not exist", "no pg_hba.conf entry", "permission denied")


def is_refusal(driver: Any, exc: BaseException) -> bool:
    """Whether a failed connection attempt was the server saying no for good (a wrong password, user or
    database name), not an outage: opening an endpoint raises for these and retries everything else."""
    if not isinstance(exc, driver.Error):
        return False
    if getattr(driver, "__name__", "") == "pymysql":
        return bool(exc.args) and exc.args[0] in _MYSQL_REFUSED
    text = str(exc)
    return any(words in text for words in _POSTGRES_REFUSED)


def is_record_error(driver: Any, exc: BaseException) -> bool:
    """Whether ``exc`` is about the values of a row (a constraint, a bad value), not the statement or link:
    SQLSTATE class 22 or 23 (PostgreSQL: psycopg's DataError and IntegrityError), or for MySQL/MariaDB one of
    :data:`MYSQL_RECORD_ERRORS`. The same rule on both databases."""
    if isinstance(exc, driver.IntegrityError | driver.DataError):
        return True
    if not isinstance(exc, driver.Error):
        return False
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state[:2] in RECORD_SQLSTATE_CLASSES:
        return True
    if getattr(driver, "__name__", "") != "pymysql":
        return False
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return code in MYSQL_RECORD_ERRORS


def close_quietly(conn: Any) -> None:
    """Close ``conn``, ignoring errors (it may be broken already)."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def positive_seconds(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def first_connection(driver: Any, settings: SqlSettings, uri: str, autocommit: bool, timeout: float) -> Any:
    """An endpoint's first connection, or None while the database cannot be reached (an outage: the endpoint
    opens ``reconnecting`` and keeps trying, SPEC §6). A login the server refuses for good (a wrong password,
    user or database) raises ConnectionError: no retry would change it."""
    try:
        return connect(driver, settings, autocommit=autocommit, timeout=timeout)
    except Exception as exc:
        if is_refusal(driver, exc):
            raise ConnectionError(f"{uri}: cannot connect to {settings.describe()}: {describe_error(exc)}") from exc
        log.warning("%s: cannot reach %s (%s); reconnecting in the background", uri, settings.describe(),
                    describe_error(exc))
        return None
