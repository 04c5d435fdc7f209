"""What leading or standing by means for the supervisor's workers and views (SPEC §9).

A :class:`Leadership` is the supervisor's role. Without ``[ha]`` the server is its own
leader and nothing here does anything. With it, a :class:`~supervision.ha.LeaderElection`
decides, and the Leadership carries its decisions out on the workers:

* **leader** — every DAG is started from the checkpoint on disk in the shared
  ``state_dir`` (the ``start`` command with ``reload``), in the state the operator last
  asked for; the workers get the election's lease, renewed all along (``lease`` command);
* **standby** — the lease is revoked and every DAG stopped at once (no drain: a fenced
  publisher writes nothing more); the workers stay up, idle; the API and metrics show
  every DAG ``standby``, and operator actions are refused with the name of the leader.

A worker (re)started while leading gets the current lease before its DAGs.

Usage::

    leadership = Leadership(config, pool, dags, deploy=supervisor.deploy_to)
    leadership.start()                     # after the worker pool
    runs = leadership.prepare(handle)      # in the pool's on_started: may this worker run DAGs now?
    view = leadership.shown(view)          # a DAG view as the API shows it (standby on a standby)
    leadership.health()                    # {"role": "leader"} (+ "ha": {...} with [ha])
    leadership.stop()                      # at shutdown, after the DAGs stopped
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from actors.states import DagState
from supervision.config import ServerConfig
from supervision.dags import DagEntry
from supervision.ha import LEADER, STANDBY, LeaderElection
from supervision.workers import WorkerHandle, WorkerPool

FENCE_STOP_TIMEOUT = 0.5  # seconds a standby's stop waits for in-flight epochs (fenced: none can finish)


class Leadership:
    """The supervisor's role, and the worker commands that go with changing it."""

    def __init__(self, config: ServerConfig, pool: WorkerPool, dags: dict[str, DagEntry],
                 deploy: Callable[[WorkerHandle], None]) -> None:
        """``deploy(handle)`` hands a worker its DAGs (and starts them, as :meth:`prepare` allows)."""
        self.pool, self.dags, self.deploy = pool, dags, deploy
        self.enabled = config.ha is not None
        self.leader = not self.enabled
        self.closing = False  # shutting down: no DAG is started any more
        self.lease_until = 0.0
        self.election: LeaderElection | None = None
        if config.ha is not None:
            self.election = LeaderElection(config.ha, f"{socket.gethostname()} {config.bind}",
                                           on_leader=self._lead, on_standby=self._stand_by, on_lease=self._lease)

    @property
    def role(self) -> str:
        return LEADER if self.leader else STANDBY

    def start(self) -> None:
        if self.election is not None:
            self.election.start()

    def stop(self) -> None:
        """Leave the election (the DAGs were stopped already): a standby takes over at once."""
        self.closing = True
        if self.election is not None:
            self.election.stop()

    # -- what the supervisor asks ---------------------------------------------------------------------
    def prepare(self, handle: WorkerHandle) -> bool:
        """A worker just started: give it the current lease; whether its DAGs may start."""
        if self.enabled:
            self.pool.request_async(handle, "lease", {"until": self.lease_until if self.leader else 0.0})
        return self.leader and not self.closing

    def start_args(self) -> dict[str, Any]:
        """Extra ``start`` arguments: with ``[ha]``, resume from the checkpoint on disk."""
        return {"reload": True} if self.enabled else {}

    def refuse(self, action: str, name: str) -> str | None:
        """Why an operator's ``action`` is refused here (a standby), or None."""
        if self.leader:
            return None
        return f"cannot {action} dag {name!r}: this server is a standby; {self._who_leads()}"

    def shown(self, view: dict[str, Any]) -> dict[str, Any]:
        """``view`` as the API shows it: on a standby every DAG (and replica) is ``standby``."""
        if self.leader:
            return view
        reason = f"this server is a standby; {self._who_leads()}"
        shown = {**view, "state": str(DagState.STANDBY), "reason": reason}
        if view.get("replicas"):
            shown["replicas"] = [{**r, "state": str(DagState.STANDBY), "reason": reason} for r in view["replicas"]]
        return shown

    def health(self) -> dict[str, Any]:
        """``role`` for ``/healthz``, and the election's status with ``[ha]``."""
        health: dict[str, Any] = {"role": self.role}
        if self.election is not None:
            health["ha"] = self.election.status()
        return health

    def _who_leads(self) -> str:
        leader = self.election.leader_identity if self.election is not None else ""
        return f"{leader} leads" if leader else "no leader is known"

    # -- the election's decisions (its thread; never blocking) ----------------------------------------
    def _lease(self, until: float) -> None:
        self.lease_until = until
        for handle in self._alive():
            self.pool.request_async(handle, "lease", {"until": until})

    def _lead(self) -> None:
        with self.pool.lock:  # a worker starting meanwhile either sees the role or is deployed here
            if self.closing:
                return
            self.leader = True
            for handle in self._alive():
                self.deploy(handle)

    def _stand_by(self, reason: str) -> None:
        with self.pool.lock:
            self.leader = False
            alive = {handle.id: handle for handle in self._alive()}
        for entry in list(self.dags.values()):
            for index, worker in enumerate(entry.workers):
                if worker in alive:
                    self.pool.request_async(alive[worker], "stop", {"name": entry.name, "replica": entry.replica(index),
                                                                    "timeout": FENCE_STOP_TIMEOUT})

    def _alive(self) -> list[WorkerHandle]:
        with self.pool.lock:
            return [handle for handle in self.pool.handles if handle.alive]
