"""The states a DAG can be in (SPEC §7), defined once for the runtime, the supervisor and the web.

``DagState`` members are strings, so they cross msgpack and JSON as plain text::

    DagState.RUNNING == "running"        # True
    DagState("failed") is DagState.FAILED
"""

from __future__ import annotations

from enum import StrEnum


class DagState(StrEnum):
    STARTING = "starting"  # first start: placed on its worker, its runtime has not reported yet
    RUNNING = "running"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    FAILED = "failed"
    RESTARTING = "restarting"
    STANDBY = "standby"  # on a high-availability standby (SPEC §9)


#: Every state, in the order the API documents them.
DAG_STATES: tuple[DagState, ...] = tuple(DagState)
