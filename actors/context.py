"""What every actor of one DAG shares: the model, the wiring, the counters, the gate.

A :class:`DagContext` is built by the DAG runtime for one incarnation of the DAG's
actors; a restart builds a new one (with the same :class:`~actors.stats.DagStats`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.stats import DagStats
from graphs.model import DagModel

log = logging.getLogger("dagserver.actors")

COORDINATOR = "coordinator"


class IngressGate:
    """Bounds the records between the sources and the sinks (SPEC §3 backpressure).

    A subscriber takes slots before it reads; the coordinator gives them back when the
    epoch holding those records completes. While no slot is free, subscribers stop
    reading: nothing is dropped, the broker keeps the rest.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._cond = threading.Condition()
        self._closed = False

    def acquire(self, n: int, timeout: float) -> int:
        """Take up to ``n`` slots, waiting at most ``timeout`` seconds for the first one."""
        with self._cond:
            if self._free <= 0 and not self._closed:
                self._cond.wait(timeout)
            if self._closed:
                return 0
            got = min(n, self._free)
            self._free -= got
            return got

    def release(self, n: int) -> None:
        if n:
            with self._cond:
                self._free += n
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def backlog(self) -> int:
        return self.capacity - self._free


@dataclass
class DagContext:
    """Shared by the actors of one incarnation of a DAG."""

    dag: DagModel
    stats: DagStats
    gate: IngressGate
    on_actor_failure: Callable[[str, BaseException], None]
    on_dead_letter: Callable[[dict], None]
    clock: Callable[[], float] = time.time
    refs: dict[str, pykka.ActorRef] = field(default_factory=dict)
    restore: dict[str, Any] | None = None  # the checkpoint this incarnation starts from
    tearing_down: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)  # a graceful stop is draining

    def send(self, target: str, data: Any) -> None:
        """Tell ``target``; a receiver that already died is ignored (the DAG is restarting)."""
        try:
            self.refs[target].tell(data)
        except pykka.ActorDeadError:
            if not self.tearing_down.is_set():
                log.debug("dag %s: %s is gone", self.dag.name, target)


class DagActor(pykka.ThreadingActor):
    """Base of every actor of a DAG: failures are reported to the DAG's supervision."""

    use_daemon_thread = True

    def __init__(self, ctx: DagContext, actor_name: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.actor_name = actor_name

    def on_start(self) -> None:
        try:
            self.on_open()
        except Exception as exc:  # pykka stops the actor without on_failure here: report it
            self.on_teardown(failed=True)
            self.ctx.on_actor_failure(self.actor_name, exc)
            raise

    def on_open(self) -> None:
        """Acquire what the actor needs (open a source or sink); runs in the actor's thread."""

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.on_teardown(failed=True)
        self.ctx.on_actor_failure(self.actor_name, exception_value)

    def on_stop(self) -> None:
        self.on_teardown(failed=False)

    def on_teardown(self, failed: bool) -> None:
        """Release what the actor holds (sources, sinks); runs on stop and on failure."""
