"""One DAG's life in a worker: its lifecycle and its supervision (SPEC §3-§4).

A :class:`DagRuntime` builds the DAG's actors (:mod:`actors.incarnation`), stops,
suspends and resumes them. When any of them dies it tears the whole set down and builds a
new one from the last checkpoint after a backoff, within the restart budget; a set that
cannot be built counts as a failure too. Over budget the DAG is ``failed``. Other DAGs
never notice.

Every public method is thread-safe, and none holds the runtime's lock across a wait: the
lock only guards the state fields, so :meth:`details` and :meth:`check_window` answer at
once even while a stop is draining a slow sink. Operator commands bump a generation
number; a restart scheduled before the command sees the change and gives up.

Usage::

    runtime = DagRuntime(load_dag("examples/dags/prices.json"), state_dir="var/state")
    runtime.start()
    ...
    runtime.stop(timeout=15)      # stop reading, drain, flush, commit, checkpoint
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pykka

from actors import details as details_mod
from actors.capture import Capture
from actors.checkpoint import checkpoint_path, read_checkpoint, write_checkpoint
from actors.context import COORDINATOR, DagContext
from actors.counting import restore_counters
from actors.incarnation import BuildError, Wiring, build, server_identity, teardown
from actors.messages import Control, Tick, encode
from actors.observable import Observable
from actors.restart import RestartPolicy
from actors.states import DagState
from actors.stats import DagStats
from adapters.base import Sink, Source
from adapters.registry import open_sink, open_source
from graphs.model import DagModel
from graphs.schedule import Schedule
from graphs.values import describe_error

log = logging.getLogger("dagserver.runtime")

RUNNING, SUSPENDED, STOPPED, FAILED, RESTARTING = (DagState.RUNNING, DagState.SUSPENDED, DagState.STOPPED,
                                                   DagState.FAILED, DagState.RESTARTING)
STARTING = DagState.STARTING
BUILDING = (STARTING, RESTARTING)  # an incarnation is being built
STOP_WAIT = 5.0  # seconds a teardown after a failure may take before stuck actors are abandoned
PAUSE_WAIT = 5.0  # seconds to wait for subscribers to pause on a suspend

SourceFactory = Callable[[str, Mapping[str, Any]], Source]
SinkFactory = Callable[[str, Mapping[str, Any]], Sink]


class DagRuntime(Observable):
    """Runs one DAG in this process."""

    def __init__(self, dag: DagModel, *, state_dir: str | Path | None = None,
                 source_factory: SourceFactory = open_source, sink_factory: SinkFactory = open_sink,
                 restart: RestartPolicy | None = None, clock: Callable[[], float] = time.time,
                 tick_timers: bool = True, build_timeout: float | None = None, replica: int | None = None) -> None:
        """``replica``: which copy of a DAG run with ``replicas > 1`` this is (None: the only one)."""
        self.dag = dag
        self.replica = replica
        self.stats = DagStats.for_dag(dag)
        self.state = STOPPED
        self.reason = ""
        self.restart_policy = restart or RestartPolicy()
        self.clock = clock
        self.schedule = Schedule.from_dag(dag)  # its schedule, or the seed's daily window (SPEC §2, §14)
        self._next_times: tuple[datetime | None, datetime | None, datetime | None] = (None, None, None)
        self._wiring = Wiring(source_factory, sink_factory, self._actor_failed, self._write_checkpoint, clock,
                              tickers=tick_timers, replica=replica, server=server_identity(state_dir))
        if build_timeout is not None:
            self._wiring.build_timeout = build_timeout
        self._ckpt_path = checkpoint_path(state_dir, dag.name, replica) if state_dir else None
        self._last_checkpoint: dict[str, Any] | None = None
        # whether the counters started from a checkpoint's (SPEC §8; supervision/counters.py merges them)
        self.counters_restored = False
        self._started = False
        self._lock = threading.Lock()  # guards the fields below; never held across a wait
        self._ctx: DagContext | None = None
        self._generation = 0
        self._cancel = threading.Event()  # set when the current generation's restarts are called off
        self._restarter: threading.Thread | None = None
        self._suspended_by_window = False
        self._suspended_by_operator = False  # kept across restarts: an operator's suspend holds until resume
        self.captures: dict[str, tuple[Capture, DagContext]] = {}  # the latest few, by id (SPEC §13)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, now: datetime | None = None, suspended: bool = False, reload: bool = False) -> None:
        """Build the DAG's actors (resuming from its checkpoint) and go running, or restarting on failure.

        ``suspended``: come up suspended, as the operator left it (nothing is read meanwhile).
        ``reload``: resume from the checkpoint on disk even when one is kept in memory: another
        server sharing ``state_dir`` may have moved it on since (SPEC §9).
        """
        active = self.schedule.is_open(now or datetime.now(UTC))
        with self._lock:
            if self.state in (RUNNING, SUSPENDED, *BUILDING):
                return
            generation = self._next_generation()
            self.restart_policy.history.clear()  # an operator's start gives a fresh budget
            self._suspended_by_window = not active
            self._suspended_by_operator = suspended
            self.state, self.reason = STARTING, "starting"
        if self._ckpt_path is not None and (reload or self._last_checkpoint is None):
            self._last_checkpoint = read_checkpoint(self._ckpt_path)
            if not self._started and self._last_checkpoint is not None:  # counting has not begun: resume it
                self.counters_restored = restore_counters(self.stats, self._last_checkpoint.get("counters"))
        self._started = True
        self._launch(generation)

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop reading, finish in-flight epochs, flush, commit, checkpoint, within ``timeout``.

        Returns whether the stop was clean; either way the DAG ends ``stopped`` by the
        deadline and its reason says how it went.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._next_generation()
            self._suspended_by_operator = False
            ctx, restarter, failed = self._ctx, self._restarter, self.state == FAILED
            if ctx is not None:
                ctx.stopping.set()
        problems: list[str] = []
        if restarter is not None and restarter is not threading.current_thread():
            restarter.join(max(0.0, deadline - time.monotonic()))  # a build in progress gives itself up
            if restarter.is_alive():
                problems.append("a restart was still building its actors (it tears them down when done)")
        if ctx is not None:
            if ctx.tearing_down.is_set():
                problems.append(f"it had failed ({ctx.failure or 'restarting'}), nothing was drained")
            else:
                problems += self._drain(ctx, deadline, timeout)
            stuck = teardown(ctx, max(deadline, time.monotonic() + 0.2))
            if stuck:
                problems.append(f"{', '.join(stuck)} still busy, left behind")
        problem = "; ".join(problems)
        with self._lock:
            leftover = self._ctx if self._ctx is not ctx else None  # installed by a race: never leave one running
            self._ctx = None
            if not failed:
                self.state = STOPPED
                self.reason = (f"stopped without finishing: {problem}; input not yet committed will be read "
                               "again on the next start") if problem else "stopped cleanly"
        if leftover is not None:
            teardown(leftover, time.monotonic() + STOP_WAIT)
        if failed:
            return True  # nothing ran: a failed DAG stays failed, with its reason, until started
        if problem:
            log.error("dag %s: %s", self.dag.name, self.reason)
        return not problem

    def _drain(self, ctx: DagContext, deadline: float, timeout: float) -> list[str]:
        """Pause, drain, and let the subscribers commit what the last checkpoint covers; the problems."""
        self._pause(ctx, deadline)
        ctx.send(COORDINATOR, Control.DRAIN)
        if not ctx.drained.wait(max(0.0, deadline - time.monotonic())):
            return [f"in-flight epochs did not drain within {timeout:g}s"]
        if ctx.failure:
            return [f"{ctx.failure} while stopping"]
        # The last checkpoint's commits are queued to the subscribers: a READY behind them returns once
        # they are done, before the teardown drops whatever is left in the inboxes.
        self._ask_subscribers(ctx, Control.READY, deadline)
        return []

    def suspend(self, reason: str = "suspended by request") -> None:
        """Stop reading; in-flight epochs finish, node state is kept (also across restarts)."""
        with self._lock:
            ctx = self._ctx
            if reason == "suspended by request" and self.state in (RUNNING, *BUILDING):
                self._suspended_by_operator = True
            if self.state != RUNNING or ctx is None:
                return
            ctx.reading.clear()
        self._pause(ctx, time.monotonic() + PAUSE_WAIT)
        with self._lock:
            if self._ctx is ctx and self.state == RUNNING:
                self.state, self.reason = SUSPENDED, reason

    def resume(self) -> None:
        with self._lock:
            ctx = self._ctx
            self._suspended_by_operator = False
            if self.state != SUSPENDED or ctx is None:
                return
            self._suspended_by_window = False
            self.state, self.reason = RUNNING, ""
        self._start_reading(ctx)

    def check_window(self, now: datetime | None = None, timeout: float = 15.0) -> None:
        """Close the DAG when its schedule closes and open it when it opens (called periodically).

        Closing is an operator's stop (drain, flush, commit, checkpoint, actors torn down, within
        ``timeout``) that leaves the DAG ``suspended`` "outside its time window"; opening builds it
        again from that checkpoint, as a start does. A DAG the operator suspended or stopped stays so.
        """
        active = self.schedule.is_open(now or datetime.now(UTC))
        if not active and self.state == RUNNING:
            self._close(timeout, now)
        elif active and self.state == SUSPENDED and self._suspended_by_window and not self._suspended_by_operator:
            if self._ctx is None:
                self._open()
            else:  # started outside its window: built, never read; start reading now
                self.resume()

    def _close(self, timeout: float, now: datetime | None) -> None:
        clean = self.stop(timeout)
        next_start, _ = self.schedule.next_times(now or datetime.now(UTC))
        with self._lock:
            if self.state != STOPPED:
                return
            until = f" until {next_start.isoformat()}" if next_start else ""
            detail = "" if clean else f" ({self.reason})"
            self.state, self.reason = SUSPENDED, f"outside its time window{until}{detail}"
            self._suspended_by_window = True

    def _open(self) -> None:
        """Build the DAG again from its last checkpoint, as :meth:`start` does."""
        with self._lock:
            if self.state != SUSPENDED or self._ctx is not None:
                return
            generation = self._next_generation()
            self.restart_policy.history.clear()
            self._suspended_by_window = False
            self.state, self.reason = RESTARTING, "starting: its time window opened"
        if self._ckpt_path is not None and self._last_checkpoint is None:
            self._last_checkpoint = read_checkpoint(self._ckpt_path)
        self._launch(generation)

    def next_times(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """``(next_start, next_stop)`` of the DAG's schedule (both None when it runs around the clock);
        worked out again only once the earlier of them has passed."""
        now = now or datetime.now(UTC)
        valid_until, start, stop = self._next_times
        if valid_until is None or now >= valid_until or now.tzinfo is None:
            start, stop = self.schedule.next_times(now)
            soonest = min((t for t in (start, stop) if t is not None), default=None)
            if soonest is not None and now.tzinfo is not None:
                self._next_times = (soonest, start, stop)
        return start, stop

    # -- records from outside the sources ----------------------------------------------------------
    def tick(self, node: str, record: dict | None = None) -> None:
        """Fire a MetronomeNode now (``record`` None: the coordinator makes the tick record)."""
        ctx = self._ctx
        if ctx is not None:
            ctx.send(COORDINATOR, encode(Tick(node, record)))

    @property
    def incarnation(self) -> DagContext | None:
        """The DAG's current actors (None while stopped or between restarts), e.g. for injected records."""
        return self._ctx

    @property
    def ingress_backlog(self) -> int:
        ctx = self._ctx
        return ctx.gate.backlog if ctx is not None else 0

    def details(self, full: bool = False) -> dict[str, Any]:
        """The API's snapshot; node values as previews unless ``full`` (SPEC §7)."""
        return details_mod.dag_details(self, full=full)

    # -- building, failing, restarting ----------------------------------------------------------------
    def _next_generation(self) -> int:
        """Start a new generation (lock held): restarts scheduled by the old one give up."""
        self._generation += 1
        self._cancel.set()
        self._cancel = threading.Event()
        return self._generation

    def _launch(self, generation: int) -> None:
        """Build a new incarnation for ``generation`` and go running; a failure counts against the budget.

        The actors are built paused and start reading only once the incarnation is the
        current one, so a failure of theirs always finds supervision ready for it.
        """
        with self._lock:
            why_not = ("suspended by request" if self._suspended_by_operator
                       else "outside its time window" if self._suspended_by_window else "")
            restore = self._last_checkpoint
        try:
            ctx = build(self.dag, self.stats, self._wiring, restore, reading=False)
        except Exception as exc:  # a BuildError, or a bug: either way nothing of it is left running
            message = str(exc) if isinstance(exc, BuildError) else f"could not build: {describe_error(exc)}"
            self._schedule_restart(generation, None, message)
            return
        ctx.generation = generation
        with self._lock:
            current = generation == self._generation and self.state in BUILDING
            if current:
                self._ctx = ctx
                self.state, self.reason = (SUSPENDED, why_not) if why_not else (RUNNING, "")
        if not current:
            teardown(ctx, time.monotonic() + STOP_WAIT)
        elif ctx.failure:  # an actor died between its start and now
            self._incarnation_failed(ctx, ctx.failure)
        elif not why_not:
            self._start_reading(ctx)

    def _actor_failed(self, ctx: DagContext, actor: str, exc: BaseException) -> None:
        """An actor of ``ctx`` died (called from its thread): restart the DAG, or end a stop's wait."""
        if ctx.stopping.is_set():  # a stop is draining: end its wait, it tears down itself
            log.error("dag %s: %s failed while stopping: %s", self.dag.name, actor, describe_error(exc))
            ctx.drained.set()
            return
        self._incarnation_failed(ctx, f"{actor} failed: {describe_error(exc)}")

    def _incarnation_failed(self, ctx: DagContext, message: str) -> None:
        with self._lock:
            if ctx.stopping.is_set():  # a stop raced the failure: it tears down, nothing restarts
                ctx.drained.set()
                return
            if ctx is not self._ctx or ctx.tearing_down.is_set() or ctx.generation != self._generation:
                return  # not installed yet (its build reports it), already being replaced, or stale
            ctx.tearing_down.set()
        self._schedule_restart(ctx.generation, ctx, message)

    def _schedule_restart(self, generation: int, failed: DagContext | None, message: str) -> None:
        with self._lock:
            if generation != self._generation:
                return  # an operator's command came in between: its own doing wins, no budget spent
            delay = self.restart_policy.next_delay(time.monotonic())
            if delay is None:
                self.state = FAILED
                self.reason = (f"over the restart budget ({self.restart_policy.max_restarts} restarts "
                               f"within {self.restart_policy.within_seconds:g}s); last: {message}")
            else:
                self.state, self.reason = RESTARTING, message
            cancel = self._cancel
            log.error("dag %s: %s", self.dag.name, self.reason)
            thread = threading.Thread(target=self._restart, args=(generation, failed, delay, cancel), daemon=True,
                                      name=f"restart-{self.dag.name}")
            self._restarter = thread
            thread.start()  # under the lock: a stop() that sees the thread can always join it

    def _restart(self, generation: int, failed: DagContext | None, delay: float | None,
                 cancel: threading.Event) -> None:
        if failed is not None:
            teardown(failed, time.monotonic() + STOP_WAIT)
            with self._lock:
                if self._ctx is failed:
                    self._ctx = None
        if delay is None or cancel.wait(delay):
            return
        with self._lock:
            if generation != self._generation or self.state != RESTARTING:
                return
        self.stats.actor_restarts += 1
        self._launch(generation)

    # -- helpers ------------------------------------------------------------------------------------
    def _start_reading(self, ctx: DagContext) -> None:
        ctx.reading.set()
        for name in list(ctx.refs):
            if name.startswith("subscriber:"):
                ctx.send(name, Control.RESUME)

    def _pause(self, ctx: DagContext, deadline: float) -> None:
        ctx.reading.clear()
        self._ask_subscribers(ctx, Control.PAUSE, deadline)

    def _ask_subscribers(self, ctx: DagContext, message: str, deadline: float) -> None:
        """Ask every subscriber actor at once; returns when all answered or at ``deadline``."""
        futures = []
        for name, ref in list(ctx.refs.items()):
            if name.startswith("subscriber:"):
                try:
                    futures.append((name, ref.ask(message, block=False)))
                except pykka.ActorDeadError:
                    continue
        for name, future in futures:
            try:
                future.get(timeout=max(0.05, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("dag %s: %s did not answer %s: %s", self.dag.name, name, message, describe_error(exc))

    def _write_checkpoint(self, data: dict[str, Any]) -> None:
        self._last_checkpoint = data
        if self._ckpt_path is not None:
            write_checkpoint(self._ckpt_path, data)
