"""Small user adapters for the ``custom://`` tests.

Usage (the project root is importable in tests, see conftest.py)::

    open_source("custom://tests.useradapters.ListSource", {"records": [{"a": 1}]})
    open_sink("custom://tests.useradapters.CollectingSink", {"key": "out"})
    CollectingSink.collected["out"]    # what was written
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class ListSource:
    """Hands out ``config["records"]`` in order; position = index of the next record."""

    shareable = False

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.uri = uri
        self.records = list(config.get("records", []))
        self.index = 0
        self.committed: Any = None
        self.status = "closed"

    def open(self, position: Any | None) -> None:
        self.index = position or 0
        self.status = "connected"

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        batch = self.records[self.index : self.index + max_records]
        self.index += len(batch)
        return batch

    def position(self) -> int:
        return self.index

    def commit(self, position: Any) -> None:
        self.committed = position

    def close(self) -> None:
        self.status = "closed"


class GreedySource:
    """Ignores ``max_records`` and has no optional methods at all."""

    shareable = True

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.left = list(config.get("records", []))

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        out, self.left = self.left, []
        return out


class CollectingSink:
    """Appends written records to ``CollectingSink.collected[config["key"]]``; flushes are counted."""

    collected: ClassVar[dict[str, list[dict]]] = {}
    flushes: ClassVar[dict[str, int]] = {}

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.key = str(config.get("key", "default"))

    def write_batch(self, records: list[dict]) -> None:
        self.collected.setdefault(self.key, []).extend(records)

    def flush(self) -> None:
        self.flushes[self.key] = self.flushes.get(self.key, 0) + 1
