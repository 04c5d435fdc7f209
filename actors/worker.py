"""The worker process: hosts DAG runtimes and obeys the supervisor over a pipe (SPEC §4-§5).

Frames are msgpack arrays sent with ``send_bytes``::

    supervisor -> worker   [REQUEST, id, command, args]   deploy/start/stop/suspend/resume/details/shutdown
    worker -> supervisor   [REPLY, id, ok, payload]
                           [HEARTBEAT, {dag: details, ...}]   every HEARTBEAT_INTERVAL seconds

The worker exits when the supervisor goes away (pipe closed or parent changed), so no
worker outlives its supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack

REQUEST, REPLY, HEARTBEAT = 0, 1, 2
HEARTBEAT_INTERVAL = 0.5
WINDOW_CHECK_INTERVAL = 1.0

log = logging.getLogger("dagserver.worker")


def pack(frame: list[Any]) -> bytes:
    return msgpack.packb(frame, use_bin_type=True, default=repr)


def unpack(data: bytes) -> list[Any]:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Worker:
    """The DAG runtimes of one worker process and the commands that drive them."""

    def __init__(self, worker_id: int, state_dir: str, max_restarts: int, within_seconds: float,
                 send: Callable[[list[Any]], None]) -> None:
        self.worker_id = worker_id
        self.state_dir = state_dir
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self.send = send
        self.runtimes: dict[str, Any] = {}
        self.stopping = threading.Event()

    def handle(self, command: str, args: dict[str, Any]) -> Any:
        if command == "deploy":
            return self.deploy(args["raw"], args["path"])
        if command == "shutdown":
            return self.shutdown(float(args.get("timeout", 15)))
        runtime = self.runtimes.get(args.get("name", ""))
        if runtime is None:
            raise KeyError(f"dag {args.get('name')!r} is not deployed on worker {self.worker_id}")
        if command == "start":
            runtime.start()
        elif command == "stop":
            runtime.stop(timeout=float(args.get("timeout", 15)))
        elif command == "suspend":
            runtime.suspend()
        elif command == "resume":
            runtime.resume()
        elif command != "details":
            raise ValueError(f"unknown command {command!r}")
        return runtime.details()

    def deploy(self, raw: dict[str, Any], path: str) -> dict[str, Any]:
        from actors.restart import RestartPolicy
        from actors.runtime import DagRuntime
        from graphs.loader import load_dag_dict

        dag = load_dag_dict(raw, source_path=path)
        if dag.name in self.runtimes:
            return self.runtimes[dag.name].details()
        policy = RestartPolicy(max_restarts=self.max_restarts, within_seconds=self.within_seconds)
        runtime = DagRuntime(dag, state_dir=self.state_dir, restart=policy)
        self.runtimes[dag.name] = runtime
        return runtime.details()

    def shutdown(self, timeout: float) -> dict[str, bool]:
        """Stop every DAG at once (each drains, flushes, commits, checkpoints)."""
        self.stopping.set()
        if not self.runtimes:
            return {}
        with ThreadPoolExecutor(max_workers=len(self.runtimes)) as pool:
            futures = {name: pool.submit(rt.stop, timeout) for name, rt in self.runtimes.items()}
            return {name: bool(f.result()) for name, f in futures.items()}

    def heartbeat(self) -> None:
        details = {}
        for name, runtime in list(self.runtimes.items()):
            try:
                details[name] = runtime.details()
            except Exception as exc:  # a snapshot must never stop the heartbeat
                log.warning("details of %s failed: %s", name, exc)
        self.send([HEARTBEAT, details])

    def check_windows(self) -> None:
        for runtime in list(self.runtimes.values()):
            runtime.check_window()


def worker_main(conn: Any, worker_id: int, state_dir: str, max_restarts: int, within_seconds: float,
                parent_pid: int, log_level: str = "INFO") -> None:
    """Entry point of a worker process (started with the spawn context)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when workers stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{worker_id} %(levelname)s %(name)s: %(message)s")
    send_lock = threading.Lock()

    def send(frame: list[Any]) -> None:
        data = pack(frame)
        with send_lock:
            conn.send_bytes(data)

    worker = Worker(worker_id, state_dir, max_restarts, within_seconds, send)
    threading.Thread(target=_beat, args=(worker, parent_pid), daemon=True, name="heartbeat").start()
    lanes: dict[str, ThreadPoolExecutor] = {}
    while True:
        try:
            frame = unpack(conn.recv_bytes())
        except (EOFError, OSError):
            log.info("supervisor went away; stopping")
            worker.shutdown(5.0)
            os._exit(0)
        _, request_id, command, args = frame
        if command == "shutdown":
            _answer(worker, send, request_id, command, args)
            conn.close()
            os._exit(0)
        # One queue per DAG: its commands run in order, other DAGs' commands do not wait.
        lane = str(args.get("name") or (args.get("raw") or {}).get("name") or "")
        if lane not in lanes:
            lanes[lane] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dag-{lane}")
        lanes[lane].submit(_answer, worker, send, request_id, command, args)


def _answer(worker: Worker, send: Callable[[list[Any]], None], request_id: int, command: str,
            args: dict[str, Any]) -> None:
    try:
        payload, ok = worker.handle(command, args), True
    except Exception as exc:
        log.exception("command %s failed", command)
        payload, ok = f"{type(exc).__name__}: {exc}", False
    try:
        send([REPLY, request_id, ok, payload])
    except (OSError, ValueError):
        os._exit(1)


def _beat(worker: Worker, parent_pid: int) -> None:
    last_window_check = 0.0
    while True:  # beats on during a shutdown, so a draining worker is not taken for hung
        if os.getppid() != parent_pid:
            os._exit(0)  # orphaned: the supervisor is gone
        try:
            worker.heartbeat()
        except (OSError, ValueError):
            os._exit(0)
        now = time.monotonic()
        if now - last_window_check >= WINDOW_CHECK_INTERVAL:
            last_window_check = now
            worker.check_windows()
        time.sleep(HEARTBEAT_INTERVAL)
