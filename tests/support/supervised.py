"""Run ``dagserver serve`` as a real subprocess for tests, and always clean it up.

A :class:`SupervisedServer` writes a supervisor config and the given DAG files into a
temporary folder, starts the server on a free port in its own process group, waits for
``/healthz`` to answer, and offers a small JSON client. :meth:`SupervisedServer.close`
sends SIGTERM to the group, then SIGKILL, so no worker process outlives a test::

    with SupervisedServer(tmp_path, {"clock": metronome_dag("clock", out)}) as server:
        server.wait_dags("running")
        status, body = server.get("/api/dags/clock")

Several servers may share one ``state_dir`` (``state_dir=``, high availability, SPEC §9);
``config_extra`` is TOML appended to the config (e.g. an ``[ha]`` section) and ``env`` adds
environment variables for the server and its workers. ``top_keys`` adds top-level config
keys (e.g. ``tls_cert``/``tls_key``); with ``cafile`` the server is spoken to over HTTPS,
its certificate verified against that CA file (``server.base_url`` is then ``https://...``).

Every server gets a users file with one account per role (``admin``, ``operator``,
``viewer``; password ``pw-ROLE``) and an API token each (``server.tokens[ROLE]``); requests
carry the admin's token unless ``auth=`` names another role, or None for no token (SPEC §7).

Helpers build small DAG documents (:func:`metronome_dag`) and read JSON-lines output
(:func:`read_jsonl`); :func:`process_gone` tells whether a pid is dead (zombies count).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.waiting import wait_until
from web.accounts import ROLES, hash_password, token_digest

ROOT = Path(__file__).resolve().parents[2]  # the project root
DAGSERVER = Path(sys.executable).with_name("dagserver")
STARTUP_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0
_PASSWORD_HASHES: dict[str, str] = {}  # hashing is slow on purpose: once per role per test process


def password_hash(password: str) -> str:
    if password not in _PASSWORD_HASHES:
        _PASSWORD_HASHES[password] = hash_password(password)
    return _PASSWORD_HASHES[password]


def free_port() -> int:
    """A TCP port nobody listens on right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metronome_dag(name: str, out: Path, *, interval: float = 0.05, worker: int | None = None,
                  calculator: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A DAG: a metronome subscriber -> SubscriptionNode ``tick`` -> PublicationNode ``out`` -> ``out`` file.

    ``calculator`` (a calculator entry, e.g. ``{"name": "c", "type": "..."}``) runs on ``tick``.
    """
    tick: dict[str, Any] = {"name": "tick", "type": "SubscriptionNode", "subscriber": "clock"}
    dag: dict[str, Any] = {
        "name": name,
        "subscribers": [{"name": "clock", "config": {"source": "metronome", "interval": interval,
                                                     "message": name}}],
        "publishers": [{"name": "sink", "config": {"destination": f"file://{out}"}}],
        "nodes": [tick, {"name": "out", "type": "PublicationNode", "publishers": ["sink"]}],
        "edges": [{"from_node": "tick", "to_node": "out"}],
        **extra,
    }
    if calculator is not None:
        dag["calculators"] = [calculator]
        tick["calculator"] = calculator["name"]
    if worker is not None:
        dag["worker"] = worker
    return dag


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a JSON-lines file, parsed (a missing file is empty).

    Only finished lines (ending in a newline) are read, so a file being written is fine.
    """
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def line_count(path: Path) -> int:
    """How many complete lines ``path`` holds now (0 when it does not exist)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def process_gone(pid: int) -> bool:
    """True when ``pid`` is no longer a running process (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].startswith(("Z", "X"))


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``, from ``/proc``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


class SupervisedServer:
    """One ``dagserver serve`` process with its own config, DAG files and state directory."""

    def __init__(self, tmp: Path, dags: dict[str, Any], *, workers: int = 2,
                 heartbeat_timeout: float = 3.0, shutdown_timeout: float = 10.0,
                 max_restarts: int = 5, within_seconds: float = 60.0,
                 raw_dag_files: dict[str, str] | None = None, state_dir: Path | None = None,
                 config_extra: str = "", env: dict[str, str] | None = None,
                 top_keys: dict[str, Any] | None = None, cafile: Path | None = None) -> None:
        """``dags``: file stem -> DAG document; ``raw_dag_files``: file name -> text, written as is;
        ``state_dir``: checkpoints (default ``tmp/state``), may be shared with other servers."""
        self.tmp = tmp
        self.dag_dir = tmp / "dags"
        self.state_dir = state_dir or tmp / "state"
        self.config_extra = config_extra
        self.top_keys = dict(top_keys or {})
        self.tls_context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        self.env = dict(env or {})
        self.config_path = tmp / "supervisor.toml"
        self.log_path = tmp / "server.log"
        self.dag_dir.mkdir(parents=True, exist_ok=True)
        for stem, dag in dags.items():
            (self.dag_dir / f"{stem}.json").write_text(json.dumps(dag, indent=2))
        for file_name, text in (raw_dag_files or {}).items():
            (self.dag_dir / file_name).write_text(text)
        self.settings = {"workers": workers, "heartbeat_timeout": heartbeat_timeout,
                         "shutdown_timeout": shutdown_timeout, "max_restarts": max_restarts,
                         "within_seconds": within_seconds}
        self.users_path = tmp / f"users-{secrets.token_hex(4)}.json"  # servers sharing ``tmp`` keep their own
        self.tokens = {role: secrets.token_urlsafe(24) for role in ROLES}
        self.users_path.write_text(json.dumps({role: {"password_hash": password_hash(f"pw-{role}"), "role": role,
                                                      "tokens": [token_digest(self.tokens[role])]}
                                               for role in ROLES}))
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.worker_pids: set[int] = set()  # every worker pid seen, for the leftover check

    # -- starting and stopping ----------------------------------------------------------------------
    def _write_config(self) -> None:
        s = self.settings
        self.config_path.write_text(
            f'workers = {s["workers"]}\n'
            f'dags = ["{self.dag_dir}"]\n'
            f'state_dir = "{self.state_dir}"\n'
            f'users = "{self.users_path}"\n'
            f'bind = "127.0.0.1:{self.port}"\n'
            f'shutdown_timeout = {s["shutdown_timeout"]}\n'
            f'heartbeat_timeout = {s["heartbeat_timeout"]}\n'
            + "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.top_keys.items())
            + f'[restart]\nmax_restarts = {s["max_restarts"]}\nwithin_seconds = {s["within_seconds"]}\n'
            + self.config_extra)

    def start(self) -> SupervisedServer:
        """Start the server and wait until ``/healthz`` answers; retries when the port was taken."""
        for _attempt in range(3):
            self.port = free_port()
            self._write_config()
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   "PYTHONUNBUFFERED": "1", **self.env}
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [str(DAGSERVER), "serve", "-c", str(self.config_path)], cwd=self.tmp, env=env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if wait_until(self._answers_or_exited, timeout=STARTUP_TIMEOUT, interval=0.05):
                if self.process.poll() is None:
                    self.record_workers()
                    return self
                if "cannot listen" in self.log():
                    continue  # lost the port to someone else: try another one
            break
        log = self.log()
        self.close()
        raise RuntimeError(f"dagserver serve did not come up; its log:\n{log}")

    def _answers_or_exited(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            return True
        try:
            self.request("GET", "/healthz", timeout=1.0)
        except OSError:
            return False
        return True

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM the serve process; its exit code, or None if it did not exit within ``timeout``."""
        assert self.process is not None
        self.record_workers()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop everything this server started: SIGTERM to its group, then SIGKILL; reap it."""
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        if self.process.poll() is None:
            self._signal_group(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(float(self.settings["shutdown_timeout"]) + 5.0)
        self._signal_group(pgid, signal.SIGCONT)  # a stopped worker must be able to die
        self._signal_group(pgid, signal.SIGKILL)
        self.process.wait(10)
        for pid in self.worker_pids:  # a worker that left the group still must not outlive us
            if not process_gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def __enter__(self) -> SupervisedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def log(self) -> str:
        """Everything the server (and its workers) wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- HTTP ---------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, or ``https://...`` when the server was given a ``cafile``."""
        return f"{'https' if self.tls_context else 'http'}://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, timeout: float = HTTP_TIMEOUT, *, auth: str | None = "admin",
                body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """``(status, body)``: JSON bodies parsed, others as text. Error statuses are returned, not raised.
        Sent with the API token of role ``auth`` (None: no token), or ``token`` as given; ``body`` as JSON."""
        data = json.dumps(body).encode() if body is not None else b"" if method == "POST" else None
        req = urllib.request.Request(f"{self.base_url}{path}", method=method, data=data)
        bearer = token if token is not None else self.tokens[auth] if auth else None
        if bearer is not None:
            req.add_header("Authorization", f"Bearer {bearer}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.tls_context) as response:
                status, body, kind = response.status, response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as error:
            status, body, kind = error.code, error.read(), error.headers.get_content_type()
        text = body.decode("utf-8")
        return status, json.loads(text) if kind == "application/json" else text

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str) -> tuple[int, Any]:
        return self.request("POST", path)

    def get_ok(self, path: str) -> Any:
        """The body of a GET that must answer 200."""
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return body

    # -- conveniences -------------------------------------------------------------------------------
    def workers(self) -> list[dict[str, Any]]:
        workers = self.get_ok("/api/workers")
        self.worker_pids.update(w["pid"] for w in workers if w.get("pid"))
        return workers

    def record_workers(self) -> None:
        with contextlib.suppress(OSError, AssertionError, ValueError):
            self.workers()

    def worker(self, worker_id: int) -> dict[str, Any]:
        return next(w for w in self.workers() if w["id"] == worker_id)

    def dag(self, name: str) -> dict[str, Any]:
        return self.get_ok(f"/api/dags/{name}")

    def states(self) -> dict[str, str]:
        return {d["name"]: d["state"] for d in self.get_ok("/api/dags")}

    def wait_dags(self, state: str, names: list[str] | None = None, timeout: float = 15.0) -> None:
        """Wait until every DAG (or those in ``names``) is in ``state``; fail with the states otherwise."""
        def reached() -> bool:
            states = self.states()
            return all(states[n] == state for n in (names or states))

        assert wait_until(reached, timeout=timeout, interval=0.05), (state, self.states(), self.log()[-3000:])

    def wait_lines(self, path: Path, more_than: int, timeout: float = 10.0) -> int:
        """Wait until ``path`` holds more than ``more_than`` complete lines; the count then."""
        assert wait_until(lambda: line_count(path) > more_than, timeout=timeout, interval=0.02), \
            (path, line_count(path), more_than, self.log()[-3000:])
        return line_count(path)

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, (status, body)
        return str(body)
