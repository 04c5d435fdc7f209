"""The worker process: hosts DAG runtimes and obeys the supervisor over a pipe (SPEC §4-§5).

The frames are those of :mod:`actors.control`; a heartbeat goes every HEARTBEAT_INTERVAL
seconds with every DAG's snapshot.

Each DAG has its own **lane**, a single thread running its commands in order (deploy,
start, stop, suspend, resume, and the periodic window check), so a slow stop of one DAG
holds up nothing else. Read-only commands (``details``, ``node``) and heartbeats never
wait on any lane. The worker exits when the supervisor goes away (pipe closed or parent
changed), so no worker outlives its supervisor. A worker of a high-availability server
(``fenced``) reads and publishes only under the lease the supervisor renews with the
``lease`` command (:mod:`actors.lease`, SPEC §9), handled at once, before any lane.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from actors.control import HEARTBEAT, REPLY, pack, unpack
from actors.details import node_details
from actors.injection import InjectionError
from actors.lease import LEASE
from actors.observing import OBSERVING
from actors.redrive import MAX_LETTERS, list_dead_letters, redrive
from actors.restart import RestartPolicy
from actors.runtime import DagRuntime
from graphs.building import build_model
from graphs.masking import install_log_masking

HEARTBEAT_INTERVAL = 0.5
WINDOW_CHECK_INTERVAL = 1.0
READ_ONLY = frozenset({"details", "node", "tap", "capture_status", "deadletters"})
# quick and safe in any state, so never queued behind a DAG's lane: a record handed over, a flag set
OUT_OF_BAND = READ_ONLY | {"inject", "capture"}
SNAPSHOT_REPLIES = frozenset({"start", "stop", "suspend", "resume", "details", "deploy"})

log = logging.getLogger("dagserver.worker")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def replica_key(name: str, replica: int | None) -> str:
    """How a worker and the supervisor name one runtime: the DAG, or ``DAG#I`` for replica I > 0."""
    return f"{name}#{replica}" if replica else name


class Worker:
    """The DAG runtimes of one worker process, their lanes, and the commands that drive them."""

    def __init__(self, worker_id: int, state_dir: str, max_restarts: int, within_seconds: float,
                 send: Callable[[list[Any]], None], clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``clock``: the time the DAGs' schedules are checked against (tests give their own)."""
        self.worker_id = worker_id
        self.clock = clock
        self.state_dir = state_dir
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self.send = send
        self.runtimes: dict[str, DagRuntime] = {}
        self.stopping = threading.Event()
        self.snapshots = itertools.count()  # numbers the snapshots sent, under _snapshot_lock
        self._snapshot_lock = threading.Lock()  # held only to snapshot and send, never across a DAG's command
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._lanes_lock = threading.Lock()
        self._reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reads")
        self._window_checks: dict[str, Future] = {}

    # -- dispatch -------------------------------------------------------------------------------
    def dispatch(self, request_id: int, command: str, args: dict[str, Any]) -> None:
        """Run one request where it belongs and send its reply when done."""
        if command == "lease":  # fencing must not wait behind anything (SPEC §9)
            self._answer(request_id, command, args)
        elif command in OUT_OF_BAND:
            self._reads.submit(self._answer, request_id, command, args)
        else:
            self.lane(self._lane_name(command, args)).submit(self._answer, request_id, command, args)

    @staticmethod
    def _lane_name(command: str, args: dict[str, Any]) -> str:
        name = str(args.get("name") or (args.get("raw") or {}).get("name") or "")
        return replica_key(name, args.get("replica"))

    def lane(self, name: str) -> ThreadPoolExecutor:
        with self._lanes_lock:
            if name not in self._lanes:
                self._lanes[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dag-{name}")
            return self._lanes[name]

    def _answer(self, request_id: int, command: str, args: dict[str, Any]) -> None:
        try:
            payload, ok = self.handle(command, args), True
        except Exception as exc:
            log.exception("command %s failed", command)
            payload, ok = f"{type(exc).__name__}: {exc}", False
        runtime = self._runtime_of(args) if ok and command in SNAPSHOT_REPLIES else None
        try:
            with self._snapshot_lock:  # numbered, taken and sent in one go: arrival order is number order
                if runtime is not None:
                    payload = runtime.details()
                self.send([REPLY, request_id, ok, payload, next(self.snapshots)])
        except (OSError, ValueError):
            os._exit(1)

    # -- commands -------------------------------------------------------------------------------
    def handle(self, command: str, args: dict[str, Any]) -> Any:
        if command == "deploy":
            return self.deploy(args["raw"], args["path"], args.get("replica"))
        if command == "undeploy":
            return self.undeploy(str(args.get("name", "")), args.get("replica"), float(args.get("timeout", 15)))
        if command == "shutdown":
            return self.shutdown(float(args.get("timeout", 15)))
        if command == "lease":
            LEASE.grant(float(args["until"]))
            return LEASE.remaining()
        runtime = self._runtime_of(args)
        if runtime is None:
            raise KeyError(f"dag {args.get('name')!r} (replica {args.get('replica') or 0}) is not deployed on "
                           f"worker {self.worker_id}")
        if command == "node":
            return node_details(runtime, str(args.get("node", "")))
        if command in OBSERVING:
            return OBSERVING[command](runtime, args)
        if command in ("deadletters", "redrive"):  # refusals come back as {"error"}: the API's 409, not a failure
            try:
                if command == "deadletters":
                    return {"letters": list_dead_letters(runtime, int(args.get("limit", MAX_LETTERS)))}
                return redrive(runtime, args.get("ids"))
            except (InjectionError, TimeoutError) as exc:
                return {"error": str(exc)}
        if command == "start":
            runtime.start(self.clock(), suspended=bool(args.get("suspended")), reload=bool(args.get("reload")))
        elif command == "stop":
            runtime.stop(timeout=float(args.get("timeout", 15)))
        elif command == "suspend":
            runtime.suspend()
        elif command == "resume":
            runtime.resume()
        elif command != "details":
            raise ValueError(f"unknown command {command!r}")
        return runtime.details()

    def _runtime_of(self, args: dict[str, Any]) -> DagRuntime | None:
        return self.runtimes.get(replica_key(str(args.get("name", "")), args.get("replica")))

    def deploy(self, raw: dict[str, Any], path: str, replica: int | None = None) -> dict[str, Any]:
        """Host the DAG ``raw`` (one of its replicas): a document the supervisor validated, not checked again."""
        dag = build_model(raw, source_path=path)
        key = replica_key(dag.name, replica)
        if key in self.runtimes:
            return self.runtimes[key].details()
        policy = RestartPolicy(max_restarts=self.max_restarts, within_seconds=self.within_seconds)
        runtime = DagRuntime(dag, state_dir=self.state_dir, restart=policy, replica=replica)
        self.runtimes[key] = runtime
        return runtime.details()

    def undeploy(self, name: str, replica: int | None, timeout: float) -> dict[str, Any] | None:
        """Stop a DAG's replica (drain, flush, commit, checkpoint) and forget it: its last details (what
        it counted, for the supervisor to carry), or None if it was not here."""
        runtime = self.runtimes.pop(replica_key(name, replica), None)
        if runtime is None:
            return None
        runtime.stop(timeout=timeout)
        return runtime.details()

    def shutdown(self, timeout: float) -> dict[str, bool]:
        """Stop every DAG at once (each drains, flushes, commits, checkpoints)."""
        self.stopping.set()
        if not self.runtimes:
            return {}
        with ThreadPoolExecutor(max_workers=len(self.runtimes)) as pool:
            futures = {name: pool.submit(rt.stop, timeout) for name, rt in self.runtimes.items()}
            return {name: bool(f.result()) for name, f in futures.items()}

    # -- periodic work ----------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Every DAG's snapshot, numbered; never waits on a DAG."""
        with self._snapshot_lock:
            details = {}
            for name, runtime in list(self.runtimes.items()):
                try:
                    details[name] = runtime.details()
                except Exception as exc:  # a snapshot must never stop the heartbeat
                    log.warning("details of %s failed: %s", name, exc)
            self.send([HEARTBEAT, next(self.snapshots), details])

    def check_windows(self) -> None:
        """Queue each DAG's window check on its own lane (one at a time), so no check waits here."""
        for name, runtime in list(self.runtimes.items()):
            pending = self._window_checks.get(name)
            if pending is None or pending.done():
                self._window_checks[name] = self.lane(name).submit(self._check_window, runtime)

    def _check_window(self, runtime: DagRuntime) -> None:
        try:
            runtime.check_window(self.clock())
        except Exception:
            log.exception("window check of %s failed", runtime.dag.name)


def worker_main(conn: Any, worker_id: int, state_dir: str, max_restarts: int, within_seconds: float,
                parent_pid: int, log_level: str = "INFO", fenced: bool = False) -> None:
    """Entry point of a worker process (started with the spawn context); ``fenced``: read and
    publish only under the supervisor's lease (a high-availability server, SPEC §9)."""
    _die_with_parent()
    if fenced:
        LEASE.require()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when workers stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{worker_id} %(levelname)s %(name)s: %(message)s")
    install_log_masking()  # adapters log their URIs: never with a password (SPEC §7)
    send_lock = threading.Lock()

    def send(frame: list[Any]) -> None:
        data = pack(frame)
        with send_lock:
            conn.send_bytes(data)

    worker = Worker(worker_id, state_dir, max_restarts, within_seconds, send)
    threading.Thread(target=_beat, args=(worker, parent_pid), daemon=True, name="heartbeat").start()
    threading.Thread(target=_windows, args=(worker,), daemon=True, name="windows").start()
    while True:
        try:
            frame = unpack(conn.recv_bytes())
        except (EOFError, OSError):
            log.info("supervisor went away; stopping")
            worker.shutdown(5.0)
            os._exit(0)
        _, request_id, command, args = frame
        if command == "shutdown":
            worker._answer(request_id, command, args)
            conn.close()
            os._exit(0)
        worker.dispatch(request_id, command, args)


def _beat(worker: Worker, parent_pid: int) -> None:
    while True:  # beats on during a shutdown, so a draining worker is not taken for hung
        if os.getppid() != parent_pid:
            os._exit(0)  # orphaned: the supervisor is gone
        try:
            worker.heartbeat()
        except (OSError, ValueError):
            os._exit(0)
        time.sleep(HEARTBEAT_INTERVAL)


def _windows(worker: Worker) -> None:
    while not worker.stopping.wait(WINDOW_CHECK_INTERVAL):
        worker.check_windows()
