"""The states a DAG can be in (SPEC §7), defined once for the runtime, the supervisor and the web.

``DagState`` members are strings, so they cross msgpack and JSON as plain text::

    DagState.RUNNING == "running"        # True
    DagState("failed") is DagState.FAILED
"""

from __future__ import annotations

from enum import StrEnum


class DagState(StrEnum):
    STARTING = "starting"  # first start: its actors are being built, nothing has failed
    RUNNING = "running"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    FAILED = "failed"
    RESTARTING = "restarting"  # after a failure (or its worker's), within the restart budget
    STANDBY = "standby"  # on a high-availability standby (SPEC §9)


#: Every state, in the order the API documents them.
DAG_STATES: tuple[DagState, ...] = tuple(DagState)
