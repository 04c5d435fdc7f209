"""The supervisor's TOML config (SPEC §7): every key optional, unknown keys an error.

Usage::

    config = load_server_config("examples/supervisor.toml")
    config.workers, config.bind_host, config.bind_port, config.dag_files()
    config.ha          # None, or HaConfig(zookeeper="zk1:2181,zk2:2181", path="/dagserver", session_timeout=4.0)
    config.tls         # None, or ("cert.pem", "key.pem"): serve HTTPS (tls_cert/tls_key)
    config.session_hours   # 12.0: a web login ends this many hours after it began (and after 1 h idle)
    config.security    # SecurityConfig(file_roots=None | ("/srv/feeds",), module_prefixes=None | ("acme.dags",))
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphs.suggest import did_you_mean
from graphs.templates import resolve_templates

TOP_KEYS = {"workers", "dags", "state_dir", "bind", "users", "shutdown_timeout", "heartbeat_timeout", "restart",
             "ha", "tls_cert", "tls_key", "session_hours", "security"}
RESTART_KEYS = {"max_restarts", "within_seconds"}
HA_KEYS = {"zookeeper", "path", "session_timeout"}
SECURITY_KEYS = {"file_roots", "module_prefixes"}
_MODULE_PREFIX = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
MIN_SESSION_TIMEOUT = 1.0
MIN_HEARTBEAT_TIMEOUT = 1.0


class ServerConfigError(ValueError):
    """Every problem in a supervisor config, one per line."""


@dataclass(frozen=True)
class HaConfig:
    """The ``[ha]`` section (SPEC §9): the ZooKeeper servers, the election path, the session timeout.

    >>> HaConfig("127.0.0.1:2181").path
    '/dagserver'
    """

    zookeeper: str  # "host:port,host:port"
    path: str = "/dagserver"  # servers with the same path form one group
    session_timeout: float = 4.0  # seconds


@dataclass(frozen=True)
class SecurityConfig:
    """The ``[security]`` section (SPEC §7): what an admin's DAGs may reach. None: not bounded.

    ``file_roots``: the folders ``file://`` sources, sinks and dead letters may use (the server's
    own files are refused whatever it says); ``module_prefixes``: the packages user classes
    (calculators, transformers, ``custom://`` adapters) may come from.

    >>> SecurityConfig(module_prefixes=("acme.dags",)).file_roots is None
    True
    """

    file_roots: tuple[str, ...] | None = None
    module_prefixes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServerConfig:
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    dags: tuple[str, ...] = ("examples/dags",)
    state_dir: str = "var/state"
    bind: str = "127.0.0.1:8080"
    users: str = "var/users.json"
    shutdown_timeout: float = 15.0
    heartbeat_timeout: float = 3.0
    max_restarts: int = 5
    within_seconds: float = 60.0
    ha: HaConfig | None = None  # None: no high availability, this server is its own leader
    tls_cert: str | None = None  # PEM certificate chain; with tls_key: the web server speaks only HTTPS
    tls_key: str | None = None  # PEM private key of tls_cert
    session_hours: float = 12.0  # a browser session ends this long after its login (SPEC §7)
    security: SecurityConfig = SecurityConfig()  # [security]: bounds on what DAGs may reach
    path: str = "<defaults>"

    @property
    def tls(self) -> tuple[str, str] | None:
        """``(tls_cert, tls_key)`` when TLS is configured, else None."""
        return (self.tls_cert, self.tls_key) if self.tls_cert and self.tls_key else None

    @property
    def bind_host(self) -> str:
        """The host part of ``bind``; an IPv6 address loses its brackets (``[::1]:8080`` -> ``::1``)."""
        return self.bind.rpartition(":")[0].removeprefix("[").removesuffix("]") or "127.0.0.1"

    @property
    def bind_port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    def dag_files(self) -> list[Path]:
        """Every DAG file named by ``dags``: files as given, folders as their ``*.json``."""
        files: list[Path] = []
        for entry in self.dags:
            path = Path(entry)
            files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
        return files


def load_server_config(path: str | None) -> ServerConfig:
    if path is None:
        return ServerConfig()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ServerConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ServerConfigError(f"{path}: not valid TOML: {exc}") from exc
    resolved = resolve_templates(data)  # ${VAR}, ${VAR:-default}, ${file:/path} (SPEC §14)
    if resolved.problems:
        raise ServerConfigError("\n".join(f"{path}: {p.path}: {p.message}" + (f" ({p.suggestion})" if p.suggestion
                                                                               else "") for p in resolved.problems))
    return parse_server_config(resolved.value, path)


def parse_server_config(data: dict[str, Any], path: str = "<memory>") -> ServerConfig:
    problems: list[str] = []

    def problem(key: str, value: Any, message: str) -> None:
        problems.append(f"{path}: {key}: {message} (got {value!r})")

    for key in data:
        if key not in TOP_KEYS:
            hint = did_you_mean(key, sorted(TOP_KEYS))
            problems.append(f"{path}: {key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
    restart = data.get("restart", {})
    if not isinstance(restart, dict):
        problem("restart", restart, "must be a table")
        restart = {}
    for key in restart:
        if key not in RESTART_KEYS:
            hint = did_you_mean(key, sorted(RESTART_KEYS))
            problems.append(f"{path}: restart.{key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
    values: dict[str, Any] = {"path": path}

    def number(key: str, raw: Any, kind: type, where: str) -> None:
        if isinstance(raw, bool) or not isinstance(raw, (int, float) if kind is float else int) or raw <= 0:
            problem(where, raw, f"must be a positive {'number' if kind is float else 'whole number'}")
        else:
            values[key] = kind(raw)

    if "workers" in data:
        number("workers", data["workers"], int, "workers")
    for key in ("shutdown_timeout", "heartbeat_timeout", "session_hours"):
        if key in data:
            number(key, data[key], float, key)
    if values.get("heartbeat_timeout", MIN_HEARTBEAT_TIMEOUT) < MIN_HEARTBEAT_TIMEOUT:
        problem("heartbeat_timeout", data["heartbeat_timeout"],
                f"must be at least {MIN_HEARTBEAT_TIMEOUT:g} s: workers beat every 0.5 s, a shorter "
                "timeout would take healthy workers for hung")
    if "max_restarts" in restart:
        number("max_restarts", restart["max_restarts"], int, "restart.max_restarts")
    if "within_seconds" in restart:
        number("within_seconds", restart["within_seconds"], float, "restart.within_seconds")
    if "dags" in data:
        dags = data["dags"]
        if isinstance(dags, str):
            dags = [dags]
        if not isinstance(dags, list) or not all(isinstance(d, str) for d in dags):
            problem("dags", data["dags"], "must be a list of DAG files and folders")
        else:
            values["dags"] = tuple(dags)
    for key in ("state_dir", "users"):
        if key in data:
            if isinstance(data[key], str) and data[key]:
                values[key] = data[key]
            else:
                problem(key, data[key], "must be a path")
    if "bind" in data:
        bind = data["bind"]
        host, _, port = str(bind).rpartition(":")
        if not isinstance(bind, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
            problem("bind", bind, "must be HOST:PORT, e.g. \"127.0.0.1:8080\"")
        else:
            values["bind"] = bind
    if "ha" in data:
        values["ha"] = parse_ha(data["ha"], problem, problems.append, path)
    if "tls_cert" in data or "tls_key" in data:
        values.update(parse_tls(data, problems.append, path))
    if "security" in data:
        values["security"] = parse_security(data["security"], problem, problems.append, path)
    if problems:
        raise ServerConfigError("\n".join(problems))
    return ServerConfig(**values)


def parse_ha(section: Any, problem: Callable[[str, Any, str], None], report: Callable[[str], None],
             path: str) -> HaConfig | None:
    """The ``[ha]`` table, or None after reporting what is wrong with it."""
    if not isinstance(section, dict):
        problem("ha", section, 'must be a table: [ha] with zookeeper = "host:port,..."')
        return None
    ok = True
    for key in section:
        if key not in HA_KEYS:
            hint = did_you_mean(key, sorted(HA_KEYS))
            report(f"{path}: ha.{key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
            ok = False
    zookeeper = section.get("zookeeper")
    if zookeeper is None:
        report(f'{path}: ha.zookeeper: missing: the ZooKeeper servers, e.g. zookeeper = "127.0.0.1:2181"')
        ok = False
    elif not _zookeeper_hosts_ok(zookeeper):
        problem("ha.zookeeper", zookeeper, 'must be HOST:PORT[,HOST:PORT...], e.g. "zk1:2181,zk2:2181"')
        ok = False
    election = section.get("path", HaConfig.path)
    if not isinstance(election, str) or not election.startswith("/") or election.endswith("/") \
            or "//" in election or any(c.isspace() for c in election):
        problem("ha.path", election, 'must be a ZooKeeper path like "/dagserver" (leading /, no trailing /)')
        ok = False
    timeout = section.get("session_timeout", HaConfig.session_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < MIN_SESSION_TIMEOUT:
        problem("ha.session_timeout", timeout, f"must be a number of seconds, at least {MIN_SESSION_TIMEOUT:g} "
                                              "(e.g. 4; a standby takes over within it + 2 s)")
        ok = False
    return HaConfig(str(zookeeper), str(election), float(timeout)) if ok else None


def parse_security(section: Any, problem: Callable[[str, Any, str], None], report: Callable[[str], None],
                   path: str) -> SecurityConfig:
    """The ``[security]`` table (every key optional), after reporting what is wrong with it."""
    if not isinstance(section, dict):
        problem("security", section, 'must be a table: [security] with file_roots = [...], module_prefixes = [...]')
        return SecurityConfig()
    for key in section:
        if key not in SECURITY_KEYS:
            hint = did_you_mean(key, sorted(SECURITY_KEYS))
            report(f"{path}: security.{key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
    roots = section.get("file_roots")
    if roots is not None and (not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots)):
        problem("security.file_roots", roots, 'must be a list of folders, e.g. ["/srv/dagserver/files"]')
        roots = None
    prefixes = section.get("module_prefixes")
    if prefixes is not None:
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            problem("security.module_prefixes", prefixes, 'must be a list of package names, e.g. ["acme.dags"]')
            prefixes = None
        else:
            prefixes = [p.rstrip(".") for p in prefixes]
            for prefix in prefixes:
                if not _MODULE_PREFIX.fullmatch(prefix):
                    problem("security.module_prefixes", prefix, 'each must be a dotted package name like "acme.dags"')
    return SecurityConfig(None if roots is None else tuple(roots), None if prefixes is None else tuple(prefixes))


def _zookeeper_hosts_ok(hosts: Any) -> bool:
    """``host:port`` entries separated by commas (kazoo's connection string, without a chroot)."""
    if not isinstance(hosts, str) or not hosts.strip():
        return False
    for entry in hosts.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return False
    return True


def parse_tls(data: dict[str, Any], report: Callable[[str], None], path: str) -> dict[str, str]:
    """``tls_cert`` and ``tls_key`` (both or neither, each a readable file), or {} after reporting why not."""
    paths: dict[str, str] = {}
    for key, other in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
        value = data.get(key)
        if value is None:
            report(f"{path}: {key}: missing: {other} is set, and TLS needs both (tls_cert = the PEM certificate "
                   f"chain, tls_key = its PEM private key); set {key} too, or remove {other} to serve plain HTTP")
        elif not isinstance(value, str) or not value:
            report(f"{path}: {key}: must be the path of a PEM file (got {value!r})")
        else:
            try:
                with open(value, "rb"):
                    paths[key] = value
            except OSError as exc:
                report(f"{path}: {key}: cannot read {value}: {exc.strerror or exc}; fix the path or the "
                       "file's permissions (the server's user must be able to read it)")
    return paths if len(paths) == 2 else {}
