"""The supervisor's TOML config (SPEC §7): every key optional, unknown keys an error.

Usage::

    config = load_server_config("examples/supervisor.toml")
    config.workers, config.bind_host, config.bind_port, config.dag_files()
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphs.suggest import did_you_mean

TOP_KEYS = {"workers", "dags", "state_dir", "bind", "users", "shutdown_timeout", "heartbeat_timeout", "restart"}
RESTART_KEYS = {"max_restarts", "within_seconds"}
MIN_HEARTBEAT_TIMEOUT = 1.0


class ServerConfigError(ValueError):
    """Every problem in a supervisor config, one per line."""


@dataclass(frozen=True)
class ServerConfig:
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    dags: tuple[str, ...] = ("examples/dags",)
    state_dir: str = "var/state"
    bind: str = "127.0.0.1:8080"
    users: str = "config/users.json"
    shutdown_timeout: float = 15.0
    heartbeat_timeout: float = 3.0
    max_restarts: int = 5
    within_seconds: float = 60.0
    path: str = "<defaults>"

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
    return parse_server_config(data, path)


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
    for key in ("shutdown_timeout", "heartbeat_timeout"):
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
    if problems:
        raise ServerConfigError("\n".join(problems))
    return ServerConfig(**values)
