"""The real databases the ``sql://`` tests use: MariaDB on 127.0.0.1:3306 (root, no password) and
PostgreSQL on 127.0.0.1:5432 (postgres, trust), both with a database ``test``.

:func:`sql_service` yields a :class:`SqlService` for one of them (skipping, or failing under
``DAGSERVER_REQUIRE_SERVICES=1``, when it is absent). Tables made with :meth:`SqlService.table`
get a unique name and are dropped afterwards. Tests wrap it in a parametrized fixture::

    @pytest.fixture(params=DATABASES)
    def db(request) -> Iterator[SqlService]:
        yield from sql_service(request.param)

    def test_x(db):
        table = db.table("items", f"id {db.serial} , name VARCHAR(20)")
        db.execute(f"INSERT INTO {table} (name) VALUES (%(name)s)", {"name": "a"})
        config = db.config(select_statement=f"SELECT * FROM {table}")   # inline sql:// keys
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.services import require_module, require_port

DATABASES = ("mariadb", "postgres")
SERVICES: dict[str, dict[str, Any]] = {
    "mariadb": {"db_type": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root", "password": "",
                "database": "test"},
    "postgres": {"db_type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                 "database": "test"},
}


@dataclass
class SqlService:
    """One database: its connection keys, an admin connection (autocommit), and the tables made here."""

    name: str
    keys: dict[str, Any]
    conn: Any = None
    tables: list[str] = field(default_factory=list)

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"

    @property
    def serial(self) -> str:
        """The column type of an auto-incremented primary key."""
        return "SERIAL PRIMARY KEY" if self.is_postgres else "INT AUTO_INCREMENT PRIMARY KEY"

    def config(self, **extra: Any) -> dict[str, Any]:
        """The inline ``sql://`` connection keys of this database, plus ``extra``."""
        return {**self.keys, **extra}

    def through(self, address: str, **extra: Any) -> dict[str, Any]:
        """The connection keys pointed at ``address`` ("host:port", a TcpProxy in front of the database)."""
        host, port = address.rsplit(":", 1)
        return {**self.keys, "host": host, "port": int(port), **extra}

    def connect(self) -> Any:
        if self.is_postgres:
            import psycopg

            return psycopg.connect(host=self.keys["host"], port=self.keys["port"], user=self.keys["user"],
                                   dbname=self.keys["database"], autocommit=True)
        import pymysql

        return pymysql.connect(host=self.keys["host"], port=self.keys["port"], user=self.keys["user"],
                               password=self.keys["password"], database=self.keys["database"], autocommit=True)

    def execute(self, statement: str, params: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(statement, params)

    def executemany(self, statement: str, rows: list[Any]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(statement, rows)

    def query(self, statement: str, params: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return [tuple(row) for row in cur.fetchall()]

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def table(self, prefix: str, columns: str) -> str:
        """Create a table with a unique name (``prefix_XXXXXXXX``); dropped when the test ends."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.execute(f"CREATE TABLE {name} ({columns})")
        self.tables.append(name)
        return name

    def insert_once(self, table: str, columns: list[str], key: str = "id", ignore: bool = False) -> str:
        """An idempotent ``insert_statement``: a row whose ``key`` is there already is left as it is.

        MariaDB: ``ON DUPLICATE KEY UPDATE key = key``, or with ``ignore`` ``INSERT IGNORE`` (which
        also turns bad values into warnings: NULL into NOT NULL becomes 0, long text is cut)."""
        values = ", ".join(f"%({c})s" for c in columns)
        if self.is_postgres:
            return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) ON CONFLICT ({key}) DO NOTHING"
        if ignore:
            return f"INSERT IGNORE INTO {table} ({', '.join(columns)}) VALUES ({values})"
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) ON DUPLICATE KEY UPDATE {key} = {key}"

    def close(self) -> None:
        for name in self.tables:
            try:
                self.execute(f"DROP TABLE IF EXISTS {name}")
            except Exception:  # a broken admin connection: try once more on a fresh one
                self.conn = self.connect()
                self.execute(f"DROP TABLE IF EXISTS {name}")
        self.conn.close()


def sql_service(name: str) -> Iterator[SqlService]:
    """Yield the database ``name`` (one of :data:`DATABASES`); drop its tables afterwards."""
    keys = SERVICES[name]
    require_module("psycopg" if name == "postgres" else "pymysql", "sql")
    require_port(keys["host"], keys["port"], "PostgreSQL" if name == "postgres" else "MariaDB")
    service = SqlService(name, dict(keys))
    service.conn = service.connect()
    try:
        yield service
    finally:
        service.close()
