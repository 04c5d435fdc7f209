"""The supervisor's side of dead letters (SPEC §13): list and redrive them on the DAG's worker.

A DAG's letters are read back where the DAG runs (a ``mem://`` queue lives in that worker),
by its first replica's worker; a redrive injects there too. The worker's refusals (no
``dead_letter`` destination, one that cannot be read back, a stopped DAG) are
raised as ``error(message, 409)``.

Usage::

    desk = DeadLetterDesk(pool, dags, ServiceError)
    desk.letters("orders")                 # {"dag": "orders", "dead_letter": URI, "letters": [...]}
    desk.redrive("orders", ids=["0", "4"])  # {"redriven": 2, "by_subscriber": {...}, ...}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervision.dags import DagEntry
from supervision.workers import WorkerPool, WorkerUnavailable

REDRIVE_TIMEOUT = 60.0  # seconds a redrive may take on the worker (injection waits for room in the DAG)
LIST_TIMEOUT = 30.0


class DeadLetterDesk:
    """``error(message, status)`` makes the exception a refusal is raised as (the web layer's ServiceError:
    404 unknown DAG, 409 not possible now, 500 the worker did not answer)."""

    def __init__(self, pool: WorkerPool, dags: dict[str, DagEntry],
                 error: Callable[[str, int], Exception]) -> None:
        self.pool = pool
        self.dags = dags
        self.error = error

    def letters(self, name: str, limit: int = 1000) -> dict[str, Any]:
        """The DAG's dead letters, oldest first, each with its ``id`` (at most ``limit``)."""
        entry = self._entry(name)
        answer = self._ask(entry, "deadletters", {"limit": limit}, LIST_TIMEOUT)
        return {"dag": name, "dead_letter": entry.raw.get("dead_letter"), "letters": answer["letters"]}

    def redrive(self, name: str, ids: list[str] | None) -> dict[str, Any]:
        """Inject the chosen letters' records again (``ids`` None: all); what was redriven and skipped."""
        return {"dag": name, **self._ask(self._entry(name), "redrive", {"ids": ids}, REDRIVE_TIMEOUT)}

    def _entry(self, name: str) -> DagEntry:
        entry = self.dags.get(name)
        if entry is None:
            raise self.error(f"no dag named {name!r}", 404)
        return entry

    def _ask(self, entry: DagEntry, command: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        handle = self.pool.handles[entry.worker]
        if not handle.alive:
            raise self.error(f"dag {entry.name!r} is not running: its worker is down", 409)
        try:
            payload, _, _ = self.pool.request(handle, command, {"name": entry.name, "replica": entry.replica(0),
                                                                **args}, timeout)
        except WorkerUnavailable as exc:
            raise self.error(str(exc), 500) from exc
        if isinstance(payload, dict) and "error" in payload:
            raise self.error(str(payload["error"]), 409)
        return dict(payload)
