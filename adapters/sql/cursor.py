"""Where a ``sql://`` cursor source stands: the next poll's parameters, which polled rows are new, and the
position after each row handed out (SPEC §6: rows sharing a cursor value are never lost or repeated).

Two ways, chosen by the source's config:

* With a ``key_column`` (a tie-breaker: unique together with the cursor, e.g. the primary key) the
  statement takes ``%(cursor)s`` and ``%(key)s`` and returns the rows after that pair, in (cursor,
  key) order: ``WHERE c > %(cursor)s OR (c = %(cursor)s AND k > %(key)s) ORDER BY c, k``. The
  position is ``{"cursor": C, "key": K}`` of the last row handed out. Exact, whatever the ``LIMIT``.
* Without one, the statement takes ``%(cursor)s`` only (the seed's way). The poller never moves past
  the last cursor value fetched until a poll shows that value is complete: ``%(cursor)s`` is the
  value *below* it, and the rows of the last value polled again are recognised (by a digest of the
  whole row) and left out. The position is ``{"cursor": C, "below": B, "ties": [digest, ...]}``:
  every row up to B, and the listed rows of value C, were handed out. Exact as long as the rows of
  one cursor value fit in one poll's ``LIMIT`` (a poll returning only rows already read of one value
  moves past it). A position ``{"cursor": C}`` (older checkpoints) resumes after C.

Cursor and key values are kept as the records show them (:func:`adapters.sql.values.plain_value`),
except DECIMAL, kept exact as a :class:`~decimal.Decimal` and written in positions as
``{"decimal": "12.345"}`` (a float would merge neighbouring values and skip or repeat rows).

Usage::

    track = CursorTrack("stamp", None, start=0)
    track.restore(checkpointed_position)
    params = track.params()                          # {'cursor': ...} for the statement
    for item, mark in track.take(entries):           # entries: (item, row record, cursor value, key value)
        ...                                          # mark.encode(): the position after item
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgpack

from adapters.sql.values import plain_value

DECIMAL_TAG = "decimal"


def cursor_value(value: Any) -> Any:
    """A column value as the tracker keeps it (and binds it back): DECIMAL exact, the rest as in records."""
    return value if isinstance(value, Decimal) else plain_value(value)


def encode_value(value: Any) -> Any:
    """A kept value as a msgpack-encodable position value (a DECIMAL as ``{"decimal": "1.25"}``)."""
    return {DECIMAL_TAG: str(value)} if isinstance(value, Decimal) else value


def decode_value(value: Any) -> Any:
    """The inverse of :func:`encode_value`."""
    if isinstance(value, Mapping) and set(value) == {DECIMAL_TAG}:
        try:
            return Decimal(str(value[DECIMAL_TAG]))
        except InvalidOperation as exc:
            raise ValueError(f"a sql cursor position holds a bad decimal: {value!r}") from exc
    return value


def row_digest(record: Any) -> str:
    """A short, stable digest of a whole row (its record): how a row already read is told apart."""
    packed = msgpack.packb(record, use_bin_type=True, default=str)
    return hashlib.blake2b(packed, digest_size=8).hexdigest()


@dataclass(frozen=True)
class Mark:
    """The position just after one row handed out (``ties`` is shared, only ``count`` of it belong here)."""

    cursor: Any
    key: Any = None
    below: Any = None
    ties: list[str] | None = None  # None: a key_column source (or a position of the older form)
    count: int = 0

    def encode(self, keyed: bool) -> dict[str, Any]:
        if keyed:
            return {"cursor": encode_value(self.cursor), "key": encode_value(self.key)}
        if self.ties is None:
            return {"cursor": encode_value(self.cursor)}
        return {"cursor": encode_value(self.cursor), "below": encode_value(self.below),
                "ties": list(self.ties[:self.count])}


class CursorTrack:
    """The cursor state of one source; used by its polling thread only (``restore`` before it starts)."""

    def __init__(self, column: str, key_column: str | None, start: Any) -> None:
        self.column, self.key_column, self.start = column, key_column, start
        self.keyed = key_column is not None
        self.restore(None)

    def restore(self, position: Any) -> Mark:
        """Resume after ``position`` (None: from ``start``); the mark to report until a row is handed out."""
        found = position if isinstance(position, Mapping) and "cursor" in position else {}
        cursor = decode_value(found["cursor"]) if found else self.start
        self.after = (cursor, decode_value(found.get("key")))  # keyed: the last (cursor, key) fetched
        self.below, self.value, self.group = cursor, None, []  # plain: complete up to below; value's rows
        if self.keyed:
            self.mark = Mark(cursor, self.after[1])
        elif "below" in found and isinstance(found.get("ties"), list):
            self.below, self.value, self.group = decode_value(found["below"]), cursor, list(found["ties"])
            self.mark = Mark(cursor, below=self.below, ties=self.group, count=len(self.group))
        else:
            self.mark = Mark(cursor)
        return self.mark

    def params(self) -> dict[str, Any]:
        """The next poll's statement parameters."""
        if self.keyed:
            return {"cursor": self.after[0], "key": self.after[1]}
        return {"cursor": self.below}

    def take(self, entries: list[tuple[Any, Any, Any, Any]]) -> list[tuple[Any, Mark]]:
        """The new rows of one poll, each with the position after it. ``entries``: (item, the row's record,
        cursor value, key value) in the order the statement returned them."""
        if self.keyed:
            out = []
            for item, _, cursor, key in entries:
                self.after = (cursor, key)
                out.append((item, Mark(cursor, key)))
            return out
        return self._take_plain(entries)

    def _take_plain(self, entries: list[tuple[Any, Any, Any, Any]]) -> list[tuple[Any, Mark]]:
        seen = Counter(self.group)  # the rows of the last value, fetched before: they come again
        out: list[tuple[Any, Mark]] = []
        only_seen_ties = bool(entries)
        for item, record, cursor, _ in entries:
            digest = row_digest(record)
            if self.value is not None and cursor == self.value:
                if seen[digest] > 0:
                    seen[digest] -= 1
                    continue
                self.group.append(digest)
            else:  # a later value: every row of the one before was in this poll
                only_seen_ties = False
                if self.value is not None:
                    self.below = self.value
                self.value, self.group = cursor, [digest]
            out.append((item, Mark(self.value, below=self.below, ties=self.group, count=len(self.group))))
        if only_seen_ties and not out:  # nothing but rows already read, all of one value: it is complete
            self.below = self.value
        return out
