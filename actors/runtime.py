"""One DAG's life in a worker: its actors, its lifecycle and its supervision (SPEC §3-§4).

A :class:`DagRuntime` starts the coordinator, node, publisher and subscriber actors of
one DAG, and stops, suspends and resumes them. When any of them dies it tears the
whole set down and starts a new one from the last checkpoint, within the restart
budget; over budget the DAG is ``failed``. Other DAGs never notice.

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
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from actors import details as details_mod
from actors.checkpoint import checkpoint_path, read_checkpoint, write_checkpoint
from actors.context import COORDINATOR, DagContext, IngressGate
from actors.coordinator import DRAIN, CoordinatorActor
from actors.messages import INGEST, TICK, encode
from actors.node import NodeActor, node_actor_name
from actors.nodelogic import NodeLogic
from actors.publisher import PublisherActor
from actors.restart import RestartPolicy
from actors.stats import DagStats
from actors.subscriber import PAUSE, RESUME, SubscriberActor, subscriber_actor_name
from adapters.base import Sink, Source
from graphs.components import build_component, callable_of
from graphs.model import METRONOME_NODE, DagModel
from graphs.window import ActiveWindow

log = logging.getLogger("dagserver.runtime")

RUNNING, SUSPENDED, STOPPED, FAILED, RESTARTING = "running", "suspended", "stopped", "failed", "restarting"
STOP_WAIT = 5.0  # seconds to wait for one actor to stop during a teardown

SourceFactory = Callable[[str, Mapping[str, Any]], Source]
SinkFactory = Callable[[str, Mapping[str, Any]], Sink]


def _default_source(uri: str, config: Mapping[str, Any]) -> Source:
    from adapters.registry import open_source

    return open_source(uri, config)


def _default_sink(uri: str, config: Mapping[str, Any]) -> Sink:
    from adapters.registry import open_sink

    return open_sink(uri, config)


class DagRuntime:
    """Runs one DAG in this process; every public method is thread-safe."""

    def __init__(self, dag: DagModel, *, state_dir: str | Path | None = None,
                 source_factory: SourceFactory = _default_source,
                 sink_factory: SinkFactory = _default_sink,
                 restart: RestartPolicy | None = None, clock: Callable[[], float] = time.time,
                 external_ingress: bool = False, tick_timers: bool = True) -> None:
        self.dag = dag
        self.stats = DagStats.for_dag(dag)
        self.state = STOPPED
        self.reason = ""
        self.restart_policy = restart or RestartPolicy()
        self.clock = clock
        self.window = ActiveWindow.from_dag(dag)
        self._source_factory = source_factory
        self._sink_factory = sink_factory
        self._external = external_ingress
        self._tick_timers = tick_timers
        self._ckpt_path = checkpoint_path(state_dir, dag.name) if state_dir else None
        self._last_checkpoint: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._ctx: DagContext | None = None
        self._drained = threading.Event()
        self._ticker_stop = threading.Event()
        self._restart_timer: threading.Timer | None = None
        self._suspended_by_window = False
        self._dead_letter_sink: Sink | None = None
        self._dead_letter_lock = threading.Lock()
        self.recent_dead_letters: deque[dict] = deque(maxlen=20)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, now: datetime | None = None) -> None:
        """Start the DAG's actors (resuming from its checkpoint, if any)."""
        with self._lock:
            if self.state in (RUNNING, SUSPENDED, RESTARTING):
                return
            self.restart_policy.history.clear()  # an operator's start gives a fresh budget
            if self._ckpt_path is not None and self._last_checkpoint is None:
                self._last_checkpoint = read_checkpoint(self._ckpt_path)
            self._open_dead_letter()
            active = self.window.is_active(now or datetime.now())
            self._suspended_by_window = not active
            self.state, self.reason = (RUNNING, "") if active else (SUSPENDED, "outside its time window")
            self._spawn()

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop reading, finish in-flight epochs, flush, commit, checkpoint. False if it timed out."""
        with self._lock:
            self._cancel_restart()
            ctx = self._ctx
            if ctx is None:
                if self.state != FAILED:
                    self.state = STOPPED
                return True
            if ctx.tearing_down.is_set():  # failed or restarting: nothing left to drain
                self._teardown(ctx)
                self._close_dead_letter()
                if self.state != FAILED:
                    self.state, self.reason = STOPPED, ""
                return True
            deadline = time.monotonic() + timeout
            ctx.stopping.set()
            self._pause_reading(ctx, deadline)
            ctx.refs[COORDINATOR].tell(DRAIN)
            drained = self._drained.wait(max(0.0, deadline - time.monotonic()))
            drained = drained and not ctx.tearing_down.is_set()  # an actor failed while draining
            if not drained:
                log.error("dag %s: in-flight epochs did not drain within %.1fs", self.dag.name, timeout)
            self._teardown(ctx)
            self._close_dead_letter()
            self.state, self.reason = STOPPED, ""
            return drained

    def suspend(self, reason: str = "suspended by request") -> None:
        """Stop reading; in-flight epochs finish, node state is kept."""
        with self._lock:
            if self.state != RUNNING or self._ctx is None:
                return
            self._pause_reading(self._ctx, time.monotonic() + STOP_WAIT)
            self.state, self.reason = SUSPENDED, reason

    def resume(self) -> None:
        with self._lock:
            if self.state != SUSPENDED or self._ctx is None:
                return
            self._suspended_by_window = False
            self.state, self.reason = RUNNING, ""
            for name in self._subscriber_actors(self._ctx):
                self._ctx.refs[name].ask(RESUME, timeout=STOP_WAIT)
            self._start_tickers(self._ctx)

    def check_window(self, now: datetime | None = None) -> None:
        """Suspend outside the daily window and resume inside it (called periodically)."""
        active = self.window.is_active(now or datetime.now())
        with self._lock:
            if not active and self.state == RUNNING:
                self.suspend("outside its time window")
                self._suspended_by_window = True
            elif active and self.state == SUSPENDED and self._suspended_by_window:
                self.resume()

    # -- external ingress (replay, tests, benchmarks) -----------------------------------------------
    def ingest(self, subscriber: str, records: list[dict]) -> None:
        """Hand records to the coordinator in this order, waiting while the gate is full."""
        ctx = self._ctx
        if ctx is None:
            raise RuntimeError(f"dag {self.dag.name} is not running")
        limit = self.dag.max_records
        for start in range(0, len(records), limit):
            chunk = records[start:start + limit]
            need = len(chunk)
            while need:
                need -= ctx.gate.acquire(need, 0.5)
                if ctx.tearing_down.is_set():
                    raise RuntimeError(f"dag {self.dag.name} stopped while ingesting")
            self.stats.subscribers[subscriber].add(len(chunk))
            ctx.send(COORDINATOR, encode([INGEST, subscriber, len(chunk), None, encode(chunk)]))

    def tick(self, node: str, record: dict | None = None) -> None:
        """Fire a MetronomeNode now (``record`` None: the coordinator makes the tick record)."""
        if self._ctx is not None:
            self._ctx.send(COORDINATOR, encode([TICK, node, record]))

    def details(self) -> dict[str, Any]:
        return details_mod.dag_details(self)

    # -- supervision ----------------------------------------------------------------------------------
    def _actor_failed(self, ctx: DagContext, actor: str, exc: BaseException) -> None:
        if ctx.stopping.is_set():  # stop() holds the lock while it drains: end the wait, no restart
            log.error("dag %s: %s failed while stopping: %s: %s", self.dag.name, actor, type(exc).__name__, exc)
            ctx.tearing_down.set()
            self._drained.set()
            return
        with self._lock:
            if ctx is not self._ctx or ctx.tearing_down.is_set():
                return
            ctx.tearing_down.set()
            message = f"{actor} failed: {type(exc).__name__}: {exc}"
            log.error("dag %s: %s", self.dag.name, message)
            delay = self.restart_policy.next_delay(time.monotonic())
            if delay is None:
                self.state = FAILED
                self.reason = (f"over the restart budget ({self.restart_policy.max_restarts} restarts "
                               f"within {self.restart_policy.within_seconds:g}s); last: {message}")
                threading.Thread(target=self._teardown, args=(ctx,), daemon=True).start()
                return
            self.state, self.reason = RESTARTING, message
            timer = threading.Timer(delay, self._restart, args=(ctx,))
            timer.daemon = True
            self._restart_timer = timer
            timer.start()

    def _restart(self, failed: DagContext) -> None:
        self._teardown(failed)
        with self._lock:
            if self._ctx is not failed or self.state != RESTARTING:
                return
            self.stats.actor_restarts += 1
            self.state = SUSPENDED if self._suspended_by_window else RUNNING
            self._spawn()

    def _cancel_restart(self) -> None:
        if self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None

    # -- building and tearing down the actors -------------------------------------------------------
    def _spawn(self) -> None:
        dag = self.dag
        restore = self._last_checkpoint
        gate = IngressGate(dag.max_records * (dag.max_inflight + 1))
        ctx = DagContext(dag, self.stats, gate, on_actor_failure=lambda a, e: None,
                         on_dead_letter=self.dead_letter, clock=self.clock, restore=restore)
        ctx.on_actor_failure = lambda actor, exc: self._actor_failed(ctx, actor, exc)
        self._ctx = ctx
        self._drained = threading.Event()
        calcs = {n: callable_of(build_component(s, "calculator"), "calculator")
                 for n, s in dag.calculators.items()}
        trans = {n: callable_of(build_component(s, "transformer"), "transformer")
                 for n, s in dag.transformers.items()}
        ctx.refs[COORDINATOR] = CoordinatorActor.start(ctx, self._write_checkpoint, self._drained)
        for name, spec in dag.publishers.items():
            if dag.publisher_feeds(name):
                sink = self._sink_factory(spec.destination, spec.config)
                ctx.refs[f"publisher:{name}"] = PublisherActor.start(ctx, name, sink)
        node_states = (restore or {}).get("nodes") or {}
        for name in reversed(dag.topo_order):
            logic = NodeLogic(dag, name, calcs, trans, self.stats.nodes[name], self._node_error, self.clock)
            if name in node_states:
                parents = [(node_states.get(e.from_node) or {}).get("output") for e in dag.parents[name]]
                logic.restore(node_states[name], parents)
            ctx.refs[node_actor_name(name)] = NodeActor.start(ctx, logic)
        if not self._external:
            positions = (restore or {}).get("positions") or {}
            for name, spec in dag.subscribers.items():
                if dag.node_for_subscriber(name) is None:
                    continue
                source = self._source_factory(spec.source, spec.config)
                ctx.refs[subscriber_actor_name(name)] = SubscriberActor.start(
                    ctx, name, source, positions.get(name), reading=self.state == RUNNING)
        self._start_tickers(ctx)

    def _teardown(self, ctx: DagContext) -> None:
        """Stop every actor of ``ctx``: coordinator first, then sources, then the rest."""
        ctx.tearing_down.set()
        ctx.gate.close()
        self._ticker_stop.set()
        order = [COORDINATOR, *self._subscriber_actors(ctx)]
        order += [n for n in ctx.refs if n not in order]
        for name in order:
            try:
                ctx.refs[name].stop(block=True, timeout=STOP_WAIT)
            except Exception as exc:
                log.warning("dag %s: %s did not stop cleanly: %s", self.dag.name, name, exc)
        with self._lock:
            if self._ctx is ctx and self.state != RESTARTING:
                self._ctx = None

    def _pause_reading(self, ctx: DagContext, deadline: float) -> None:
        self._ticker_stop.set()
        for name in self._subscriber_actors(ctx):
            try:
                ctx.refs[name].ask(PAUSE, timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("dag %s: could not pause %s: %s", self.dag.name, name, exc)

    @staticmethod
    def _subscriber_actors(ctx: DagContext) -> list[str]:
        return [name for name in ctx.refs if name.startswith("subscriber:")]

    def _start_tickers(self, ctx: DagContext) -> None:
        self._ticker_stop = stop = threading.Event()
        if not self._tick_timers or self.state != RUNNING:
            return
        for name, node in self.dag.nodes.items():
            if node.type == METRONOME_NODE:
                threading.Thread(target=self._ticker, args=(ctx, name, node.interval, stop),
                                 name=f"ticker-{self.dag.name}-{name}", daemon=True).start()

    def _ticker(self, ctx: DagContext, node: str, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            if self.state == RUNNING and not ctx.tearing_down.is_set():
                ctx.send(COORDINATOR, encode([TICK, node, None]))

    # -- checkpoints and dead letters ------------------------------------------------------------
    def _write_checkpoint(self, data: dict[str, Any]) -> None:
        self._last_checkpoint = data
        if self._ckpt_path is not None:
            write_checkpoint(self._ckpt_path, data)

    def _node_error(self, node: str, message: str, input_value: Any) -> None:
        self.dead_letter({"dag": self.dag.name, "node": node, "error": message, "input": input_value})

    def dead_letter(self, letter: dict) -> None:
        """Send ``letter`` to the DAG's dead-letter destination, if it has one."""
        if not self.dag.dead_letter:
            return
        with self._dead_letter_lock:
            self.stats.dead_letters += 1
            self.recent_dead_letters.append(letter)
            if self._dead_letter_sink is None:
                return
            try:
                self._dead_letter_sink.write_batch([letter])
            except Exception as exc:
                log.error("dag %s: dead letter could not be written: %s", self.dag.name, exc)

    def _open_dead_letter(self) -> None:
        if self.dag.dead_letter and self._dead_letter_sink is None:
            sink = self._sink_factory(self.dag.dead_letter, {})
            sink.open()
            self._dead_letter_sink = sink

    def _close_dead_letter(self) -> None:
        with self._dead_letter_lock:
            if self._dead_letter_sink is not None:
                try:
                    self._dead_letter_sink.flush()
                    self._dead_letter_sink.close()
                finally:
                    self._dead_letter_sink = None
