"""dagserver's command line and supervisor process.

    dagserver check FILE...                      validate DAG files (exit 0 / 2)
    dagserver replay DAG.json EVENTS.jsonl       run recorded input, print publications
    dagserver serve [-c supervisor.toml]         run the server

``python supervisor.py ...`` is the same command line. The supervisor places DAGs on
worker processes, restarts workers that exit or stop heartbeating, and serves the JSON
API and ``/metrics`` (SPEC §4, §5, §7, §8).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import itertools
import logging
import signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("dagserver.supervisor")
STATES = ("running", "suspended", "stopped", "failed", "restarting")
REQUEST_TIMEOUT = 30.0
try:
    VERSION = importlib.metadata.version("dagserver")
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "unknown"


@dataclass
class DagEntry:
    name: str
    path: str
    raw: dict[str, Any]
    worker: int
    desired: str = "running"  # what the operator asked for: running, suspended or stopped
    carry: dict[str, Any] = field(default_factory=dict)  # counters of dead incarnations


@dataclass
class WorkerHandle:
    id: int
    process: Any = None
    conn: Any = None
    restarts: int = 0
    last_beat: float = 0.0
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[int, Future] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # per DAG: seq of the snapshot in ``details``
    restart_at: float | None = None
    gave_up: str = ""
    policy: Any = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive() and self.restart_at is None


class Supervisor:
    """Worker processes, DAG placement and the service behind the web API."""

    def __init__(self, config: Any, log_level: str = "INFO") -> None:
        from actors.restart import RestartPolicy

        self.config = config
        self.log_level = log_level
        self.dags: dict[str, DagEntry] = {}
        self.problems: list[str] = []
        self.workers = [WorkerHandle(i, policy=RestartPolicy(config.max_restarts, config.within_seconds,
                                                             base_delay=0.2))
                        for i in range(config.workers)]
        self._ids = itertools.count()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._workers_gone = threading.Event()
        import multiprocess

        self._mp = multiprocess.get_context("spawn")

    # -- startup ------------------------------------------------------------------------------------
    def load(self) -> None:
        """Validate every DAG file and place the valid ones; problems are logged and skipped."""
        from graphs.loader import check_dag_file
        from graphs.placement import place_dags

        models = []
        for path in self.config.dag_files():
            model, problems = check_dag_file(str(path))
            if problems or model is None:
                self.problems += [str(p) for p in problems] or [f"{path}: not a DAG file"]
                continue
            if any(m.name == model.name for m in models):
                self.problems.append(f"{path}: dag name {model.name!r} is used by another file; skipped")
                continue
            models.append(model)
        plan = place_dags(models, len(self.workers))
        self.problems += plan.problems
        for model in models:
            if model.name in plan.assignment:
                self.dags[model.name] = DagEntry(model.name, model.source_path, dict(model.raw),
                                                 plan.assignment[model.name])
        for problem in self.problems:
            log.error("skipped: %s", problem)

    def start(self) -> None:
        for handle in self.workers:
            self._spawn(handle)
        threading.Thread(target=self._monitor, name="worker-monitor", daemon=True).start()

    def _spawn(self, handle: WorkerHandle) -> None:
        import os

        from actors.worker import worker_main

        parent, child = self._mp.Pipe(duplex=True)
        process = self._mp.Process(
            target=worker_main, name=f"dagserver-worker-{handle.id}", daemon=True,
            args=(child, handle.id, self.config.state_dir, self.config.max_restarts,
                  self.config.within_seconds, os.getpid(), self.log_level))
        process.start()
        child.close()
        handle.process, handle.conn, handle.pending = process, parent, {}
        handle.last_beat, handle.restart_at, handle.details, handle.seen = time.monotonic(), None, {}, {}
        threading.Thread(target=self._read, args=(handle, parent, handle.pending), daemon=True,
                         name=f"worker-{handle.id}-reader").start()
        for entry in self.dags.values():
            if entry.worker == handle.id:
                self._request_async(handle, "deploy", {"raw": entry.raw, "path": entry.path})
                if entry.desired != "stopped":
                    self._request_async(handle, "start", {"name": entry.name})
                if entry.desired == "suspended":
                    self._request_async(handle, "suspend", {"name": entry.name})

    # -- the control channel ------------------------------------------------------------------------
    def _read(self, handle: WorkerHandle, conn: Any, pending: dict[int, Future]) -> None:
        """Heartbeats and replies from one worker connection (requests on it wait in ``pending``)."""
        from actors.worker import HEARTBEAT, REPLY, unpack

        while True:
            try:
                frame = unpack(conn.recv_bytes())
            except (EOFError, OSError):
                break
            if frame[0] == HEARTBEAT:
                _, seq, snapshots = frame
                with self._lock:
                    if handle.conn is conn:
                        handle.last_beat = time.monotonic()
                        for name, details in snapshots.items():
                            self._store(handle, conn, name, details, seq)
            elif frame[0] == REPLY:
                future = pending.pop(frame[1], None)
                if future is not None:
                    future.set_result((frame[2], frame[3], frame[4], conn))
        for request_id in list(pending):
            future = pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result((False, f"worker {handle.id} went away", -1, conn))

    @staticmethod
    def _store(handle: WorkerHandle, conn: Any, name: str, details: Any, seq: int) -> bool:
        """Keep ``details`` as DAG ``name``'s view if it is from this worker's current connection and
        newer than what is kept (call with the lock held). Heartbeats and replies race on the pipe: an
        older snapshot arriving later must not undo a newer one (SPEC §8: counters never go back)."""
        if handle.conn is not conn or not isinstance(details, dict) or seq <= handle.seen.get(name, -1):
            return False
        handle.details[name], handle.seen[name] = details, seq
        return True

    def _request_async(self, handle: WorkerHandle, command: str, args: dict[str, Any]) -> Future:
        from actors.worker import REQUEST, pack

        future: Future = Future()
        request_id = next(self._ids)
        pending = handle.pending
        pending[request_id] = future
        try:
            handle.conn.send_bytes(pack([REQUEST, request_id, command, args]))
        except (OSError, ValueError, AttributeError) as exc:
            pending.pop(request_id, None)
            future.set_result((False, f"worker {handle.id} unreachable: {exc}", -1, None))
        return future

    def _request(self, handle: WorkerHandle, command: str, args: dict[str, Any],
                 timeout: float = REQUEST_TIMEOUT) -> tuple[Any, int, Any]:
        """Ask and wait: ``(payload, seq, conn)``; ServiceError when the worker fails or does not answer."""
        from web.service import ServiceError

        try:
            ok, payload, seq, conn = self._request_async(handle, command, args).result(timeout)
        except TimeoutError as exc:
            raise ServiceError(f"worker {handle.id} did not answer {command!r} within {timeout:g}s") from exc
        if not ok:
            raise ServiceError(str(payload))
        return payload, seq, conn

    # -- worker supervision -------------------------------------------------------------------------
    def _monitor(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for handle in self.workers:
                with self._lock:
                    if self._stop.is_set() or handle.gave_up:
                        continue
                    if handle.restart_at is not None:
                        if now >= handle.restart_at:
                            handle.restarts += 1
                            log.warning("restarting worker %d (restart %d)", handle.id, handle.restarts)
                            self._spawn(handle)
                        continue
                    if not handle.process.is_alive():
                        self._worker_lost(handle, f"worker {handle.id} exited with code {handle.process.exitcode}")
                    elif now - handle.last_beat > self.config.heartbeat_timeout:
                        self._worker_lost(handle, f"worker {handle.id} sent no heartbeat for "
                                                  f"{now - handle.last_beat:.1f}s (hung)")
        # A worker gets its parent-death signal (PR_SET_PDEATHSIG) when the *thread* that started
        # it ends, so this thread, which restarts workers, waits for them to be gone before ending.
        self._workers_gone.wait()

    def _worker_lost(self, handle: WorkerHandle, reason: str) -> None:
        from actors.counters import carry_forward

        log.error("%s; killing it", reason)
        if handle.process.is_alive():
            handle.process.kill()
        handle.process.join(5)
        with contextlib.suppress(OSError):
            handle.conn.close()
        handle.conn = None  # a heartbeat still in flight from the dead worker must not land after the carry
        for name, details in handle.details.items():
            if name in self.dags:
                carry_forward(self.dags[name].carry, details)
        handle.details = {}
        delay = handle.policy.next_delay(time.monotonic())
        if delay is None:
            handle.gave_up = (f"{reason}; over the restart budget ({self.config.max_restarts} "
                              f"within {self.config.within_seconds:g}s)")
            log.error("worker %d: %s; its DAGs are failed", handle.id, handle.gave_up)
            return
        handle.restart_at = time.monotonic() + delay

    # -- the service the web layer calls --------------------------------------------------------------
    def _entry(self, name: str) -> DagEntry:
        from web.service import UnknownDag

        entry = self.dags.get(name)
        if entry is None:
            raise UnknownDag(f"no dag named {name!r}")
        return entry

    def _current(self, entry: DagEntry) -> dict[str, Any]:
        from actors.counters import with_carry

        handle = self.workers[entry.worker]
        details = handle.details.get(entry.name)
        if handle.gave_up:
            state, reason = "failed", handle.gave_up
        elif details is None or not handle.alive:
            starting = handle.restart_at is not None or entry.desired != "stopped"
            state, reason = ("restarting", "its worker is (re)starting") if starting else ("stopped", "")
        else:
            state, reason = details["state"], details.get("reason", "")
        shown = with_carry(details or {"nodes": {}, "subscribers": {}, "publishers": {}}, entry.carry)
        return {**shown, "name": entry.name, "state": state, "reason": reason, "worker": entry.worker,
                "file": entry.path, "description": entry.raw.get("description", "")}

    def list_dags(self) -> list[dict[str, Any]]:
        keys = ("name", "state", "reason", "worker", "file", "description")
        return [{k: current[k] for k in keys} for current in map(self._current, list(self.dags.values()))]

    def dag_details(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        return {**self._current(entry), "config": entry.raw}

    def control(self, name: str, action: str) -> dict[str, Any]:
        from web.service import ACTIONS, WrongState

        entry = self._entry(name)
        state = self._current(entry)["state"]
        allowed = {"start": ("stopped", "failed"), "stop": ("running", "suspended", "restarting", "failed"),
                   "suspend": ("running",), "resume": ("suspended",)}
        if action not in ACTIONS:
            raise WrongState(f"unknown action {action!r}")
        handle = self.workers[entry.worker]
        if action == "start" and handle.gave_up:
            entry.desired = "running"
            self._revive(handle)  # an operator's start gives the worker a fresh budget
            return {k: self._current(entry)[k] for k in ("name", "state", "reason", "worker")}
        if state not in allowed[action] or handle.gave_up or not handle.alive:
            raise WrongState(f"cannot {action} dag {name!r}: it is {state}")
        # What the operator asked for is recorded now: a worker restarted meanwhile obeys it too.
        entry.desired = {"start": "running", "resume": "running", "stop": "stopped", "suspend": "suspended"}[action]
        args: dict[str, Any] = {"name": name}
        timeout = REQUEST_TIMEOUT
        if action == "stop":
            args["timeout"] = self.config.shutdown_timeout
            timeout = self.config.shutdown_timeout + REQUEST_TIMEOUT
        details, seq, conn = self._request(handle, action, args, timeout)
        with self._lock:
            self._store(handle, conn, name, details, seq)
        return {k: self._current(entry)[k] for k in ("name", "state", "reason", "worker")}

    def node_details(self, name: str, node: str) -> dict[str, Any]:
        """One node's whole input and output, asked of its worker (the API shows previews elsewhere)."""
        from web.service import UnknownDag, WrongState

        entry = self._entry(name)
        if node not in ((entry.raw.get("nodes") and {n.get("name") for n in entry.raw["nodes"]}) or ()):
            raise UnknownDag(f"dag {name!r} has no node {node!r}")
        handle = self.workers[entry.worker]
        if not handle.alive:
            raise WrongState(f"dag {name!r} is not running: its worker is down")
        payload, _, _ = self._request(handle, "node", {"name": name, "node": node})
        return payload

    def _revive(self, handle: WorkerHandle) -> None:
        with self._lock:
            log.warning("worker %d: restarted by request after giving up (%s)", handle.id, handle.gave_up)
            handle.gave_up = ""
            handle.policy.history.clear()
            handle.restarts += 1
            self._spawn(handle)

    def workers_info(self) -> list[dict[str, Any]]:
        return [{"id": h.id, "pid": h.pid, "alive": h.alive, "restarts": h.restarts,
                 "dags": [e.name for e in self.dags.values() if e.worker == h.id],
                 **({"failed": h.gave_up} if h.gave_up else {})} for h in self.workers]

    def health(self) -> dict[str, Any]:
        down = [h.id for h in self.workers if not h.alive]
        return {"status": "degraded" if down else "ok", "workers": len(self.workers), "workers_down": down,
                "dags": len(self.dags), "skipped": self.problems}

    def metrics_text(self) -> bytes:
        from web.metrics import render_metrics

        return render_metrics([self._current(e) for e in list(self.dags.values())], self.workers_info(),
                              version=VERSION)

    # -- shutdown -------------------------------------------------------------------------------------
    def shutdown(self) -> bool:
        """Stop every worker gracefully within ``shutdown_timeout``; True if all went cleanly."""
        self._stop.set()
        with self._lock:  # a worker restart in progress completes first, so that worker is stopped too
            pass
        timeout = self.config.shutdown_timeout
        deadline = time.monotonic() + timeout
        futures = [self._request_async(h, "shutdown", {"timeout": max(1.0, timeout - 1.0)})
                   for h in self.workers if h.process is not None and h.process.is_alive()]
        clean = True
        for future in futures:
            try:
                ok, *_ = future.result(max(0.1, deadline - time.monotonic()))
                clean = clean and ok
            except TimeoutError:
                clean = False
        for handle in self.workers:
            if handle.process is not None:
                handle.process.join(max(0.1, deadline - time.monotonic()))
                if handle.process.is_alive():
                    log.error("worker %d did not stop in time; killing it", handle.id)
                    handle.process.kill()
                    handle.process.join(2)
                    clean = False
        self._workers_gone.set()
        return clean


class _Service:
    """Adapts :class:`Supervisor` to the web layer's SupervisorService protocol."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.s = supervisor
        self.list_dags, self.dag_details = supervisor.list_dags, supervisor.dag_details
        self.control, self.workers = supervisor.control, supervisor.workers_info
        self.node_details = supervisor.node_details
        self.health, self.metrics_text = supervisor.health, supervisor.metrics_text


def serve(config_path: str | None, log_level: str = "INFO") -> int:
    from werkzeug.serving import make_server

    from graphs.server_config import ServerConfigError, load_server_config
    from web.app import create_app

    logging.basicConfig(level=log_level, format="%(asctime)s supervisor %(levelname)s %(name)s: %(message)s")
    if config_path is None and Path("examples/supervisor.toml").exists():
        config_path = "examples/supervisor.toml"
    try:
        config = load_server_config(config_path)
    except ServerConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    supervisor = Supervisor(config, log_level)
    supervisor.load()
    try:
        server = make_server(config.bind_host, config.bind_port, create_app(_Service(supervisor)), threaded=True)
    except OSError as exc:
        print(f"dagserver: cannot listen on {config.bind}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    supervisor.start()
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    log.info("serving %d dags on %d workers; API http://%s/api/dags, metrics http://%s/metrics",
             len(supervisor.dags), len(supervisor.workers), config.bind, config.bind)
    stop.wait()
    log.info("shutting down (up to %gs)", config.shutdown_timeout)
    clean = supervisor.shutdown()
    server.shutdown()
    log.info("stopped%s", "" if clean else " (some work did not finish in time)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagserver", description="A DAG compute server.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate DAG files; exit 0 if all are valid, 2 otherwise")
    check.add_argument("files", nargs="+", metavar="FILE", help="DAG files or folders of *.json")
    replay = sub.add_parser("replay", help="run recorded input through a DAG and print its publications")
    replay.add_argument("dag", metavar="DAG.json")
    replay.add_argument("events", metavar="EVENTS.jsonl")
    replay.add_argument("--engine", choices=("actors", "reference"), default="actors",
                        help="actors (default): the server's runtime; reference: the sequential oracle")
    replay.add_argument("--epoch-records", type=int, default=None, metavar="N",
                        help="at most N records per epoch (actors engine)")
    serve_cmd = sub.add_parser("serve", help="run the server")
    serve_cmd.add_argument("-c", "--config", default=None, help="supervisor TOML (default: the bundled example)")
    serve_cmd.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from graphs.check import run_check

        return run_check(args.files)
    if args.command == "replay":
        from actors.replay import run_replay

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return run_replay(args.dag, args.events, engine=args.engine, epoch_records=args.epoch_records)
    return serve(args.config, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
