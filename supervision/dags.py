"""The supervisor's view of a DAG and of its replicas (SPEC §5, §7).

A :class:`DagEntry` is one DAG file placed on the workers: one replica per entry of
``workers`` (a DAG without ``replicas`` has one). Each replica is a runtime on its worker,
named by :func:`~actors.worker.replica_key`. :func:`replica_view` tells one replica's
current details from its worker's newest snapshot; :func:`dag_view` makes the one DAG the
API shows: counters summed over the replicas, the worst replica's state, and a
``replicas`` list ``[{index, worker, state, reason}]``.

Usage::

    entry = DagEntry("orders", "dags/orders.json", raw, workers=[0, 1])
    view = dag_view(entry, handles)      # {"state": "running", "replicas": [{...}, {...}], ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.states import DagState
from actors.worker import replica_key
from graphs.templates import MASK, mask_templates
from supervision.counters import plus, with_carry
from supervision.workers import WorkerHandle

# The worst state wins when replicas differ: a DAG is as healthy as its sickest copy.
SEVERITY = (DagState.RUNNING, DagState.SUSPENDED, DagState.STANDBY, DagState.STOPPED, DagState.STARTING,
            DagState.RESTARTING, DagState.FAILED)
EMPTY = {"nodes": {}, "subscribers": {}, "publishers": {}}


@dataclass
class DagEntry:
    name: str
    path: str
    raw: dict[str, Any]
    workers: list[int]  # the worker of each replica
    desired: DagState = DagState.RUNNING  # what the operator asked for: running, suspended or stopped
    carries: list[dict[str, Any]] = field(default_factory=list)  # per replica: counters of dead incarnations
    template: dict[str, Any] | None = None  # the file as written when it used ${...} templates (raw: resolved)

    def __post_init__(self) -> None:
        while len(self.carries) < len(self.workers):
            self.carries.append({})

    @property
    def worker(self) -> int:
        return self.workers[0]

    @property
    def replicated(self) -> bool:
        return len(self.workers) > 1

    def replica(self, index: int) -> int | None:
        """The replica index the runtime knows (None for a DAG that runs one copy)."""
        return index if self.replicated else None

    def key(self, index: int) -> str:
        return replica_key(self.name, self.replica(index))


def model_template(model: Any) -> dict[str, Any] | None:
    """What a :class:`DagEntry` keeps as ``template`` for a loaded model."""
    return dict(model.template) if model.template is not None else None


def config_view(entry: DagEntry) -> dict[str, Any]:
    """The DAG's config as views show it: each ``${...}`` template of the file as ``***`` (SPEC §14)."""
    return mask_templates(entry.template) if entry.template is not None else entry.raw


def mask_endpoints(view: dict[str, Any], entry: DagEntry) -> dict[str, Any]:
    """``view`` with the ``source``/``destination`` of endpoints whose URI came from a template masked."""
    if entry.template is None:
        return view
    shown = config_view(entry)
    masked = dict(view)
    for section, key in (("subscribers", "source"), ("publishers", "destination")):
        uris = {e.get("name"): (e.get("config") or {}).get(key) for e in shown.get(section) or ()
                if isinstance(e, dict)}
        endpoints = view.get(section)
        if isinstance(endpoints, dict):
            masked[section] = {name: {**details, key: uris[name]} if MASK in str(uris.get(name, "")) else details
                               for name, details in endpoints.items()}
    return masked


def replica_view(entry: DagEntry, index: int, handles: list[WorkerHandle]) -> dict[str, Any]:
    """Replica ``index`` as its worker last reported it, with the counters of its dead incarnations."""
    handle = handles[entry.workers[index]]
    details = handle.details.get(entry.key(index))
    if handle.gave_up:
        state, reason = DagState.FAILED, handle.gave_up
    elif handle.restart_at is not None or (handle.restarts and not handle.alive):
        state, reason = DagState.RESTARTING, "its worker is restarting"
    elif details is None or not handle.alive:
        waiting = (DagState.STARTING, "waiting for its worker to start it and report")
        state, reason = waiting if entry.desired != DagState.STOPPED else (DagState.STOPPED, "")
    else:
        state, reason = DagState(details["state"]), details.get("reason", "")
        if state == DagState.RESTARTING and reason == "starting":  # the runtime's first build (SPEC §7)
            state = DagState.STARTING
    shown = with_carry(details or EMPTY, entry.carries[index])
    return {**shown, "name": entry.name, "state": str(state), "reason": reason, "worker": handle.id,
            "replica": entry.replica(index), "file": entry.path, "description": entry.raw.get("description", "")}


def dag_view(entry: DagEntry, handles: list[WorkerHandle]) -> dict[str, Any]:
    """The one DAG the API shows: every replica's counters added, the worst state, the replicas listed."""
    views = [replica_view(entry, i, handles) for i in range(len(entry.workers))]
    worst = max(views, key=lambda v: SEVERITY.index(DagState(v["state"])))
    shown = views[0]
    for more in views[1:]:
        shown = plus(shown, more)
    return {**shown, "state": worst["state"], "reason": worst["reason"], "worker": entry.worker, "replica": None,
            "replicas": [{"index": i, "worker": v["worker"], "state": v["state"], "reason": v["reason"]}
                         for i, v in enumerate(views)]}
