"""A real Prometheus for tests: the Debian ``prometheus`` binary on a free port, and its HTTP API.

:class:`PrometheusServer` writes a config scraping one target every second (job
``dagserver``) and loading the given rule files, evaluated every second, stores its data
in a temporary folder, starts Prometheus on 127.0.0.1 in its own process group, waits for
``/-/ready``, and kills it (and only it) when closed::

    with PrometheusServer(tmp_path, f"127.0.0.1:{server.port}", rule_files=[ALERTS]) as prom:
        wait_until(lambda: prom.query('up{job="dagserver"} == 1'), timeout=20)
        prom.query("sum by (dag) (dagserver_dag_state)")   # the result vector: [{"metric", "value"}]

:func:`require_prometheus` skips the test (or fails it under ``DAGSERVER_REQUIRE_SERVICES=1``)
when the binary is absent; ``make services`` installs the Debian package.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.services import unavailable
from tests.support.supervised import free_port
from tests.support.waiting import wait_until

DEBIAN_PROMETHEUS = Path("/usr/bin/prometheus")
DEBIAN_PROMTOOL = Path("/usr/bin/promtool")
JOB = "dagserver"
READY_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0


def _binary(debian: Path) -> Path | None:
    """The Debian binary, else one on ``PATH``, else None."""
    if debian.is_file() and os.access(debian, os.X_OK):
        return debian
    found = shutil.which(debian.name)
    return Path(found) if found else None


def require_prometheus() -> Path:
    """The ``prometheus`` binary; skips (fails under CI) without it."""
    binary = _binary(DEBIAN_PROMETHEUS)
    if binary is None:
        unavailable("no prometheus binary (Debian package prometheus: make services)")
        raise AssertionError("unreachable")  # pragma: no cover - unavailable() raises
    return binary


def require_promtool() -> Path:
    """The ``promtool`` binary (same Debian package); skips (fails under CI) without it."""
    binary = _binary(DEBIAN_PROMTOOL)
    if binary is None:
        unavailable("no promtool binary (Debian package prometheus: make services)")
        raise AssertionError("unreachable")  # pragma: no cover - unavailable() raises
    return binary


class PrometheusError(RuntimeError):
    """The HTTP API answered with ``status: error`` (a bad query, for instance)."""


class PrometheusServer:
    """One Prometheus process scraping ``target`` every second, with ``rule_files`` evaluated every second."""

    def __init__(self, folder: Path, target: str, *, rule_files: Sequence[Path] = (),
                 interval: str = "1s") -> None:
        self.folder = folder
        self.target = target
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.interval = interval
        self.config_path = folder / "prometheus.yml"
        self.data_dir = folder / "prometheus-data"
        self.log_path = folder / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def config_text(self) -> str:
        """The generated configuration (YAML; JSON-style quoting keeps every path safe)."""
        rules = "".join(f"  - {json.dumps(str(path))}\n" for path in self.rule_files) or "  []\n"
        return (f"global:\n  scrape_interval: {self.interval}\n  evaluation_interval: {self.interval}\n"
                f"rule_files:\n{rules}"
                f"scrape_configs:\n  - job_name: {JOB}\n    scrape_interval: {self.interval}\n"
                f"    scrape_timeout: {self.interval}\n"
                f"    static_configs:\n      - targets: [{json.dumps(self.target)}]\n")

    # -- starting and stopping ----------------------------------------------------------------------
    def start(self) -> PrometheusServer:
        """Start Prometheus and wait until ``/-/ready`` answers 200; retries when the port was taken."""
        binary = require_prometheus()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [str(binary), f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data_dir}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                    cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            if wait_until(self._ready_or_exited, timeout=READY_TIMEOUT, interval=0.05) and self.process.poll() is None:
                return self
            if self.process.poll() is not None and "address already in use" in self.log():
                continue
            break
        log = self.log()
        self.close()
        raise RuntimeError(f"prometheus did not become ready; its log:\n{log}")

    def _ready_or_exited(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as response:
                return response.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def close(self) -> None:
        """Kill Prometheus' process group (SIGTERM, then SIGKILL) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def log(self) -> str:
        """What Prometheus wrote so far (warnings and errors only)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the HTTP API -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str | list[str]) -> Any:
        """``data`` of a GET on ``/api/v1/PATH``; raises :class:`PrometheusError` on ``status: error``."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=HTTP_TIMEOUT) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400/422/503 carry the error as JSON too
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector: ``[{"metric": {...}, "value": [time, "text"]}]``)."""
        data = self.api("query", query=expr)
        result = data["result"]
        return result if data["resultType"] == "vector" else [{"metric": {}, "value": result}]

    def label_values(self, label: str, match: str) -> list[str]:
        """Values of ``label`` on the series ``match`` selects (what Grafana's ``label_values`` lists)."""
        return list(self.api(f"label/{label}/values", **{"match[]": match}))

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its ``health``, ``lastError``, ``query``, ``annotations``..."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts: ``[{"labels", "annotations", "state": "pending" | "firing", ...}]``."""
        return list(self.api("alerts")["alerts"])
