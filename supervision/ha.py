"""The ZooKeeper side of high availability (SPEC §9): a leader election and the leader's lease.

A :class:`LeaderElection` holds one ZooKeeper session (kazoo, an optional dependency:
``pip install 'dagserver[zookeeper]'``) and one thread that does all the rest, so roles
never change halfway:

* **election** — each server puts an ephemeral sequential node under ``[ha] path``, named
  with a random token so that a create whose answer was lost is found again. The server
  whose node has the lowest sequence number leads; each other one watches the node just
  before its own and looks again when it goes (that server stopped, or its session
  expired). A leader's node goes only with its session, so a standby takes over at most
  ``session_timeout`` (plus one ZooKeeper tick) after the leader was last heard from.
* **lease** — every ``session_timeout / 6`` the thread asks ZooKeeper something. An answer
  proves the session lives until at least ``session_timeout`` after the question was sent,
  so the leader lets its workers read and publish until 3/4 of that (``on_lease``, see
  :mod:`actors.lease`). A leader that cannot renew — cut off, frozen, starved — stops
  reading and publishing on its own, before its node can go and anyone else lead.
* **fencing** — connection SUSPENDED: the lease is revoked at once (from kazoo's own
  thread); CONNECTED again in the same session: the next renewal grants it again; session
  LOST, or SUSPENDED for longer than ``session_timeout``: ``on_standby`` (the supervisor
  stops its DAGs), and the election is entered again with the next session.

This assumes the ZooKeeper servers grant the session timeout asked for (their
``maxSessionTimeout`` is at least ``session_timeout``).

Usage::

    election = LeaderElection(config.ha, "host 127.0.0.1:8080", on_leader=start_dags,
                              on_standby=stop_dags, on_lease=grant_workers)
    election.start()
    election.leader, election.status()   # False, {"role": "standby", "leader": "...", "zookeeper": "connected"}
    election.stop()                      # leaves the election: a standby takes over at once
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from supervision.config import HaConfig

log = logging.getLogger("dagserver.ha")

LEADER, STANDBY = "leader", "standby"
LEASE_SHARE = 0.75  # of session_timeout past a renewal's question: how long workers may go on
RENEW_SHARE = 1 / 6  # of session_timeout between renewals
PREFIX = "candidate-"
STATES = {"CONNECTED": "connected", "SUSPENDED": "suspended", "LOST": "lost"}


class HaNotAvailable(RuntimeError):
    """``[ha]`` is configured but the ZooKeeper client library is not installed."""


def load_kazoo() -> Any:
    """The kazoo package, or a clear error naming the extra that installs it."""
    try:
        import kazoo.client
        import kazoo.exceptions
        import kazoo.retry
    except ImportError as exc:
        raise HaNotAvailable("[ha] needs the Python package kazoo: pip install 'dagserver[zookeeper]'") from exc
    return kazoo


def sequence_of(node: str) -> int:
    """The sequence number ZooKeeper appended to a candidate's name.

    >>> sequence_of("candidate-ab12-0000000042")
    42
    """
    return int(node.rsplit("-", 1)[1])


class LeaderElection:
    """This server's place in the election under ``settings.path``, and the lease it may grant."""

    def __init__(self, settings: HaConfig, identity: str, *, on_leader: Callable[[], None],
                 on_standby: Callable[[str], None], on_lease: Callable[[float], None]) -> None:
        """``identity`` tells the other servers (and ``/healthz``) who leads; the callbacks run on the
        election's thread (``on_lease`` also on kazoo's) and must not block."""
        kazoo = load_kazoo()
        self.settings = settings
        self.identity = identity
        self.timeout = settings.session_timeout
        self.on_leader, self.on_standby, self.on_lease = on_leader, on_standby, on_lease
        self.leader = False
        self.leader_identity = ""  # who leads, as last seen
        self.connection = "connecting"
        self.lease_until = 0.0
        self._no_node = kazoo.exceptions.NoNodeError
        self._token = uuid.uuid4().hex
        self._node: str | None = None  # our candidate node, in session ``_session``
        self._session: int | None = None
        self._suspended_since: float | None = None
        self._lock = threading.RLock()  # role and lease change together, and one grant at a time
        self._events: queue.Queue[str] = queue.Queue()
        self._stopping = threading.Event()
        retry = kazoo.retry.KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0)
        self.client = kazoo.client.KazooClient(hosts=settings.zookeeper, timeout=settings.session_timeout,
                                               connection_retry=retry, logger=logging.getLogger("dagserver.kazoo"))
        self.client.add_listener(self._state_changed)
        self._thread = threading.Thread(target=self._run, name="ha-election", daemon=True)

    # -- life -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (in the background: until ZooKeeper answers this server is a standby) and run."""
        self.client.start_async()
        self._thread.start()

    def stop(self) -> None:
        """Leave the election: our node goes with the session, so a standby takes over at once."""
        self._stopping.set()
        self._events.put("stop")
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5.0)
        with self._lock:
            self.leader = False
        try:
            self.client.stop()
            self.client.close()
        except Exception as exc:  # a shutdown goes on whatever the client says
            log.warning("high availability: closing the ZooKeeper session: %s", exc)

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: role, who leads, the ZooKeeper connection."""
        return {"role": LEADER if self.leader else STANDBY, "leader": self.leader_identity or None,
                "zookeeper": self.connection, "path": self.settings.path, "session_timeout": self.timeout}

    # -- kazoo's thread ---------------------------------------------------------------------------
    def _state_changed(self, state: str) -> None:
        """kazoo's connection listener: fence at once, leave the rest to the election's thread."""
        self.connection = STATES.get(str(state), str(state).lower())
        with self._lock:
            if state == "CONNECTED":
                self._suspended_since = None
            else:
                if self._suspended_since is None:
                    self._suspended_since = time.monotonic()
                if self.lease_until:
                    log.warning("high availability: ZooKeeper connection %s; reading and publishing stop now",
                                self.connection)
                self.lease_until = 0.0
                if self.leader:
                    self.on_lease(0.0)
        self._events.put(str(state))

    def _watch(self, _event: Any) -> None:
        self._events.put("watch")

    # -- the election's thread --------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.timeout * RENEW_SHARE
        while not self._stopping.is_set():
            try:
                event = self._events.get(timeout=interval)
            except queue.Empty:
                event = "tick"
            if self._stopping.is_set():
                break
            try:
                self._step(event)
            except Exception as exc:  # one failed round never ends the election: the next one retries
                log.info("high availability: %s: %s", type(exc).__name__, exc)

    def _step(self, event: str) -> None:
        if event == "LOST":
            self._demote("its ZooKeeper session expired")
        if self.client.state != "CONNECTED":
            since = self._suspended_since
            if self.leader and since is not None and time.monotonic() - since > self.timeout:
                self._demote(f"no answer from ZooKeeper for more than {self.timeout:g}s")
            return
        session = self.client.client_id[0] if self.client.client_id else None
        if session != self._session:
            self._demote("its ZooKeeper session changed")
            self._node, self._session = None, session
        self._renew()
        self._elect()

    def _ask(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One ZooKeeper call, waited for at most half the session timeout."""
        return call(*args, **kwargs).get(timeout=self.timeout / 2)

    def _renew(self) -> None:
        sent = time.monotonic()
        self._ask(self.client.exists_async, self.settings.path)
        with self._lock:
            if self._suspended_since is not None or self.client.client_id is None \
                    or self.client.client_id[0] != self._session:
                return  # the connection dropped meanwhile: no grant on its strength
            self.lease_until = sent + LEASE_SHARE * self.timeout
            if self.leader:
                self.on_lease(self.lease_until)

    def _elect(self) -> None:
        path = self.settings.path
        if self._node is None:
            self._node = self._candidate(path)
        children = sorted((c for c in self._ask(self.client.get_children_async, path) if c.startswith(PREFIX)),
                          key=sequence_of)
        if self._node not in children:  # deleted by someone: enter again
            self._demote("its place in the election was deleted")
            self._node = None
            self._events.put("again")
            return
        index = children.index(self._node)
        try:
            data, _stat = self._ask(self.client.get_async, f"{path}/{children[0]}")
            self.leader_identity = bytes(data or b"").decode("utf-8", "replace")
        except self._no_node:
            pass  # the leader just went: its watcher hears of it
        if index == 0:
            self._promote()
            return
        self._demote("another server leads")
        if self._ask(self.client.exists_async, f"{path}/{children[index - 1]}", watch=self._watch) is None:
            self._events.put("again")  # gone already: look again now

    def _candidate(self, path: str) -> str:
        """Our node in this session: found again (a create whose answer was lost), or created."""
        self._ask(self.client.ensure_path_async, path)
        mine = sorted((c for c in self._ask(self.client.get_children_async, path)
                       if c.startswith(f"{PREFIX}{self._token}-")), key=sequence_of)
        if mine:
            return mine[0]
        created = self._ask(self.client.create_async, f"{path}/{PREFIX}{self._token}-",
                            self.identity.encode("utf-8"), ephemeral=True, sequence=True)
        return str(created).rsplit("/", 1)[1]

    def _promote(self) -> None:
        with self._lock:
            if self.leader or self.lease_until <= time.monotonic():
                return  # leads already, or the renewal came too late: try again next round
            self.leader = True
            self.leader_identity = self.identity
            self.on_lease(self.lease_until)
        log.warning("high availability: this server (%s) leads now", self.identity)
        self.on_leader()

    def _demote(self, reason: str) -> None:
        with self._lock:
            if not self.leader:
                return
            self.leader = False
            self.on_lease(0.0)
        log.warning("high availability: this server (%s) is a standby now: %s", self.identity, reason)
        self.on_standby(reason)
