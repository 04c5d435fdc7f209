"""What the web layer asks of the supervisor, and the errors it may answer with.

The Flask views (``web/api.py``) only ever call a :class:`SupervisorService`; the
supervisor process implements it. Tests use a small in-memory one. A DAG's ``state`` is
one of :class:`DagState` (defined once, with the runtime that sets it).
"""

from __future__ import annotations

from typing import Any, Protocol

from actors.states import DAG_STATES, DagState

__all__ = ["ACTIONS", "DAG_STATES", "DagState", "ServiceError", "SupervisorService", "UnknownDag", "WrongState"]

ACTIONS = ("start", "stop", "suspend", "resume")


class ServiceError(Exception):
    """An error the API reports as JSON ``{"error": message}`` with ``status``."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownDag(ServiceError):
    status = 404


class WrongState(ServiceError):
    status = 409


class SupervisorService(Protocol):
    def list_dags(self) -> list[dict[str, Any]]:
        """One summary per DAG: ``name``, ``state``, ``reason``, ``worker``, ``file``, ``description``."""

    def dag_details(self, name: str) -> dict[str, Any]:
        """``config`` (the DAG file's JSON), ``state``, per-node details; raises UnknownDag."""

    def node_details(self, name: str, node: str) -> dict[str, Any]:
        """One node's whole ``input`` and ``output`` and its recent errors; raises UnknownDag."""

    def control(self, name: str, action: str) -> dict[str, Any]:
        """Apply ``action`` (one of ACTIONS); the DAG's summary after it. UnknownDag / WrongState."""

    def workers(self) -> list[dict[str, Any]]:
        """``[{id, pid, alive, restarts, dags}]``."""

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", ...}``."""

    def metrics_text(self) -> bytes:
        """The Prometheus exposition of every DAG's and worker's figures."""
