"""dagserver's command line and supervisor process.

    dagserver check FILE...                      validate DAG files (exit 0 / 2)
    dagserver replay DAG.json EVENTS.jsonl       run recorded input, print publications
    dagserver serve [-c supervisor.toml]         run the server
    dagserver user add|remove|token|hash|revoke  manage web and API accounts
    dagserver deadletters show|redrive DAG       list a running DAG's dead letters, inject them again

``python supervisor.py ...`` is the same command line. The supervisor validates and places
the DAGs, runs them on worker processes (:mod:`supervision.workers` restarts those that
exit or stop heartbeating), and serves the JSON API and ``/metrics`` through the
:class:`SupervisorService` it gives the web layer (SPEC §4, §5, §7, §8). With ``[ha]`` it
runs the DAGs only while it leads (:mod:`supervision.leadership`, SPEC §9). What only the
supervisor uses lives in :mod:`supervision`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from actors.states import DagState
from graphs.loader import check_dag_file
from graphs.masking import install_log_masking, mask_problem, mask_secrets
from supervision.catalog import CatalogError, DagCatalog
from supervision.check import run_check
from supervision.config import ServerConfig, ServerConfigError, load_server_config
from supervision.counters import carry_forward
from supervision.dags import DagEntry, config_view, dag_view, mask_endpoints, model_template, replica_view
from supervision.dagtest import add_test_parser, run_test_command
from supervision.deadletters import DeadLetterDesk, add_deadletters_parser, run_deadletters
from supervision.ha import HaNotAvailable
from supervision.leadership import Leadership
from supervision.observing import ObserveError, Observer
from supervision.placement import place_dags
from supervision.replay import run_replay
from supervision.series import SeriesRecorder, sample_every_second
from supervision.serving import MAX_BODY, WebServer
from supervision.workers import WorkerHandle, WorkerPool, WorkerUnavailable
from web.accounts import DEFAULT_USERS, AccountsError
from web.app import create_app
from web.audit import AuditLog
from web.metrics import render_metrics
from web.service import ACTIONS, ServiceError, UnknownDag, WrongState
from web.usercli import add_user_parser, open_accounts, run_user

log = logging.getLogger("dagserver.supervisor")
REQUEST_TIMEOUT = 30.0
try:
    VERSION = importlib.metadata.version("dagserver")
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "unknown"

ALLOWED = {"start": (DagState.STOPPED, DagState.FAILED),
           "stop": (DagState.STARTING, DagState.RUNNING, DagState.SUSPENDED, DagState.RESTARTING, DagState.FAILED),
           "suspend": (DagState.RUNNING,), "resume": (DagState.SUSPENDED,)}
DESIRED = {"start": DagState.RUNNING, "resume": DagState.RUNNING, "stop": DagState.STOPPED,
           "suspend": DagState.SUSPENDED}


class Supervisor:
    """DAG placement, the workers that run them, and the service behind the web API."""

    def __init__(self, config: ServerConfig, log_level: str = "INFO") -> None:
        self.config = config
        self.dags: dict[str, DagEntry] = {}
        self.problems: list[str] = []
        self.pool = WorkerPool(config, log_level, on_started=self._deploy, on_lost=self._carry)
        self.workers = self.pool.handles
        self.ha = Leadership(config, self.pool, self.dags, deploy=self._deploy)  # HaNotAvailable without kazoo
        self.catalog = DagCatalog(config, self.pool, self.dags, self.ha)  # admin: add, reload, clone, delete
        self.observer = Observer(self)  # tap, inject, capture (SPEC §13)
        self.desk = DeadLetterDesk(self.pool, self.dags, ServiceError)  # dead letters: list, redrive (SPEC §13)
        self.series = SeriesRecorder()  # the charts' last 15 minutes, sampled every second
        self._sampling = threading.Event()

    # -- startup ------------------------------------------------------------------------------------
    def load(self) -> None:
        """Validate every DAG file and place the valid ones; problems are logged and skipped."""
        models = []
        for path in self.config.dag_files():
            model, problems = check_dag_file(str(path), uris=self.catalog.rules)
            if problems or model is None:
                self.problems += [str(mask_problem(p)) for p in problems] or [f"{path}: not a DAG file"]
                continue
            if any(m.name == model.name for m in models):
                self.problems.append(f"{path}: dag name {model.name!r} is used by another file; skipped")
                continue
            models.append(model)
        plan = place_dags(models, len(self.workers))
        self.problems += plan.problems
        for model in models:
            if model.name in plan.replicas:
                self.dags[model.name] = DagEntry(model.name, model.source_path, dict(model.raw),
                                                 plan.replicas[model.name], template=model_template(model))
        for problem in self.problems:
            log.error("skipped: %s", problem)

    def start(self) -> None:
        self.pool.start()
        self.ha.start()
        views = lambda: {e.name: self._current(e) for e in list(self.dags.values())}  # noqa: E731
        threading.Thread(target=sample_every_second, args=(self.series, views, self._sampling), daemon=True,
                         name="series").start()

    def series_of(self, name: str | None) -> dict[str, Any]:
        if name is not None:
            self._entry(name)
        return self.series.points(name)

    def _deploy(self, handle: WorkerHandle) -> None:
        """A worker (re)started: hand it its DAGs' replicas, validated already, in the state the operator wants
        (on an HA standby: deployed, not started)."""
        run = self.ha.prepare(handle)
        for entry in list(self.dags.values()):
            for index, worker in enumerate(entry.workers):
                if worker != handle.id:
                    continue
                replica = entry.replica(index)
                self.pool.request_async(handle, "deploy", {"raw": entry.raw, "path": entry.path, "replica": replica})
                if run and entry.desired != DagState.STOPPED:
                    self.pool.request_async(handle, "start", {"name": entry.name, "replica": replica,
                                                              "suspended": entry.desired == DagState.SUSPENDED,
                                                              **self.ha.start_args()})

    def _carry(self, handle: WorkerHandle) -> None:
        """A worker died: keep what its DAGs had counted (SPEC §8: counters never go down)."""
        for entry in list(self.dags.values()):
            for index, worker in enumerate(entry.workers):
                details = handle.details.get(entry.key(index))
                if worker == handle.id and details is not None:
                    carry_forward(entry.carries[index], details)

    # -- the service the web layer calls --------------------------------------------------------------
    def _entry(self, name: str) -> DagEntry:
        entry = self.dags.get(name)
        if entry is None:
            raise UnknownDag(f"no dag named {name!r}")
        return entry

    def _current(self, entry: DagEntry) -> dict[str, Any]:
        return self.ha.shown(dag_view(entry, self.workers))

    def list_dags(self) -> list[dict[str, Any]]:
        keys = ("name", "state", "reason", "worker", "replicas", "file", "description")
        return [{**{k: current[k] for k in keys}, "next_start": current.get("next_start"),
                 "next_stop": current.get("next_stop")} for current in map(self._current, list(self.dags.values()))]

    def dag_details(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        return {**mask_endpoints(self._current(entry), entry), "config": config_view(entry)}

    def _summary(self, entry: DagEntry) -> dict[str, Any]:
        current = self._current(entry)
        return {k: current[k] for k in ("name", "state", "reason", "worker")}

    def control(self, name: str, action: str) -> dict[str, Any]:
        entry = self._entry(name)
        if action not in ACTIONS:
            raise WrongState(f"unknown action {action!r}")
        refused = self.ha.refuse(action, name)
        if refused:
            raise WrongState(refused)
        state = self._current(entry)["state"]
        handles = [self.workers[w] for w in entry.workers]
        if action == "start" and any(h.gave_up for h in handles):
            entry.desired = DagState.RUNNING
            for handle in {h.id: h for h in handles if h.gave_up}.values():
                self.pool.revive(handle)  # an operator's start gives the worker a fresh budget
            return self._summary(entry)
        if state not in ALLOWED[action] or any(h.gave_up or not h.alive for h in handles):
            raise WrongState(f"cannot {action} dag {name!r}: it is {state}")
        # What the operator asked for is recorded now: a worker restarted meanwhile obeys it too.
        entry.desired = DESIRED[action]
        timeout = REQUEST_TIMEOUT
        extra: dict[str, Any] = {}
        if action == "stop":
            extra["timeout"] = self.config.shutdown_timeout
            timeout = self.config.shutdown_timeout + REQUEST_TIMEOUT
        asked = [(handle, entry.key(i), self.pool.request_async(handle, action, {"name": name,
                                                                                "replica": entry.replica(i), **extra}))
                 for i, handle in enumerate(handles)]  # every replica at once: a stop takes one deadline, not k
        if problems := self.pool.gather(asked, timeout, action):
            raise ServiceError("; ".join(problems))
        return self._summary(entry)

    def node_details(self, name: str, node: str) -> dict[str, Any]:
        """One node's whole input and output, asked of its (first) replica's worker."""
        entry = self._entry(name)
        if node not in {n.get("name") for n in entry.raw.get("nodes") or () if isinstance(n, dict)}:
            raise UnknownDag(f"dag {name!r} has no node {node!r}")
        handle = self.workers[entry.worker]
        if not handle.alive:
            raise WrongState(f"dag {name!r} is not running: its worker is down")
        payload, _, _ = self._ask(handle, "node", {"name": name, "node": node, "replica": entry.replica(0)},
                                  REQUEST_TIMEOUT)
        return dict(payload)

    def _ask(self, handle: WorkerHandle, command: str, args: dict[str, Any], timeout: float) -> tuple[Any, int, Any]:
        try:
            return self.pool.request(handle, command, args, timeout)
        except WorkerUnavailable as exc:
            raise ServiceError(str(exc)) from exc

    def workers_info(self) -> list[dict[str, Any]]:
        return [{"id": h.id, "pid": h.pid, "alive": h.alive, "restarts": h.restarts,
                 "dags": [e.key(i) for e in self.dags.values() for i, w in enumerate(e.workers) if w == h.id],
                 **({"failed": h.gave_up} if h.gave_up else {})} for h in self.workers]

    def health(self) -> dict[str, Any]:
        down = [h.id for h in self.workers if not h.alive]
        return {"status": "degraded" if down else "ok", "workers": len(self.workers), "workers_down": down,
                "dags": len(self.dags), "skipped": len(self.problems), **self.ha.health()}

    def skipped(self) -> dict[str, Any]:
        """The start-up problems of the DAG files that were skipped (``/api/skipped``, for logged-in users:
        they name files and values, which ``/healthz`` must not)."""
        return {"skipped": list(self.problems)}

    def metrics_text(self) -> bytes:
        """Every DAG's figures; a DAG run as replicas, per replica (labelled ``replica``)."""
        views = []
        for entry in list(self.dags.values()):
            if entry.replicated:
                views += [self.ha.shown(replica_view(entry, i, self.workers)) for i in range(len(entry.workers))]
            else:
                views.append(self._current(entry))
        return render_metrics(views, self.workers_info(), leader=self.ha.leader, version=VERSION)

    def shutdown(self) -> bool:
        """Stop every worker gracefully within ``shutdown_timeout``, then leave the HA election (a
        standby takes over once the DAGs are checkpointed); True if all went cleanly."""
        self.ha.closing = True
        self._sampling.set()
        clean = self.pool.shutdown(self.config.shutdown_timeout)
        self.ha.stop()
        return clean


    # -- admin (the work is in supervision.catalog) ----------------------------------------------------------
    def admin(self, action: str, *args: Any) -> dict[str, Any]:
        """Run a :class:`DagCatalog` operation; its refusal as a ServiceError with the check's lines."""
        if not self.ha.leader:
            raise WrongState(f"cannot {action}: this server is a standby")
        try:
            entry = getattr(self.catalog, action)(*args)
        except CatalogError as exc:
            raise ServiceError(exc.message, exc.status, exc.problems) from exc
        return {"name": args[0], "deleted": True} if entry is None else self._summary(entry)

    def observe(self, action: str, *args: Any) -> dict[str, Any]:
        """Run an :class:`Observer` operation (tap, inject, start_capture, capture); its refusal as a ServiceError."""
        try:
            return dict(getattr(self.observer, action)(*args))
        except ObserveError as exc:
            raise ServiceError(exc.message, exc.status) from exc


class SupervisorService:
    """The :class:`web.service.SupervisorService` the web layer is given: the supervisor's public face."""

    def __init__(self, supervisor: Supervisor) -> None:
        # what users see never holds a secret (SPEC §7): every read is masked on its way out
        self.list_dags = lambda: mask_secrets(supervisor.list_dags())
        self.dag_details = lambda name: mask_secrets(supervisor.dag_details(name))
        self.node_details = lambda name, node: mask_secrets(supervisor.node_details(name, node))
        self.control = lambda name, action: mask_secrets(supervisor.control(name, action))
        self.workers = lambda: mask_secrets(supervisor.workers_info())
        self.add_dag = lambda text, source="request body": supervisor.admin("add", text, source)
        self.reload_dag = lambda name: supervisor.admin("reload", name)
        self.clone_dag = lambda name, new, start, end: supervisor.admin("clone", name, new, start, end)
        self.delete_dag = lambda name: supervisor.admin("delete", name)
        self.health, self.metrics_text = supervisor.health, supervisor.metrics_text
        self.skipped = lambda: mask_secrets(supervisor.skipped())
        self.tap = lambda name, node, after=0: supervisor.observe("tap", name, node, after)
        self.inject = lambda name, subscriber, records: supervisor.observe("inject", name, subscriber, records)
        self.start_capture = lambda name, records, seconds: supervisor.observe("start_capture", name, records,
                                                                               seconds)
        self.capture = lambda name, capture_id: supervisor.observe("capture", name, capture_id)  # records as they are
        self.dead_letters = lambda name, limit: mask_secrets(supervisor.desk.letters(name, limit))
        self.redrive = lambda name, ids: supervisor.desk.redrive(name, ids)
        self.series = supervisor.series_of


def serve(config_path: str | None, log_level: str = "INFO") -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s supervisor %(levelname)s %(name)s: %(message)s")
    install_log_masking()
    if config_path is None and Path("examples/supervisor.toml").exists():
        config_path = "examples/supervisor.toml"
    try:
        config = load_server_config(config_path)
    except ServerConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        accounts = open_accounts(config.users, log, f"{'https' if config.tls else 'http'}://{config.bind}")
    except AccountsError as exc:
        print(f"dagserver: {exc}", file=sys.stderr)
        return 2
    try:
        supervisor = Supervisor(config, log_level)
    except HaNotAvailable as exc:
        print(f"dagserver: {config.path}: {exc}", file=sys.stderr)
        return 2
    supervisor.load()
    try:
        app = create_app(SupervisorService(supervisor), accounts, secure=config.tls is not None,
                         session_hours=config.session_hours, max_body=MAX_BODY,
                         audit=AuditLog.in_state_dir(config.state_dir))
        server = WebServer(app, config.bind_host, config.bind_port, tls=config.tls)
    except ssl.SSLError as exc:
        print(f"dagserver: {config.path}: tls_cert/tls_key: {config.tls_cert} and {config.tls_key} are not a PEM "
              f"certificate chain and its private key: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"dagserver: cannot listen on {config.bind}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    supervisor.start()
    server.start()
    log.info("serving %d dags on %d workers; web UI %s/ (log in at %s/login), API %s/api/dags, metrics %s/metrics",
             len(supervisor.dags), len(supervisor.workers), server.url, server.url, server.url, server.url)
    stop.wait()
    log.info("shutting down (up to %gs)", config.shutdown_timeout)
    clean = supervisor.shutdown()
    server.stop()
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
    add_test_parser(sub)
    serve_cmd = sub.add_parser("serve", help="run the server")
    serve_cmd.add_argument("-c", "--config", default=None, help="supervisor TOML (default: the bundled example)")
    serve_cmd.add_argument("--log-level", default="INFO")
    add_user_parser(sub)
    add_deadletters_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return run_check(args.files)
    if args.command == "replay":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return run_replay(args.dag, args.events, engine=args.engine, epoch_records=args.epoch_records)
    if args.command == "test":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return run_test_command(args)
    if args.command == "deadletters":
        return run_deadletters(args)
    if args.command == "user":
        users, state_dir = users_path(args)
        return run_user(args, users, state_dir)
    return serve(args.config, args.log_level)


def users_path(args: argparse.Namespace) -> tuple[str, str | None]:
    """The users file of a ``dagserver user`` command (``--users``, else the config's ``users``, else the default)
    and the ``state_dir`` of its config (None without ``-c``), where the command is audited."""
    try:
        config = load_server_config(args.config) if getattr(args, "config", None) else None
    except ServerConfigError as exc:
        raise SystemExit(f"dagserver user: {exc}") from exc
    users = getattr(args, "users", None) or (config.users if config else DEFAULT_USERS)
    return str(users), (config.state_dir if config else None)


if __name__ == "__main__":
    sys.exit(main())
