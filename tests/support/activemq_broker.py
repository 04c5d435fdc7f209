"""A real ActiveMQ broker (the Debian package ``activemq``) for tests, speaking STOMP only.

:class:`ActiveMQBroker` makes a broker instance in a folder of its own: ``conf/activemq.xml``
(the package's ``main`` instance with its one transport connector replaced by
``stomp://127.0.0.1:PORT`` and a user ``dagserver`` required), a log4j config, and ``data/``
(KahaDB, logs). ``start()`` runs ``java -jar /usr/share/activemq/bin/activemq.jar start``
in its own process group and waits until the STOMP port answers; ``stop()`` kills it (the
data stays: persistent messages and durable subscriptions survive a ``start()`` on the same
port); ``close()`` kills it for good.

Tests call :func:`require_activemq` first: without java or the package
(``make services`` installs it) they are skipped, or fail when
``DAGSERVER_REQUIRE_SERVICES=1``. Java starts slowly: share one broker where you can.

:class:`Collector` is a plain STOMP consumer (auto ack, independent of the adapter under
test) that keeps what a destination receives; :func:`send_raw` puts arbitrary bodies on one.

Usage::

    with ActiveMQBroker(tmp_path) as broker:
        config = broker.config(format="json")  # host, port, username, password
        out = Collector(broker, "/queue/out")
        broker.stop(); broker.start()          # an outage; queued persistent messages survive
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack

from tests.support.services import require_module, unavailable
from tests.support.tcp_proxy import free_port
from tests.support.waiting import wait_until

HOME = Path("/usr/share/activemq")
JAR = HOME / "bin" / "activemq.jar"
TEMPLATE = Path("/etc/activemq/instances-available/main/activemq.xml")
USERNAME, PASSWORD = "dagserver", "broker-secret"
START_TIMEOUT = 60.0  # java on a small, busy machine
STOP_TIMEOUT = 20.0
HEAP = "-Xmx384M"

LOG4J = """\
log4j.rootLogger=INFO, file
log4j.logger.org.apache.activemq.spring=WARN
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN


log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={data}/activemq.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
"""

PLUGINS = f"""
        <plugins>
            <simpleAuthenticationPlugin>
                <users>
                    <authenticationUser username="{USERNAME}" password="{PASSWORD}" groups="users"/>
                </users>
            </simpleAuthenticationPlugin>
        </plugins>
"""


def missing() -> str | None:
    """Why no broker can run here, or None."""
    if shutil.which("java") is None:
        return "no java on PATH (make services installs the activemq package and java)"
    if not JAR.exists() or not TEMPLATE.exists():
        return f"no ActiveMQ: {JAR} is missing (run make services)"
    return None


def require_activemq() -> None:
    """Skip (or fail, under DAGSERVER_REQUIRE_SERVICES=1) unless stomp.py, java and the broker are here."""
    require_module("stomp", "activemq")
    if (reason := missing()) is not None:
        unavailable(reason)


def broker_xml(template: str, port: int, host: str = "127.0.0.1") -> str:
    """The package's broker config with one STOMP connector on ``port`` and a required login."""
    stomp = (f'<transportConnector name="stomp" uri="stomp://{host}:{port}'
             '?transport.closeAsync=false"/>')
    xml, count = re.subn(r"<transportConnectors>.*?</transportConnectors>",
                         f"<transportConnectors>\n            {stomp}\n        </transportConnectors>",
                         template, flags=re.S)
    if count != 1:
        raise RuntimeError(f"{TEMPLATE} has no <transportConnectors> section to replace")
    return xml.replace("</broker>", PLUGINS + "    </broker>", 1)


class ActiveMQBroker:
    """One broker process in ``base`` (a fresh temporary folder by default) on ``port``."""

    def __init__(self, base: Path | None = None, port: int | None = None, host: str = "127.0.0.1") -> None:
        """``host``: the address it listens on (a test host's own, in tests/support/hosts.py)."""
        self._own_base = base is None
        self.base = Path(tempfile.mkdtemp(prefix="activemq-")) if base is None else Path(base)
        self.host = host
        self._port_chosen = port is None  # may move to another free port until it first started
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.conf, self.data = self.base / "conf", self.base / "data"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self._configure()
        (self.conf / "log4j.properties").write_text(LOG4J.format(data=self.data))

    def _configure(self) -> None:
        (self.conf / "activemq.xml").write_text(broker_xml(TEMPLATE.read_text(), self.port, self.host))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        """The ``username`` / ``password`` config keys the broker accepts."""
        return {"username": USERNAME, "password": PASSWORD}

    def config(self, **extra: object) -> dict[str, object]:
        """Adapter config keys reaching this broker: host, port, credentials, plus ``extra``."""
        return {"host": self.host, "port": self.port, **self.credentials, **extra}

    def command(self) -> list[str]:
        base, conf = str(self.base), str(self.conf)
        return ["java", HEAP, f"-Dactivemq.base={base}", f"-Dactivemq.home={HOME}", f"-Dactivemq.conf={conf}",
                f"-Dactivemq.data={self.data}", f"-Dlog4j.configuration=file:{conf}/log4j.properties",
                "-Djava.awt.headless=true", "-jar", str(JAR), "start", f"xbean:file:{conf}/activemq.xml"]

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> ActiveMQBroker:
        """Run the broker and wait until it answers on its STOMP port.

        Before its first start it moves to another free port when someone took its own
        meanwhile; later starts keep the port (clients reconnect to it).
        """
        if self.running:
            return self
        for _attempt in range(3):
            taken_before = self.log().count("Address already in use")
            with open(self.base / "broker.out", "ab") as out:
                self.process = subprocess.Popen(self.command(), cwd=self.base, stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)
            if wait_until(self._accepts_or_exited, timeout=timeout, interval=0.05) and self.running:
                self._port_chosen = False
                return self
            self._kill()
            if not (self._port_chosen and self.log().count("Address already in use") > taken_before):
                break
            self.port = free_port()
            self._configure()
        log = self.log()
        raise RuntimeError(f"ActiveMQ did not come up on {self.address}; its output:\n{log[-4000:]}")

    def _accepts_or_exited(self) -> bool:
        """True once the broker answers a STOMP CONNECT on its port (not merely something listening
        there: another process may have taken the port), or once it exited."""
        if not self.running:
            return True
        connect = (f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{USERNAME}\npasscode:{PASSWORD}\n\n\x00"
                   .encode())
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(connect)
                return sock.recv(64).startswith(b"CONNECTED")
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, graceful: bool = False) -> None:
        """Take the broker away (SIGKILL, a crash; ``graceful``: SIGTERM first). Its data stays for ``start()``."""
        if self.process is None:
            return
        if graceful and self.running:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        self._kill()

    def _kill(self) -> None:
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)
        self.process = None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)  # start_new_session: the group id is the java pid

    def close(self) -> None:
        """Kill the broker and, for a temporary folder of its own, remove its data."""
        self._kill()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        """What the broker printed and logged so far."""
        parts = []
        for path in (self.base / "broker.out", self.data / "activemq.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def __enter__(self) -> ActiveMQBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _connect(broker: ActiveMQBroker, listener: Any = None) -> Any:
    import stomp

    conn = stomp.Connection12([(broker.host, broker.port)], auto_decode=False)
    if listener is not None:
        conn.set_listener("test", listener)
    conn.connect(USERNAME, PASSWORD, wait=True)
    return conn


def send_raw(broker: ActiveMQBroker, destination: str, bodies: list[bytes], persistent: bool = True) -> None:
    """Put each of ``bodies`` as one message on ``destination`` (``/queue/X``), as they are."""
    conn = _connect(broker)
    try:
        for body in bodies:
            conn.send(destination, body, headers={"persistent": "true" if persistent else "false"})
        conn.disconnect(receipt="sent")  # the receipt: the broker has handled every SEND before it
    finally:
        conn.transport.stop()


class Collector:
    """Everything ``destination`` receives from now on, decoded (``fmt``: json or msgpack).

    It acknowledges cumulatively, every ACK_EVERY messages and when closed, so what it did
    not see stays on a queue for the next consumer (after a broker crash, say).
    """

    ACK_EVERY = 100

    def __init__(self, broker: ActiveMQBroker, destination: str, fmt: str = "json") -> None:
        self.fmt = fmt
        self.records: list[Any] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._last_ack: str | None = None
        self.conn = _connect(broker, self)
        self.conn.subscribe(destination, id="collector", ack="client", headers={"receipt": "subscribed"})
        assert self._subscribed.wait(10), f"no subscription to {destination}"

    def on_receipt(self, frame: Any) -> None:
        if frame.headers.get("receipt-id") == "subscribed":
            self._subscribed.set()

    def on_message(self, frame: Any) -> None:
        body = frame.body
        value = msgpack.unpackb(body, raw=False) if self.fmt == "msgpack" else json.loads(body)
        with self._lock:
            self.records.append(value)
            self._last_ack = frame.headers["ack"]
            due = len(self.records) % self.ACK_EVERY == 0
        if due:
            self.conn.ack(frame.headers["ack"])  # this one and every one before it

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.records)

    def ids(self, key: str = "id") -> set[Any]:
        return {r.get(key) for r in self.snapshot() if isinstance(r, dict)}

    def until(self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0) -> bool:
        return wait_until(lambda: predicate(self.snapshot()), timeout=timeout, interval=0.02)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            with self._lock:
                last = self._last_ack
            if last is not None:
                self.conn.ack(last)
            self.conn.disconnect(receipt="bye")
