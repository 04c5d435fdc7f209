"""SQL databases: ``sql://LABEL`` (SPEC §6) — the URI rules and config keys this adapter owns.

The source and sink (pymysql / psycopg, ``pip install 'dagserver[sql]'``) are not written
yet: a DAG naming this scheme validates, and fails to start with a message saying so.
A SQL source is polled by one reader: it cannot be shared by replicas.
"""

from __future__ import annotations

from adapters.base import Adapter, ParsedUri

KEYS = ("db_type", "host", "port", "user", "password", "database", "sql_config_file")


def check_sql_uri(parsed: ParsedUri) -> str | None:
    return None if parsed.parts else f"sql URI {parsed.raw!r} must name a connection label (sql://LABEL)"


ADAPTER = Adapter("sql", check_sql_uri, source_keys=(*KEYS, "select_statement", "poll_interval", "cursor_column"),
                  sink_keys=(*KEYS, "insert_statement"), extra="sql")
