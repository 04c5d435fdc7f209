"""Browser sessions kept on the server (SPEC §7), so that ending one ends it everywhere.

The session cookie (signed, HttpOnly, SameSite=Lax) carries only a random session id; the
server keeps, under the id's SHA-256 (never the id itself), who signed in, the fingerprint of
that account's role and password hash, the session's CSRF token and when it began and was last
used. A session ends:

* at logout (:meth:`SessionStore.end`): a copy of the cookie saved before is worth nothing;
* when its account changes: the web layer compares the fingerprint with the users file on every
  request, so a password or role change or ``dagserver user remove`` (even by the command line
  while the server runs) ends every session of that user at its next request;
* ``lifetime`` seconds after sign-in (``session_hours``, default 12) or ``idle`` seconds (1 h)
  after its last request;
* when the server restarts: the store lives in the server's memory only (nothing to steal from
  disk, and the cookie's signing key is made anew at each start anyway).

At most ``max_sessions`` are kept; past that the least recently used one ends.

Usage::

    store = SessionStore(lifetime=12 * 3600, idle=3600)
    sid, record = store.create(user)    # sid goes into the cookie; record.csrf into the pages
    store.get(sid)                      # the record (its last use now updated), or None when ended
    store.end(sid); store.end_user("ana")
"""

from __future__ import annotations

import collections
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from web.accounts import User

DEFAULT_SESSION_HOURS = 12.0
IDLE_SECONDS = 3600.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """One signed-in browser: its user, that account's fingerprint then, its CSRF token, and times."""

    user: str
    fingerprint: str
    csrf: str
    created: float
    last_seen: float


class SessionStore:
    """The live sessions, by the SHA-256 of their id; ``clock`` (seconds, monotonic) can be given by tests."""

    def __init__(self, lifetime: float = DEFAULT_SESSION_HOURS * 3600, idle: float = IDLE_SECONDS,
                 max_sessions: int = MAX_SESSIONS, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime, self.idle, self.max_sessions, self.clock = lifetime, idle, max_sessions, clock
        self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()  # least recent first
        self._lock = threading.Lock()

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()

    def _alive(self, record: Session, now: float) -> bool:
        return now - record.created < self.lifetime and now - record.last_seen < self.idle

    def create(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: its id (for the cookie, not kept here) and its record."""
        sid, now = secrets.token_urlsafe(32), self.clock()
        record = Session(user.name, user.fingerprint, secrets.token_urlsafe(24), now, now)
        with self._lock:
            self._sessions[self._key(sid)] = record
            while self._sessions:  # the least recently used first: drop the ended ones, then any over the cap
                oldest = next(iter(self._sessions.values()))
                if self._alive(oldest, now) and len(self._sessions) <= self.max_sessions:
                    break
                self._sessions.popitem(last=False)
        return sid, record

    def get(self, sid: str) -> Session | None:
        """The live session ``sid`` (marked as used now), or None when unknown, ended, expired or idle."""
        key, now = self._key(sid), self.clock()
        with self._lock:
            record = self._sessions.get(key)
            if record is None:
                return None
            if not self._alive(record, now):
                del self._sessions[key]
                return None
            record.last_seen = now
            self._sessions.move_to_end(key)
            return record

    def end(self, sid: str) -> None:
        """End session ``sid`` (logout)."""
        with self._lock:
            self._sessions.pop(self._key(sid), None)

    def end_user(self, name: str, keep_fingerprint: str | None = None) -> int:
        """End every session of user ``name`` (but those made with ``keep_fingerprint``); how many."""
        with self._lock:
            gone = [k for k, r in self._sessions.items() if r.user == name and r.fingerprint != keep_fingerprint]
            for key in gone:
                del self._sessions[key]
        return len(gone)

    def carry_over(self, name: str, old: str, new: str) -> None:
        """``name``'s password hash was rewritten stronger (same password): its sessions stay valid."""
        with self._lock:
            for record in self._sessions.values():
                if record.user == name and record.fingerprint == old:
                    record.fingerprint = new

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
