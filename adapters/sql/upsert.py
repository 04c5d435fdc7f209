"""``upsert_key``: a SQL sink's ``INSERT`` rewritten to insert-or-update on those columns (SPEC §12).

A replay after a crash writes again the rows of the epochs after the last checkpoint; with
``upsert_key`` each such row updates the one already there instead of adding a second, so the
table ends with one row per key, holding the latest value. The user's ``insert_statement``
must be a single-row ``INSERT INTO table (col, ...) VALUES (...)`` with no conflict clause of
its own; the key columns must be among its columns and carry a unique index or primary key.

Usage::

    upsert_statement("INSERT INTO t (id, v) VALUES (%(id)s, %(v)s)", ["id"], "postgres")
    # 'INSERT INTO t (id, v) VALUES (%(id)s, %(v)s) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v'
    upsert_statement("INSERT INTO t (id, v) VALUES (%(id)s, %(v)s)", ["id"], "mysql")
    # 'INSERT INTO t (id, v) VALUES (%(id)s, %(v)s) ON DUPLICATE KEY UPDATE v = VALUES(v)'
"""

from __future__ import annotations

import re
from typing import Any

_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(?P<table>[^\s(]+)\s*\((?P<columns>[^()]*)\)\s*VALUES\s*\((?P<values>.*)\)"
                     r"\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_OWN_CLAUSE = re.compile(r"\bON\s+(CONFLICT|DUPLICATE)\b|\bRETURNING\b|\)\s*,\s*\(", re.IGNORECASE)
SHAPE = "INSERT INTO table (col1, col2) VALUES (%(a)s, %(b)s)"


def upsert_key_problem(key: Any) -> str | None:
    """What is wrong with an ``upsert_key`` value (it must be a non-empty list of column names), or None."""
    if not isinstance(key, list) or not key or not all(isinstance(c, str) and c.strip() for c in key):
        return f"upsert_key must be a non-empty list of column names, like [\"id\"], not {key!r}"
    return None


def _bare(column: str) -> str:
    return column.strip().strip('`"').lower()


def upsert_statement(statement: str, key: list[str], kind: str) -> str:
    """``statement`` (a single-row INSERT) made to update the row whose ``key`` columns match; ``kind``:
    ``mysql`` (MySQL/MariaDB) or ``postgres``. Raises ValueError saying why a statement cannot be rewritten."""
    problem = upsert_key_problem(key)
    if problem:
        raise ValueError(problem)
    text = statement.strip().rstrip(";").rstrip()
    found = _INSERT.match(text)
    if found is None or _OWN_CLAUSE.search(text):
        raise ValueError(f"upsert_key needs an insert_statement shaped {SHAPE!r} (one row, no ON CONFLICT / ON "
                         f"DUPLICATE KEY / RETURNING of its own) to rewrite, not {statement!r}")
    columns = [c.strip() for c in found.group("columns").split(",") if c.strip()]
    bare = [_bare(c) for c in columns]
    missing = [k for k in key if _bare(k) not in bare]
    if missing:
        raise ValueError(f"upsert_key column(s) {missing} are not among the insert_statement's columns {columns}")
    keyed = {_bare(k) for k in key}
    updated = [c for c in columns if _bare(c) not in keyed]
    if kind == "postgres":
        target = ", ".join(columns[bare.index(_bare(k))] for k in key)
        action = ("DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)) if updated else "DO NOTHING"
        return f"{text} ON CONFLICT ({target}) {action}"
    first = columns[bare.index(_bare(key[0]))]
    sets = [f"{c} = VALUES({c})" for c in updated] or [f"{first} = {first}"]  # all key columns: a no-op update
    return f"{text} ON DUPLICATE KEY UPDATE " + ", ".join(sets)
