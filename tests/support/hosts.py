"""Test "hosts" on one machine: Linux network namespaces joined by a bridge (SPEC §5, across machines).

A :class:`TestBed` makes a namespace for its bridge (``br0``) and one per host, each host
with one interface ``eth0`` and one address in 10.231.0.0/24. Those addresses exist only
inside the bed's namespaces: the root namespace has no route to them, so nothing outside
the bed can reach them or be reached from them. A host's ``eth0`` is a veth whose peer
is a bridge port, or, for a host made with a :class:`~tests.support.delay_line.DelayLine`
setting, a TAP device whose frames a forwarder process in the bridge's namespace holds
back (and drops some of) before handing them to another TAP device on the bridge.

Code runs "on" a host through :meth:`Host.run` (a pool of threads that entered the host's
network namespace with ``setns``: sockets and child processes made there belong to it),
so a test starts a broker, a ``dagserver serve`` or a client on the host it chooses.
:meth:`Host.link_down` / :meth:`Host.link_up` take the host's bridge port away and back
(a cable pulled out).

Everything is named ``dsh-PID-...`` (PID: the test process). ``close()`` ends the processes
left in the bed's namespaces and removes them (which removes their links and qdiscs);
:func:`remove_stale` removes those of test processes that died without cleaning up.
Root only: without it (or without ``ip``) tests are skipped, or fail under
``DAGSERVER_REQUIRE_SERVICES=1``.

Usage::

    with TestBed() as bed:
        broker, a = bed.add_host("broker"), bed.add_host("a", delay=DelayLine(0.2, 0.05, 0.01))
        broker.run(start_broker, broker.address)
        a.link_down(); a.link_up()
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.support.delay_line import DelayLine
from tests.support.services import unavailable

PREFIX = "dsh-"
SUBNET = "10.231.0"  # /24, only inside a bed's namespaces
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
IP_TIMEOUT = 10.0
RUN_TIMEOUT = 120.0  # the longest a call on a host may take (a broker's start on a busy machine)
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)
_where = threading.local()  # .netns: the namespace this thread entered (absent: the root one)


def require_hosts() -> None:
    """Skip (or fail under DAGSERVER_REQUIRE_SERVICES=1) unless network namespaces can be made here."""
    if os.geteuid() != 0:
        unavailable("network-namespace hosts need root (ip netns add)")
    if shutil.which("ip") is None:
        unavailable("no ip command (the iproute2 package)")
    if not Path("/dev/net/tun").exists():
        unavailable("no /dev/net/tun: the delay line needs TAP devices")


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip [-n NETNS] ARGS``; a failure raises with what ``ip`` said."""
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(netns: str) -> None:
    """SIGKILL every process left in ``netns`` (what ``ip netns pids`` lists)."""
    listed = ip("netns", "pids", netns, check=False).stdout.split()
    for pid in listed[:1000]:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale() -> list[str]:
    """Remove the namespaces of beds whose test process is gone; their names."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines()[:1000]:
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-")
        if not name.startswith(PREFIX) or len(parts) < 3 or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        _kill_inside(name)
        ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


def _enter(netns: str) -> None:
    """Move the calling thread into network namespace ``netns`` (only this thread; children inherit it)."""
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)
    _where.netns = netns


class Host:
    """One namespace of a bed: ``name``, ``netns`` (its namespace), ``address`` (of its ``eth0``)."""

    def __init__(self, bed: TestBed, name: str, netns: str, address: str, port: str) -> None:
        self.bed, self.name, self.netns, self.address = bed, name, netns, address
        self.port = port  # its bridge-side device in the bridge's namespace
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=6, thread_name_prefix=f"host-{name}",
                                                           initializer=_enter, initargs=(netns,))

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.address})"

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Start ``fn(*args, **kwargs)`` on a thread of this host; its future."""
        return self._pool.submit(fn, *args, **kwargs)

    def run(self, fn: Callable[..., T], *args: Any, timeout: float = RUN_TIMEOUT, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` run in this host's namespace (at once when this thread is already there)."""
        if getattr(_where, "netns", None) == self.netns:
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result(timeout)

    def link_down(self) -> None:
        """Pull the host's cable out: its bridge port goes down (frames to and from it are gone)."""
        ip("link", "set", self.port, "down", netns=self.bed.bridge)

    def link_up(self) -> None:
        ip("link", "set", self.port, "up", netns=self.bed.bridge)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TestBed:
    """A bridge namespace and hosts on it; ``close()`` (or leaving the ``with``) removes everything."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        require_hosts()
        remove_stale()
        self.tag = f"{PREFIX}{os.getpid()}-{os.urandom(2).hex()}"
        self.bridge = f"{self.tag}-bridge"
        self.hosts: dict[str, Host] = {}
        self.forwarders: list[subprocess.Popen[str]] = []
        self._made: list[str] = []
        self._lock = threading.Lock()

    def __enter__(self) -> TestBed:
        try:
            self._add_netns(self.bridge)
            ip("link", "add", "br0", "type", "bridge", netns=self.bridge)
            ip("link", "set", "br0", "up", netns=self.bridge)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _add_netns(self, netns: str) -> None:
        ip("netns", "add", netns)
        self._made.append(netns)
        ip("link", "set", "lo", "up", netns=netns)

    def add_host(self, name: str, delay: DelayLine | None = None) -> Host:
        """A new host ``name`` on the bridge, address ``10.231.0.(10 + its number)``; with ``delay`` its
        link goes through a forwarder that holds and drops frames as the :class:`DelayLine` says."""
        with self._lock:
            number = len(self.hosts) + 10
        netns, address = f"{self.tag}-{name}", f"{SUBNET}.{number}"
        self._add_netns(netns)
        if delay is None:
            port = f"v{number}"
            ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns, netns=self.bridge)
        else:
            port = self._delayed_link(netns, number, delay)
        ip("link", "set", port, "master", "br0", netns=self.bridge)
        ip("link", "set", port, "up", netns=self.bridge)
        ip("addr", "add", f"{address}/24", "dev", "eth0", netns=netns)
        ip("link", "set", "eth0", "up", netns=netns)
        host = Host(self, name, netns, address, port)
        with self._lock:
            self.hosts[name] = host
        return host

    def _delayed_link(self, netns: str, number: int, delay: DelayLine) -> str:
        """Two TAP devices in the bridge's namespace joined by a forwarder; the host's one moves into
        ``netns`` as ``eth0``. The forwarder holds them open: they vanish when it ends."""
        inner, port = f"t{number}h", f"t{number}b"
        process = self.bridge_host().run(
            subprocess.Popen, [sys.executable, "-m", "tests.support.delay_line", inner, port, *delay.arguments()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            cwd=Path(__file__).resolve().parents[2])
        self.forwarders.append(process)
        ready = process.stdout.readline() if process.stdout else ""  # type: ignore[union-attr]
        if ready.strip() != "ready":
            raise RuntimeError(f"the delay line did not start: {ready!r}")
        ip("link", "set", inner, "netns", netns, netns=self.bridge)
        ip("link", "set", inner, "name", "eth0", netns=netns)
        return port

    def bridge_host(self) -> Host:
        """A host object for the bridge's own namespace (it has no address): to start processes there."""
        with self._lock:
            if "_bridge" not in self.hosts:
                self.hosts["_bridge"] = Host(self, "_bridge", self.bridge, "", "")
            return self.hosts["_bridge"]

    def forwarder_counts(self) -> list[str]:
        """What each forwarder said when it ended (``frames=N dropped=M``); ends them."""
        said = []
        for process in self.forwarders:
            with contextlib.suppress(OSError, ValueError):
                if process.stdin:
                    process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
                process.wait(10)
                said.append(process.stdout.read().strip() if process.stdout else "")
        return said

    def close(self) -> None:
        """End every process in the bed's namespaces and remove them (links and qdiscs go with them)."""
        with self._lock:
            hosts, self.hosts = list(self.hosts.values()), {}
        for host in hosts:
            host.close()
        for process in self.forwarders:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for netns in reversed(self._made):
            _kill_inside(netns)
            ip("netns", "del", netns, check=False)
        self._made = []
