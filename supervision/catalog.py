"""Adding, reloading, cloning and deleting DAGs on a running supervisor (SPEC §7, admin).

A DAG file sent by an admin is checked like ``dagserver check`` does; when it is valid it is
saved to the first ``dags`` folder, placed (with DAGs it shares ``mem://`` endpoints with, or
on the least loaded workers), deployed and started. Nothing is saved or changed when a
check fails: the :class:`CatalogError` carries the check's lines. Reload re-reads a DAG's
file and restarts only that DAG (from its checkpoint); delete stops it, forgets it and
removes its file.

Usage::

    catalog = DagCatalog(config, pool, supervisor.dags, leadership)
    entry = catalog.add(text, source="upload.json")       # CatalogError(400, problems) when invalid
    catalog.reload("prices"); catalog.clone("prices", "prices_night", "2200", "0600"); catalog.delete("x")
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from actors.states import DagState
from graphs.building import build_model
from graphs.loader import check_dag_dict, check_dag_file, parse_dag_text
from graphs.masking import mask_problem
from graphs.model import DagModel
from graphs.private_files import open_private
from supervision.config import ServerConfig
from supervision.counters import carry_forward
from supervision.dags import DagEntry, model_template
from supervision.leadership import Leadership
from supervision.placement import mem_endpoints
from supervision.security import ServerRules
from supervision.workers import WorkerPool

REQUEST_TIMEOUT = 30.0
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class CatalogError(Exception):
    """Why an admin request is refused: ``status`` (400, 404, 409, 500) and the check's lines."""

    def __init__(self, message: str, status: int = 400, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.problems = message, status, list(problems or [])


class DagCatalog:
    """The admin operations on the supervisor's DAGs (one at a time)."""

    def __init__(self, config: ServerConfig, pool: WorkerPool, dags: dict[str, DagEntry], ha: Leadership) -> None:
        self.config, self.pool, self.dags, self.ha = config, pool, dags, ha
        self.lock = threading.Lock()  # one admin change at a time
        self.rules = ServerRules(config)  # [security]; user classes are checked by name, never imported here

    # -- the operations ---------------------------------------------------------------------------------
    def add(self, text: str, source: str = "request body") -> DagEntry:
        data, problems = parse_dag_text(text, source)
        if data is None or problems:
            raise CatalogError(f"{source} is not a valid DAG file", 400, [str(mask_problem(p)) for p in problems])
        with self.lock:
            model = self._check(data, source)
            path = self._new_file(model.name)
            return self._install(model, data, path)

    def clone(self, name: str, new_name: str, start_time: str | None, end_time: str | None) -> DagEntry:
        original = self._entry(name)
        written = original.template if original.template is not None else original.raw  # templates kept
        data: dict[str, Any] = {**json.loads(json.dumps(written)), "name": new_name}
        data.pop("duration", None)
        if start_time or end_time:
            data.pop("schedule", None)  # the copy's own window replaces the original's schedule
        for key, value in (("start_time", start_time), ("end_time", end_time)):
            if value:
                data[key] = value
            else:
                data.pop(key, None)
        with self.lock:
            model = self._check(data, f"clone of {name}")
            path = self._new_file(model.name)
            return self._install(model, data, path)

    def reload(self, name: str) -> DagEntry:
        with self.lock:
            entry = self._entry(name)
            model, problems = check_dag_file(entry.path, uris=self.rules)
            if model is None or problems:
                raise CatalogError(f"{entry.path} is not valid any more; the running DAG is unchanged", 400,
                                   [str(mask_problem(p)) for p in problems])
            if model.name != name:
                raise CatalogError(f"{entry.path} now names the DAG {model.name!r}, not {name!r}: add it as a "
                                   f"new DAG instead", 400)
            workers = self._place(model, exclude=name)
            self._undeploy(entry)  # its counters are carried (SPEC §8: they never go down)
            fresh = DagEntry(name, entry.path, dict(model.raw), workers, desired=entry.desired,
                             carries=entry.carries[:len(workers)], template=model_template(model))
            self.dags[name] = fresh
            self._deploy(fresh)
            return fresh

    def delete(self, name: str) -> None:
        with self.lock:
            entry = self._entry(name)
            self._undeploy(entry)
            del self.dags[name]
            Path(entry.path).unlink(missing_ok=True)

    # -- checking, saving, placing --------------------------------------------------------------------------
    def _entry(self, name: str) -> DagEntry:
        entry = self.dags.get(name)
        if entry is None:
            raise CatalogError(f"no dag named {name!r}", 404)
        return entry

    def _check(self, data: Any, source: str) -> DagModel:
        model, problems = check_dag_dict(data, source, uris=self.rules)
        if model is None or problems:
            raise CatalogError(f"{source} is not a valid DAG file", 400, [str(mask_problem(p)) for p in problems])
        if model.name in self.dags:
            raise CatalogError(f"a dag named {model.name!r} exists already", 409)
        if not FILE_NAME.fullmatch(model.name):
            raise CatalogError(f"dag name {model.name!r} cannot name a file: use letters, digits, _ . -", 400)
        self._place(model)
        return model

    def _folder(self) -> Path:
        for entry in self.config.dags:
            if Path(entry).is_dir():
                return Path(entry)
        raise CatalogError("no dags folder to save to: the config's `dags` lists only files", 500)

    def _new_file(self, name: str) -> Path:
        path = self._folder() / f"{name}.json"
        if path.exists():
            raise CatalogError(f"{path} exists already (it holds another DAG or an invalid file)", 409)
        return path

    def _place(self, model: DagModel, exclude: str | None = None) -> list[int]:
        """The worker of each replica: with the DAGs it shares mem:// endpoints with, else least loaded."""
        count = len(self.pool.handles)
        load = [0] * count
        linked: set[int] = set()
        mine = mem_endpoints(model)
        for other in self.dags.values():
            if other.name == exclude:
                continue
            for worker in other.workers:
                load[worker] += 1
            if mine and mine & mem_endpoints(build_model(other.raw, other.path)):
                linked.add(other.worker)
        if model.worker is not None and model.worker >= count:
            raise CatalogError(f"dag {model.name!r} pins worker {model.worker} but there are {count} workers", 400)
        if len(linked) > 1 or (linked and model.worker is not None and model.worker not in linked):
            raise CatalogError(f"dag {model.name!r} shares mem:// endpoints with DAGs on worker(s) "
                               f"{sorted(linked)} and cannot run with all of them", 400)
        if linked or mine:
            worker = next(iter(linked), model.worker if model.worker is not None else min(range(count),
                                                                                         key=lambda w: load[w]))
            return [worker] * model.replicas
        chosen: list[int] = []
        for index in range(model.replicas):
            free = [w for w in range(count) if w not in chosen] or list(range(count))
            pick = model.worker if index == 0 and model.worker is not None else min(free, key=lambda w: (load[w], w))
            chosen.append(pick)
            load[pick] += 1
        return chosen

    # -- the workers ------------------------------------------------------------------------------------------
    def _install(self, model: DagModel, data: dict[str, Any], path: Path) -> DagEntry:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with open_private(temp, "w", encoding="utf-8") as handle:  # 0600: a DAG file may hold credentials
            handle.write(json.dumps(data, indent=2) + "\n")
        os.replace(temp, path)
        entry = DagEntry(model.name, str(path), dict(model.raw), self._place(model), template=model_template(model))
        self.dags[model.name] = entry
        self._deploy(entry)
        return entry

    def _deploy(self, entry: DagEntry) -> None:
        """Deploy (and, leading, start) every replica; wait for the answers so the caller sees the state."""
        futures = []
        with self.pool.lock:  # a worker restarting meanwhile deploys it itself, before or after this
            run = self.ha.leader and not self.ha.closing and entry.desired != DagState.STOPPED
            for index, worker in enumerate(entry.workers):
                handle = self.pool.handles[worker]
                if not handle.alive:
                    continue
                replica = entry.replica(index)
                self.pool.request_async(handle, "deploy", {"raw": entry.raw, "path": entry.path, "replica": replica})
                if run:
                    futures.append((handle, entry.key(index), self.pool.request_async(
                        handle, "start", {"name": entry.name, "replica": replica,
                                          "suspended": entry.desired == DagState.SUSPENDED, **self.ha.start_args()})))
        if problems := self.pool.gather(futures, REQUEST_TIMEOUT, "start"):
            raise CatalogError("; ".join(problems), 500)

    def _undeploy(self, entry: DagEntry) -> None:
        """Stop every replica (drained, checkpointed) and remove it from its worker; what each had
        counted goes into ``entry.carries``."""
        futures = []
        for index, worker in enumerate(entry.workers):
            handle = self.pool.handles[worker]
            if handle.alive:
                futures.append((index, handle, self.pool.request_async(
                    handle, "undeploy", {"name": entry.name, "replica": entry.replica(index),
                                         "timeout": self.config.shutdown_timeout})))
        for index, handle, future in futures:
            key = entry.key(index)
            try:
                ok, last, _, _ = future.result(self.config.shutdown_timeout + REQUEST_TIMEOUT)
            except TimeoutError as exc:
                raise CatalogError(f"worker {handle.id} did not remove {key!r} in time", 500) from exc
            with self.pool.lock:
                details = handle.details.pop(key, None)
            final = last if ok and isinstance(last, dict) else details  # the stopped runtime's own, when it sent them
            if final is not None:
                carry_forward(entry.carries[index], final)
