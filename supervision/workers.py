"""The worker processes, seen from the supervisor (SPEC §4 across processes, §5).

A :class:`WorkerPool` starts each worker with the ``spawn`` context, talks to it over its
pipe (:mod:`actors.control` frames), keeps each DAG's newest snapshot, and restarts a
worker that exits or stops heartbeating, with backoff and within the restart budget; over
budget the worker stays down (``gave_up``) until an operator revives it.

Workers are started by :meth:`WorkerPool.start`'s caller and then only by the monitor
thread: Linux sends a worker its parent-death signal when the *thread* that started it
ends, so a short-lived thread (an API request's) must never start one.

Usage::

    pool = WorkerPool(config, on_started=deploy_dags, on_lost=carry_counters)
    pool.start()
    payload, seq, conn = pool.request(pool.handles[0], "stop", {"name": "prices", "timeout": 15}, timeout=20)
    pool.shutdown()
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import multiprocess

from actors.control import HEARTBEAT, REPLY, REQUEST, pack, unpack
from actors.restart import RestartPolicy
from actors.worker import worker_main
from supervision.config import ServerConfig

log = logging.getLogger("dagserver.supervisor")

MONITOR_INTERVAL = 0.1
# A worker's first heartbeat comes only once its interpreter has started and imported the server (seconds
# on a loaded machine): until then it is allowed this long, whatever heartbeat_timeout says.
START_TIMEOUT = 30.0


class WorkerUnavailable(Exception):
    """A request could not be answered: the worker failed it, went away, or took too long."""


@dataclass
class WorkerHandle:
    id: int
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    process: Any = None
    conn: Any = None
    restarts: int = 0
    last_beat: float = 0.0
    beating: bool = False  # a heartbeat came from this process: it has started
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # each DAG's newest snapshot
    seen: dict[str, int] = field(default_factory=dict)  # per DAG: seq of the snapshot in ``details``
    pending: dict[int, Future] = field(default_factory=dict)
    restart_at: float | None = None
    gave_up: str = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive() and self.restart_at is None


class WorkerPool:
    def __init__(self, config: ServerConfig, log_level: str = "INFO",
                 on_started: Callable[[WorkerHandle], None] = lambda handle: None,
                 on_lost: Callable[[WorkerHandle], None] = lambda handle: None) -> None:
        self.config = config
        self.log_level = log_level
        self.on_started = on_started
        self.on_lost = on_lost
        self.handles = [WorkerHandle(i, RestartPolicy(config.max_restarts, config.within_seconds, base_delay=0.2))
                        for i in range(config.workers)]
        self.lock = threading.RLock()  # guards the handles; held briefly, never across a request
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._gone = threading.Event()
        self._mp = multiprocess.get_context("spawn")

    # -- starting ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every worker, then the monitor (call from a thread that lives as long as the process)."""
        with self.lock:
            for handle in self.handles:
                self._spawn(handle)
        threading.Thread(target=self._monitor, name="worker-monitor", daemon=True).start()

    def _spawn(self, handle: WorkerHandle) -> None:
        parent, child = self._mp.Pipe(duplex=True)
        process = self._mp.Process(
            target=worker_main, name=f"dagserver-worker-{handle.id}", daemon=True,
            args=(child, handle.id, self.config.state_dir, self.config.max_restarts,
                  self.config.within_seconds, os.getpid(), self.log_level, self.config.ha is not None))
        process.start()
        child.close()
        handle.process, handle.conn, handle.pending = process, parent, {}
        handle.last_beat, handle.restart_at, handle.details, handle.seen = time.monotonic(), None, {}, {}
        handle.beating = False
        threading.Thread(target=self._read, args=(handle, parent, handle.pending), daemon=True,
                         name=f"worker-{handle.id}-reader").start()
        self.on_started(handle)

    def revive(self, handle: WorkerHandle) -> None:
        """Give a worker that is over its budget a fresh one and start it again (an operator's start)."""
        with self.lock:
            log.warning("worker %d: restarted by request after giving up (%s)", handle.id, handle.gave_up)
            handle.gave_up = ""
            handle.policy.history.clear()
            handle.restart_at = 0.0  # due now: the monitor thread starts it

    # -- the control channel ------------------------------------------------------------------------
    def _read(self, handle: WorkerHandle, conn: Any, pending: dict[int, Future]) -> None:
        """Heartbeats and replies from one worker connection (requests on it wait in ``pending``)."""
        while True:
            try:
                frame = unpack(conn.recv_bytes())
            except (EOFError, OSError):
                break
            if frame[0] == HEARTBEAT:
                _, seq, snapshots = frame
                with self.lock:
                    if handle.conn is conn:
                        handle.last_beat, handle.beating = time.monotonic(), True
                        for name, details in snapshots.items():
                            self.store(handle, conn, name, details, seq)
            elif frame[0] == REPLY:
                future = pending.pop(frame[1], None)
                if future is not None:
                    future.set_result((frame[2], frame[3], frame[4], conn))
        for request_id in list(pending):
            future = pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result((False, f"worker {handle.id} went away", -1, conn))

    @staticmethod
    def store(handle: WorkerHandle, conn: Any, name: str, details: Any, seq: int) -> bool:
        """Keep ``details`` as DAG ``name``'s view if it is from this worker's current connection and
        newer than what is kept (call with the lock held). Heartbeats and replies race on the pipe: an
        older snapshot arriving later must not undo a newer one (SPEC §8: counters never go back)."""
        if handle.conn is not conn or not isinstance(details, dict) or seq <= handle.seen.get(name, -1):
            return False
        handle.details[name], handle.seen[name] = details, seq
        return True

    def gather(self, asked: list[tuple[WorkerHandle, str, Future]], timeout: float, what: str = "") -> list[str]:
        """Wait for replies to requests sent at once, ``(handle, DAG key, future)`` each; keep each reply's
        details as that key's view (:meth:`store`). Returns one line per worker that refused or did not
        answer within ``timeout`` (``what`` names the request in it)."""
        problems = []
        for handle, key, future in asked:
            try:
                ok, details, seq, conn = future.result(timeout)
            except TimeoutError:
                problems.append(f"worker {handle.id} did not answer{f' {what!r}' if what else ''} within {timeout:g}s")
                continue
            if not ok:
                problems.append(str(details))
                continue
            with self.lock:
                self.store(handle, conn, key, details, seq)
        return problems

    def request_async(self, handle: WorkerHandle, command: str, args: dict[str, Any]) -> Future:
        """Send a request; the future gives ``(ok, payload, seq, conn)``."""
        future: Future = Future()
        request_id = next(self._ids)
        with self.lock:  # the pending map and the connection of one incarnation, together
            pending, conn = handle.pending, handle.conn
            pending[request_id] = future
        try:
            conn.send_bytes(pack([REQUEST, request_id, command, args]))
        except (OSError, ValueError, AttributeError) as exc:
            pending.pop(request_id, None)
            future.set_result((False, f"worker {handle.id} unreachable: {exc}", -1, None))
        return future

    def request(self, handle: WorkerHandle, command: str, args: dict[str, Any],
                timeout: float) -> tuple[Any, int, Any]:
        """Ask and wait: ``(payload, seq, conn)``; WorkerUnavailable when it fails or does not answer."""
        try:
            ok, payload, seq, conn = self.request_async(handle, command, args).result(timeout)
        except TimeoutError as exc:
            raise WorkerUnavailable(f"worker {handle.id} did not answer {command!r} within {timeout:g}s") from exc
        if not ok:
            raise WorkerUnavailable(str(payload))
        return payload, seq, conn

    # -- supervision ----------------------------------------------------------------------------------
    def _monitor(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(MONITOR_INTERVAL):
            now = time.monotonic()
            # This process itself was stopped or starved (SIGSTOP, a swapped-out host): the heartbeats
            # waiting in the pipes have not been read yet, so silence says nothing about the workers.
            stalled, last = now - last > self.config.heartbeat_timeout / 2, now
            for handle in self.handles:
                with self.lock:
                    if self._stop.is_set() or handle.gave_up:
                        continue
                    if handle.restart_at is not None:
                        if now >= handle.restart_at:
                            log.warning("restarting worker %d (restart %d)", handle.id, handle.restarts + 1)
                            self._spawn(handle)
                            handle.restarts += 1
                        continue
                    if not handle.process.is_alive():
                        self._lost(handle, f"worker {handle.id} exited with code {handle.process.exitcode}")
                    elif stalled:
                        handle.last_beat = max(handle.last_beat, now - self.config.heartbeat_timeout / 2)
                    elif now - handle.last_beat > self._allowed_silence(handle):
                        silence = f"{now - handle.last_beat:.1f}s"
                        self._lost(handle, f"worker {handle.id} sent no heartbeat for {silence} (hung)"
                                   if handle.beating else f"worker {handle.id} sent no first heartbeat within "
                                                          f"{silence} of its start (hung while starting)")
        # A worker gets its parent-death signal (PR_SET_PDEATHSIG) when the *thread* that started
        # it ends, so this thread, which starts workers, waits for them to be gone before ending.
        self._gone.wait()

    def _allowed_silence(self, handle: WorkerHandle) -> float:
        """How long ``handle`` may go without a heartbeat: ``heartbeat_timeout`` once it has beaten,
        at least START_TIMEOUT before its first."""
        timeout = self.config.heartbeat_timeout
        return timeout if handle.beating else max(START_TIMEOUT, timeout)

    def _lost(self, handle: WorkerHandle, reason: str) -> None:
        log.error("%s; killing it", reason)
        if handle.process.is_alive():
            handle.process.kill()
        handle.process.join(5)
        with contextlib.suppress(OSError):
            handle.conn.close()
        handle.conn = None  # a heartbeat still in flight from the dead worker must not land after the carry
        self.on_lost(handle)
        handle.details, handle.seen = {}, {}
        delay = handle.policy.next_delay(time.monotonic())
        if delay is None:
            handle.gave_up = (f"{reason}; over the restart budget ({self.config.max_restarts} "
                              f"within {self.config.within_seconds:g}s)")
            log.error("worker %d: %s; its DAGs are failed", handle.id, handle.gave_up)
            return
        handle.restart_at = time.monotonic() + delay

    # -- shutdown -------------------------------------------------------------------------------------
    def shutdown(self, timeout: float) -> bool:
        """Stop every worker gracefully within ``timeout``; True if all went cleanly."""
        self._stop.set()
        with self.lock:  # a worker start in progress completes first, so that worker is stopped too
            pass
        deadline = time.monotonic() + timeout
        futures = [self.request_async(h, "shutdown", {"timeout": max(1.0, timeout - 1.0)})
                   for h in self.handles if h.process is not None and h.process.is_alive()]
        clean = True
        for future in futures:
            try:
                ok, *_ = future.result(max(0.1, deadline - time.monotonic()))
                clean = clean and ok
            except TimeoutError:
                clean = False
        for handle in self.handles:
            if handle.process is not None:
                handle.process.join(max(0.1, deadline - time.monotonic()))
                if handle.process.is_alive():
                    log.error("worker %d did not stop in time; killing it", handle.id)
                    handle.process.kill()
                    handle.process.join(2)
                    clean = False
        self._gone.set()
        return clean
