"""The state the supervisor shows for a DAG whose runtime has not reported yet (SPEC §7).

A DAG on its first start is ``starting`` (before its worker is up, and while its runtime
builds), ``restarting`` only when its worker died and is being replaced.
"""

from __future__ import annotations

import time

from actors.states import DagState
from supervision.dags import DagEntry, dag_view
from supervision.workers import WorkerHandle


def entry() -> DagEntry:
    return DagEntry("orders", "dags/orders.json", {"name": "orders"}, workers=[0])


def test_a_dag_whose_worker_is_not_up_yet_is_starting() -> None:
    view = dag_view(entry(), [WorkerHandle(0)])
    assert view["state"] == "starting" and "(re)starting" not in view["reason"]


def test_a_dag_whose_runtime_reports_its_first_build_is_starting() -> None:
    handle = WorkerHandle(0, details={"orders": {"state": "restarting", "reason": "starting"}})
    handle.process = type("Alive", (), {"is_alive": lambda self: True, "pid": 1})()
    assert dag_view(entry(), [handle])["state"] == "starting"
    handle.details["orders"] = {"state": "restarting", "reason": "node x failed: boom"}
    assert dag_view(entry(), [handle])["state"] == "restarting"  # a failure is a restart


def test_a_dag_whose_worker_is_being_replaced_is_restarting() -> None:
    handle = WorkerHandle(0, restarts=1, restart_at=time.monotonic() + 1)
    view = dag_view(entry(), [handle])
    assert view["state"] == "restarting" and "worker" in view["reason"]


def test_a_stopped_dag_stays_stopped_while_nothing_reports() -> None:
    stopped = entry()
    stopped.desired = DagState.STOPPED
    assert dag_view(stopped, [WorkerHandle(0)])["state"] == "stopped"
