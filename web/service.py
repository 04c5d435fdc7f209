"""What the web layer asks of the supervisor, and the errors it may answer with.

The Flask views (``web/api.py``) only ever call a :class:`SupervisorService`; the
supervisor process implements it. Tests use a small in-memory one. A DAG's ``state`` is
one of :class:`DagState` (defined once, with the runtime that sets it).
"""

from __future__ import annotations

from typing import Any, Protocol

from actors.states import DAG_STATES, DagState

__all__ = ["ACTIONS", "DAG_STATES", "DagState", "Invalid", "ServiceError", "SupervisorService", "UnknownDag",
           "WrongState"]

ACTIONS = ("start", "stop", "suspend", "resume")


class ServiceError(Exception):
    """An error the API reports as JSON ``{"error": message}`` with ``status`` (and ``problems``, the
    ``dagserver check`` lines, when there are some)."""

    status = 500

    def __init__(self, message: str, status: int | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])
        if status is not None:
            self.status = status


class UnknownDag(ServiceError):
    status = 404


class WrongState(ServiceError):
    status = 409


class Invalid(ServiceError):
    """A DAG file (or a request) that does not pass the check: 400 with the check's lines."""

    status = 400


class SupervisorService(Protocol):
    def list_dags(self) -> list[dict[str, Any]]:
        """One summary per DAG: ``name``, ``state``, ``reason``, ``worker``, ``file``, ``description``,
        ``next_start``, ``next_stop`` (ISO-8601 with offset, None when it runs around the clock)."""

    def dag_details(self, name: str) -> dict[str, Any]:
        """``config`` (the DAG file's JSON, templates shown as ``***``), ``state``, ``next_start``/``next_stop``,
        per-node details; raises UnknownDag."""

    def node_details(self, name: str, node: str) -> dict[str, Any]:
        """One node's whole ``input`` and ``output`` and its recent errors; raises UnknownDag."""

    def control(self, name: str, action: str) -> dict[str, Any]:
        """Apply ``action`` (one of ACTIONS); the DAG's summary after it. UnknownDag / WrongState."""

    def workers(self) -> list[dict[str, Any]]:
        """``[{id, pid, alive, restarts, dags}]``."""

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", ...}``: counts and roles only, no paths, no ``check`` lines."""

    def skipped(self) -> dict[str, Any]:
        """``{"skipped": [check lines]}``: why DAG files were skipped at start-up (for logged-in users)."""

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of every DAG's and worker's figures."""

    # -- admin (SPEC §7): each raises Invalid (with the check's lines), UnknownDag or WrongState --------
    def add_dag(self, text: str, source: str = "request body") -> dict[str, Any]:
        """Validate the DAG file ``text``, save it to the first ``dags`` folder, place and start it;
        its summary. Nothing is saved when it is invalid."""

    def reload_dag(self, name: str) -> dict[str, Any]:
        """Re-read the DAG's file and restart only that DAG; its summary."""

    def clone_dag(self, name: str, new_name: str, start_time: str | None, end_time: str | None) -> dict[str, Any]:
        """A copy of DAG ``name`` called ``new_name`` with its own window, saved and started; its summary."""

    def delete_dag(self, name: str) -> dict[str, Any]:
        """Stop the DAG, forget it and remove its file; ``{"name", "deleted": True}``."""

    # -- seeing inside a DAG (SPEC §13): each raises UnknownDag (404), WrongState (409) or Invalid (400) -------
    def tap(self, name: str, node: str, after: int = 0) -> dict[str, Any]:
        """``{"computes": [{seq, time, record_seq, input, output, error}, ...], "newest": SEQ}``: the node's
        latest computes after ``after`` (the first read switches its tap on; it goes off a minute after the last)."""

    def inject(self, name: str, subscriber: str, records: Any) -> dict[str, Any]:
        """Hand ``records`` (a list of maps) to the DAG as if ``subscriber`` had read them; ``{"injected": N}``.
        Too many records is a ServiceError with status 413."""

    def start_capture(self, name: str, records: Any, seconds: Any) -> dict[str, Any]:
        """Record the next ``records`` inputs (at most ``seconds``) and their outputs; ``{"id", "state", ...}``."""

    def capture(self, name: str, capture_id: str) -> dict[str, Any]:
        """A capture's ``state`` (``capturing``, ``finishing``, ``done``, ``failed``); once done also ``events``
        (the replay format), ``outputs`` (publisher -> records) and ``dag`` (the DAG file)."""

    def dead_letters(self, name: str, limit: int) -> dict[str, Any]:
        """``{"dag", "dead_letter", "letters"}``: the letters read back, oldest first, each with its ``id``
        (404 unknown DAG; 409 when it keeps none that can be read back, or is not running)."""

    def redrive(self, name: str, ids: list[str] | None) -> dict[str, Any]:
        """Inject the letters' records again (``ids`` None: all): ``{"redriven", "by_subscriber", "skipped",
        "unknown"}``."""

    def series(self, name: str | None) -> dict[str, Any]:
        """The last 15 minutes of ``name`` (None: the whole server): ``{"interval", "fields", "points"}``."""
