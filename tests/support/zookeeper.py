"""A real ZooKeeper server (the Debian package ``zookeeper``) for tests, started by the tests.

:class:`ZooKeeperServer` writes a ``zoo.cfg`` into a folder of its own (``tickTime=500``
so sessions can be short, data in that folder, a free port on 127.0.0.1, no admin web
server, the four-letter words ``srvr`` and ``ruok`` allowed), runs ``java ...
ZooKeeperServerMain zoo.cfg`` in its own process group, waits until it answers ``srvr`` and
kills the group on ``close()``. ``stop()`` then ``start()`` is an outage: the same port and
data, so the clients' sessions survive it if it is shorter than their timeout. With
``tickTime=500`` the server grants session timeouts from 1 s to 10 s.

The ``zookeeper`` fixture (one per test module) is such a server; tests that use it call
nothing else first: without java, the package or kazoo they are skipped, or fail when
``DAGSERVER_REQUIRE_SERVICES=1`` (CI). Register the fixture by importing it in the test
module or a ``conftest.py``.

Usage::

    def test_election(zookeeper: ZooKeeperServer) -> None:
        hosts = zookeeper.hosts            # "127.0.0.1:PORT", for [ha] zookeeper = ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.services import require_module, unavailable
from tests.support.tcp_proxy import free_port
from tests.support.waiting import wait_until

JAR = Path("/usr/share/java/zookeeper.jar")  # its manifest's Class-Path names the jars it needs
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
TICK_MS = 500
START_TIMEOUT = 60.0  # java on a small, busy machine
HEAP = "-Xmx128M"


def require_zookeeper() -> str:
    """The java binary, once java, the zookeeper package and kazoo are known to be here."""
    require_module("kazoo", "zookeeper")
    java = shutil.which("java")
    if java is None:
        unavailable("no java: install the Debian package zookeeper (make services)")
    if not JAR.exists():
        unavailable(f"no {JAR}: install the Debian package zookeeper (make services)")
    return str(java)


class ZooKeeperServer:
    """One standalone ZooKeeper server in a temporary folder, on a free port."""

    def __init__(self, folder: Path | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        """``host``: the address it listens on; ``port``: 0 for a free one."""
        self.java = require_zookeeper()
        self.host = host
        self._own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="zookeeper-")) if folder is None else folder
        self.port = port  # given: kept from the first start on
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        """The connection string: ``HOST:PORT``."""
        return f"{self.host}:{self.port}"

    def start(self) -> ZooKeeperServer:
        """Start the server and wait until it answers; a first start retries once on another port when
        its port was taken meanwhile, a restart keeps its port."""
        restart = self.port != 0
        for _attempt in range(1 if restart else 2):
            self.port = self.port if restart else free_port()
            data = self.folder / "data"
            data.mkdir(parents=True, exist_ok=True)
            config = self.folder / "zoo.cfg"
            config.write_text(f"tickTime={TICK_MS}\ndataDir={data}\nclientPort={self.port}\n"
                              f"clientPortAddress={self.host}\nadmin.enableServer=false\n"
                              "4lw.commands.whitelist=srvr,ruok\n")
            with open(self.folder / "zookeeper.log", "ab") as log:
                self.process = subprocess.Popen(
                    [self.java, HEAP, "-cp", str(JAR), MAIN, str(config)], cwd=self.folder,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if wait_until(lambda: self._answers() or self.process.poll() is not None,  # type: ignore[union-attr]
                          timeout=START_TIMEOUT, interval=0.05) and self.process.poll() is None:
                return self
            self._kill()
        log_text = self.log()
        self.close()
        raise RuntimeError(f"ZooKeeper did not come up; its log:\n{log_text[-3000:]}")

    def _answers(self) -> bool:
        """Whether the server answers ``srvr`` as a standalone server (it is serving then)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"srvr")
                sock.settimeout(2.0)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
        except OSError:
            return False
        return b"Mode: standalone" in answer

    def log(self) -> str:
        try:
            return (self.folder / "zookeeper.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # start_new_session: the group is the server's
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """Kill the server (an outage); ``start()`` brings it back on the same port with the same data."""
        self._kill()

    def close(self) -> None:
        """Kill the server's process group and remove its folder (when it made it)."""
        self._kill()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@pytest.fixture(scope="module")
def zookeeper() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer() as server:
        yield server
