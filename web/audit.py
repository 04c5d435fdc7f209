"""The audit log (SPEC §13): who changed what, when, and how it went, one JSON line each.

Every POST and DELETE of the API and the pages (:func:`install`) and every ``dagserver user``
command appends ``{time, user, role, action, target, outcome, status}`` to ``audit.jsonl`` in
the server's ``state_dir`` (mode 0600; the folder is made 0700 when missing). Nothing else
from the request is kept: no body, no header, no password or token. ``GET /api/audit`` and the
``/admin/audit`` page show it to admins.

Usage::

    audit = AuditLog("var/state/audit.jsonl")
    audit.append(user="ana", role="operator", action="POST /api/dags/orders/stop", target="orders", outcome="ok")
    audit.tail(100)          # the newest 100 entries, oldest first
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request

AUDIT_FILE = "audit.jsonl"
EXTENSION = "dagserver.audit"
MAX_FIELD = 300  # characters kept of any one field (a path, a name, a refusal)
log = logging.getLogger("dagserver.audit")


class AuditLog:
    """An append-only JSON-lines file; appends from any thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def in_state_dir(cls, state_dir: str | os.PathLike[str]) -> AuditLog:
        return cls(Path(state_dir) / AUDIT_FILE)

    def append(self, *, user: str, role: str, action: str, target: str | None, outcome: str,
               status: int | None = None) -> dict[str, Any]:
        """Write one entry (fields cut to :data:`MAX_FIELD` characters) and return it."""
        entry = {"time": time.time(), "user": _cut(user), "role": _cut(role), "action": _cut(action),
                 "target": None if target is None else _cut(target), "outcome": _cut(outcome)}
        if status is not None:
            entry["status"] = status
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            if not self.path.parent.exists():
                self.path.parent.mkdir(mode=0o700, parents=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line)
        return entry

    def tail(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest ``limit`` entries, oldest first ([] while there is no log)."""
        kept: deque[dict[str, Any]] = deque(maxlen=max(0, limit))
        try:
            with open(self.path, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        kept.append(entry)
        except FileNotFoundError:
            return []
        return list(kept)


def _cut(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + "…"


def outcome_of(status: int) -> str:
    """``ok`` for a success or a redirect, ``refused`` for a client error, ``failed`` for a server error."""
    return "ok" if status < 400 else "refused" if status < 500 else "failed"


def refused(message: str) -> None:
    """Say that this request's change was refused although it answers with a redirect (a page's flash)."""
    g.audit_outcome = f"refused: {message}"


def record_request(response: Response) -> Response:
    """The after-request hook: append every POST and DELETE with its user, role and outcome."""
    audit: AuditLog | None = current_app.extensions.get(EXTENSION)
    if audit is None or request.method not in ("POST", "DELETE"):
        return response
    user = getattr(g, "user", None)
    args = request.view_args or {}
    outcome = getattr(g, "audit_outcome", None) or outcome_of(response.status_code)
    if response.status_code >= 400 and response.is_json:
        error = (response.get_json(silent=True) or {}).get("error")
        if isinstance(error, str):
            outcome = f"{outcome}: {error}"
    try:
        audit.append(user=user.name if user is not None else "-", role=user.role if user is not None else "-",
                     action=f"{request.method} {request.path}", target=args.get("name"), outcome=outcome,
                     status=response.status_code)
    except OSError as exc:  # the change was made: never turn its answer into an error
        log.error("audit log %s could not be written: %s", audit.path, exc)
    return response


def install(app: Flask, audit: AuditLog | None) -> None:
    """Record ``app``'s POSTs and DELETEs in ``audit`` (None: not recorded, e.g. in-process tests)."""
    if audit is not None:
        app.extensions[EXTENSION] = audit
    app.after_request(record_request)
