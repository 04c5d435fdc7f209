"""Seeing inside a running DAG from the supervisor: tap, inject, capture (SPEC §13).

:class:`Observer` checks each request (names, with a "did you mean", record shapes, the caps
below), asks the worker of the DAG's first replica (``tap``, ``inject``, ``capture``,
``capture_status``: :mod:`actors.observing`) and turns a worker's refusal into the
:class:`ObserveError` with the HTTP status to answer. A DAG run as replicas is tapped,
injected into and captured on its first replica.

Caps (docs/OBSERVING.md): at most :data:`INJECT_MAX_RECORDS` records per inject (413 above),
captures of at most :data:`~actors.capture.CAPTURE_MAX_RECORDS` records,
:data:`~actors.capture.CAPTURE_MAX_SECONDS` seconds (400 above) and
:data:`~actors.capture.CAPTURE_MAX_BYTES` bytes of input (the capture stops there).

Usage::

    observer = Observer(supervisor)
    observer.tap("prices", "value", after=0)        # {"computes": [{seq, time, input, output, error}, ...]}
    observer.inject("prices", "orders", [{"price": 2}])
    started = observer.start_capture("prices", records=20, seconds=60)
    observer.capture("prices", started["id"])       # state "done": events and outputs
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from actors.capture import CAPTURE_MAX_BYTES, CAPTURE_MAX_RECORDS, CAPTURE_MAX_SECONDS
from actors.states import DagState
from graphs.masking import mask_secrets
from graphs.suggest import did_you_mean

if TYPE_CHECKING:
    from supervision.dags import DagEntry

INJECT_MAX_RECORDS = 1000
TAP_MAX_COMPUTES = 100
CAPTURE_DEFAULT_RECORDS = 100
CAPTURE_DEFAULT_SECONDS = 60.0
REQUEST_TIMEOUT = 30.0
BAD_REQUEST, NOT_FOUND, CONFLICT, TOO_LARGE = 400, 404, 409, 413
FLOWING = (DagState.RUNNING, DagState.SUSPENDED)  # records may go in, a capture may start


class ObserveError(Exception):
    """A request refused, with the HTTP status the API answers with (the supervisor turns it into a
    ``ServiceError``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _hint(word: str, names: list[str]) -> str:
    hint = did_you_mean(word, names)
    return f" (did you mean {hint!r}?)" if hint else f" (there are: {', '.join(sorted(names)) or 'none'})"


def _names(entry: DagEntry, section: str) -> list[str]:
    return [str(item.get("name")) for item in entry.raw.get(section) or () if isinstance(item, dict)]


class Observer:
    """Tap, inject and capture for the supervisor's service (``supervisor`` is a :class:`supervisor.Supervisor`)."""

    def __init__(self, supervisor: Any) -> None:
        self.supervisor = supervisor

    # -- lookups ------------------------------------------------------------------------------------------
    def _entry(self, name: str) -> DagEntry:
        entry: DagEntry | None = self.supervisor.dags.get(name)
        if entry is None:
            raise ObserveError(f"no dag named {name!r}" + _hint(name, list(self.supervisor.dags)), NOT_FOUND)
        return entry

    def _ask(self, entry: DagEntry, command: str, args: dict[str, Any]) -> dict[str, Any]:
        handle = self.supervisor.workers[entry.worker]
        if not handle.alive:
            raise ObserveError(f"dag {entry.name!r} is not running: its worker is down", CONFLICT)
        payload, _, _ = self.supervisor._ask(handle, command, {"name": entry.name, "replica": entry.replica(0),
                                                               **args}, REQUEST_TIMEOUT)
        answer = dict(payload)
        if "refused" in answer:
            raise ObserveError(str(answer["refused"]), int(answer.get("status") or 500))
        return answer

    def _flowing(self, entry: DagEntry, what: str) -> None:
        state = self.supervisor._current(entry)["state"]
        if state not in FLOWING:
            raise ObserveError(f"cannot {what} dag {entry.name!r}: it is {state} (start or resume it first)", CONFLICT)

    # -- tap ----------------------------------------------------------------------------------------------
    def tap(self, name: str, node: str, after: int = 0, limit: int = TAP_MAX_COMPUTES) -> dict[str, Any]:
        """The node's latest computes after ``after`` (opening its tap; it closes a minute after the last read)."""
        entry = self._entry(name)
        nodes = _names(entry, "nodes")
        if node not in nodes:
            raise ObserveError(f"dag {name!r} has no node {node!r}" + _hint(node, nodes), NOT_FOUND)
        limit = max(1, min(int(limit), TAP_MAX_COMPUTES))
        return mask_secrets(self._ask(entry, "tap", {"node": node, "after": int(after), "limit": limit}))

    # -- inject -------------------------------------------------------------------------------------------
    def inject(self, name: str, subscriber: str, records: Any) -> dict[str, Any]:
        """Hand ``records`` to the DAG as if ``subscriber`` had read them (nothing is committed for them)."""
        entry = self._entry(name)
        subscribers = _names(entry, "subscribers")
        if subscriber not in subscribers:
            raise ObserveError(f"dag {name!r} has no subscriber {subscriber!r}" + _hint(subscriber, subscribers),
                               NOT_FOUND)
        if not isinstance(records, list) or not records:
            raise ObserveError('the body must be JSON {"records": [RECORD, ...]} with at least one record, '
                               'each a map', BAD_REQUEST)
        if len(records) > INJECT_MAX_RECORDS:
            raise ObserveError(f"records: {len(records)} given, at most {INJECT_MAX_RECORDS} per request "
                           "(send them in several requests)", TOO_LARGE)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                kind = "a list" if isinstance(record, list) else type(record).__name__
                raise ObserveError(f"records[{i}]: a record is a map (a JSON object), got {kind}: "
                                   f"{str(record)[:60]}", BAD_REQUEST)
        self._flowing(entry, "inject into")
        return self._ask(entry, "inject", {"subscriber": subscriber, "records": records})

    # -- capture ------------------------------------------------------------------------------------------
    def start_capture(self, name: str, records: Any = None, seconds: Any = None) -> dict[str, Any]:
        """Record the next ``records`` inputs (or ``seconds`` of them) and their outputs; the capture's status."""
        entry = self._entry(name)
        count = CAPTURE_DEFAULT_RECORDS if records is None else records
        span = CAPTURE_DEFAULT_SECONDS if seconds is None else seconds
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ObserveError(f"records: a positive whole number of records, got {count!r}", BAD_REQUEST)
        if count > CAPTURE_MAX_RECORDS:
            raise ObserveError(f"records: {count} is over the capture cap of {CAPTURE_MAX_RECORDS} records "
                          "(docs/OBSERVING.md); capture fewer, or several times", BAD_REQUEST)
        if isinstance(span, bool) or not isinstance(span, int | float) or not 0 < span <= CAPTURE_MAX_SECONDS:
            raise ObserveError(f"seconds: a number of seconds above 0 and at most {CAPTURE_MAX_SECONDS:g}, "
                               f"got {span!r}", BAD_REQUEST)
        self._flowing(entry, "capture")
        capture_id = secrets.token_hex(4)
        return self._ask(entry, "capture", {"id": capture_id, "records": count, "seconds": float(span),
                                            "max_bytes": CAPTURE_MAX_BYTES})

    def capture(self, name: str, capture_id: str) -> dict[str, Any]:
        """A capture's status; once ``done`` also its ``events`` (replay format), ``outputs`` per publisher and
        ``dag`` (the DAG file, secrets masked)."""
        entry = self._entry(name)
        status = self._ask(entry, "capture_status", {"id": capture_id})
        if status.get("state") == "done":
            status["dag"] = mask_secrets(entry.raw)
        return status
