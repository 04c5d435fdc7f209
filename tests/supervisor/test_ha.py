"""High availability with a real ZooKeeper (SPEC §9): config, roles, failover, fencing.

Without ZooKeeper: the ``[ha]`` section's defaults and errors; a server without it leads; a
server with it but without kazoo refuses to start, naming the extra; one that cannot reach
ZooKeeper is a standby with its API up.

With one (tests/support/zookeeper.py), two real ``dagserver serve`` processes share one ZooKeeper election path and one
``state_dir``; each has its own bind. The stream DAG copies ``{"id": i}`` lines from one
file to another while the test appends to the input, and stamps each output line with the
server that computed it (``DAGSERVER_TEST_SERVER`` in that server's environment), so the
shared output file tells, line by line and in write order, who wrote what.

* a standby: workers up and idle, API up, every DAG (and replica) ``standby``, ``/healthz``
  role ``standby``, ``ha_leader 0``, operator actions refused with the leader's name; a
  leader that shuts down hands over at once;
* failover: ``kill -9`` of the leader's process group mid-stream: the standby leads within
  ``session_timeout`` + 2 s of the kill and every input line reaches the output;
* a leader cut off from ZooKeeper stops reading and publishing at once, still the leader,
  and goes on where it stopped when ZooKeeper is back within the session timeout;
* fencing: the leader's process group is SIGSTOPped until its session expires and the
  standby leads and publishes; SIGCONT: the old leader goes standby, and not one output line
  of it comes after the first line of the new leader. With the workers' lease disabled this
  fails: the thawed leader reads the input that piled up and publishes it at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.worker import HEARTBEAT_INTERVAL
from supervision.config import HaConfig, ServerConfigError, load_server_config, parse_server_config
from supervisor import Supervisor
from tests.support.services import require_module
from tests.support.supervised import ROOT, SupervisedServer, free_port, metronome_dag, read_jsonl
from tests.support.waiting import wait_until
from tests.support.zookeeper import ZooKeeperServer  # the zookeeper fixture: tests/supervisor/conftest.py

SESSION = 3.0  # [ha] session_timeout of the servers under test
TAKEOVER = SESSION + 2.0  # SPEC §9: a standby leads within session_timeout + 2 s
SLOW = 60.0  # generous timeout for a step on a loaded machine
STAMP = {"name": "stamp", "type": "tests.support.userclasses.ServerStampCalculator"}


def ha_section(zookeeper: ZooKeeperServer, path: str) -> str:
    return f'\n[ha]\nzookeeper = "{zookeeper.hosts}"\npath = "{path}"\nsession_timeout = {SESSION}\n'


def stream_dag(source: Path, destination: Path) -> dict[str, Any]:
    """``in`` (file) -> ``ingest`` (stamps the server) -> ``publish`` -> ``out`` (file)."""
    return {
        "name": "stream",
        "checkpoint": {"every_epochs": 3},
        "epochs": {"max_records": 20},
        "calculators": [STAMP],
        "subscribers": [{"name": "in", "config": {"source": f"file://{source}"}}],
        "publishers": [{"name": "out", "config": {"destination": f"file://{destination}"}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "stamp"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
    }


class Appender:
    """Appends ``{"id": i}`` lines to a file from a thread, ``per_round`` every ``interval`` seconds."""

    def __init__(self, path: Path, per_round: int = 20, interval: float = 0.05) -> None:
        self.path, self.per_round, self.interval = path, per_round, interval
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Appender:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            lines = "".join(json.dumps({"id": self.written + i}) + "\n" for i in range(self.per_round))
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(lines)
            self.written += self.per_round

    def stop(self) -> int:
        """Stop appending; how many lines were written."""
        self._stop.set()
        self._thread.join(10)
        return self.written


def role(server: SupervisedServer) -> str | None:
    try:
        _status, body = server.request("GET", "/healthz", timeout=2.0)
    except OSError:
        return None
    return body.get("role") if isinstance(body, dict) else None


def endpoint_states(server: SupervisedServer) -> tuple[str, str]:
    """The stream DAG's source and sink status on ``server`` (its worker's view, not the role's)."""
    details = server.dag("stream")
    return details["subscribers"]["in"].get("status", ""), details["publishers"]["out"].get("status", "")


def servers_of(lines: list[dict[str, Any]]) -> list[str]:
    return [line.get("server", "") for line in lines]


@contextlib.contextmanager
def leader_and_standby(tmp_path: Path, zookeeper: ZooKeeperServer, election: str, dags: dict[str, Any],
                       **settings: Any) -> Iterator[tuple[SupervisedServer, SupervisedServer]]:
    """Server ``a`` (started first: it leads) and ``b`` (its standby), one state_dir, one election path."""
    state = tmp_path / "state"
    a = SupervisedServer(tmp_path / "a", dags, state_dir=state, config_extra=ha_section(zookeeper, election),
                         env={"DAGSERVER_TEST_SERVER": "a"}, **settings)
    b = SupervisedServer(tmp_path / "b", dags, state_dir=state, config_extra=ha_section(zookeeper, election),
                         env={"DAGSERVER_TEST_SERVER": "b"}, **settings)
    with a:
        assert wait_until(lambda: role(a) == "leader", timeout=SLOW, interval=0.05), a.log()[-3000:]
        with b:
            assert wait_until(lambda: role(b) == "standby" and b.get_ok("/healthz")["ha"]["zookeeper"] == "connected",
                              timeout=SLOW, interval=0.05), b.log()[-3000:]
            yield a, b


# -- config -------------------------------------------------------------------------------------------
def test_the_ha_section_is_read_with_defaults(tmp_path: Path) -> None:
    assert parse_server_config({}).ha is None
    assert parse_server_config({"ha": {"zookeeper": "zk1:2181,zk2:2181"}}).ha == \
        HaConfig("zk1:2181,zk2:2181", "/dagserver", 4.0)
    path = tmp_path / "sup.toml"
    path.write_text('[ha]\nzookeeper = "127.0.0.1:2181"\npath = "/prod/dags"\nsession_timeout = 6.5\n')
    assert load_server_config(str(path)).ha == HaConfig("127.0.0.1:2181", "/prod/dags", 6.5)


@pytest.mark.parametrize(("section", "expected"), [
    ({"zookeper": "zk:2181"}, ["sup.toml: ha.zookeper: unknown key (did you mean 'zookeeper'?)",
                               'sup.toml: ha.zookeeper: missing: the ZooKeeper servers, e.g. zookeeper = '
                               '"127.0.0.1:2181"']),
    ({"zookeeper": "zk"}, ['sup.toml: ha.zookeeper: must be HOST:PORT[,HOST:PORT...], e.g. "zk1:2181,zk2:2181" '
                           "(got 'zk')"]),
    ({"zookeeper": "zk:2181,zk2:99999"}, ["sup.toml: ha.zookeeper: must be HOST:PORT[,HOST:PORT...], e.g. "
                                          "\"zk1:2181,zk2:2181\" (got 'zk:2181,zk2:99999')"]),
    ({"zookeeper": "zk:2181", "path": "dagserver/"},
     ["sup.toml: ha.path: must be a ZooKeeper path like \"/dagserver\" (leading /, no trailing /) (got 'dagserver/')"]),
    ({"zookeeper": "zk:2181", "session_timeout": 0.5},
     ["sup.toml: ha.session_timeout: must be a number of seconds, at least 1 (e.g. 4; a standby takes over within "
      "it + 2 s) (got 0.5)"]),
    ({"zookeeper": "zk:2181", "session_timeout": "4"},
     ["sup.toml: ha.session_timeout: must be a number of seconds, at least 1 (e.g. 4; a standby takes over within "
      "it + 2 s) (got '4')"]),
])
def test_ha_config_errors_name_the_file_key_value_and_a_fix(section: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ServerConfigError) as caught:
        parse_server_config({"ha": section}, "sup.toml")
    assert str(caught.value).splitlines() == expected


def test_an_ha_that_is_not_a_table_is_an_error() -> None:
    with pytest.raises(ServerConfigError, match=r'sup.toml: ha: must be a table: \[ha\] with zookeeper = '):
        parse_server_config({"ha": "zk:2181"}, "sup.toml")


def test_without_ha_the_server_is_its_own_leader() -> None:
    supervisor = Supervisor(parse_server_config({"workers": 1, "dags": []}))  # workers never started
    assert supervisor.health()["role"] == "leader"
    assert "ha" not in supervisor.health()
    assert "dagserver_ha_leader 1\n" in supervisor.metrics_text().decode()


def test_without_kazoo_an_ha_config_is_refused_naming_the_extra(tmp_path: Path) -> None:
    config = tmp_path / "sup.toml"
    config.write_text(f'workers = 1\ndags = []\nstate_dir = "{tmp_path}/state"\nusers = "{tmp_path}/users.json"\n'
                      '[ha]\nzookeeper = "127.0.0.1:1"\n')
    hide_kazoo = "import sys, supervisor; sys.modules['kazoo'] = None; sys.exit(supervisor.main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", hide_kazoo, "serve", "-c", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=SLOW)
    assert result.returncode == 2, result.stderr
    assert f"{config}: [ha] needs the Python package kazoo: pip install 'dagserver[zookeeper]'" in result.stderr


def test_a_server_that_cannot_reach_zookeeper_is_a_standby_with_its_api_up(tmp_path: Path) -> None:
    require_module("kazoo", "zookeeper")
    nobody = f'\n[ha]\nzookeeper = "127.0.0.1:{free_port()}"\nsession_timeout = {SESSION}\n'
    with SupervisedServer(tmp_path, {"clock": metronome_dag("clock", tmp_path / "out.jsonl")}, workers=1,
                          config_extra=nobody) as server:
        health = server.get_ok("/healthz")
        assert (health["role"], health["ha"]["leader"]) == ("standby", None), health
        assert health["ha"]["zookeeper"] in ("connecting", "lost", "suspended"), health
        assert server.states() == {"clock": "standby"}
        assert "no leader is known" in server.dag("clock")["reason"]
        assert "dagserver_ha_leader 0\n" in server.metrics()


# -- with ZooKeeper -------------------------------------------------------------------------------------
def test_a_standby_keeps_its_workers_idle_and_shows_every_dag_standby(tmp_path: Path,
                                                                      zookeeper: ZooKeeperServer) -> None:
    clock = metronome_dag("clock", tmp_path / "clock.jsonl", interval=0.1)
    twice = {**metronome_dag("twice", tmp_path / "twice.jsonl"), "replicas": 2,  # replicas share a mem:// queue
             "subscribers": [{"name": "clock", "config": {"source": "mem://queue/standby-ticks"}}]}
    feed = {**metronome_dag("feed", tmp_path / "unused.jsonl", interval=0.1),
            "publishers": [{"name": "sink", "config": {"destination": "mem://queue/standby-ticks"}}]}
    dags = {"clock": clock, "twice": twice, "feed": feed}
    with leader_and_standby(tmp_path, zookeeper, "/standby-test", dags) as (a, b):
        a.wait_dags("running")
        assert "dagserver_ha_leader 1\n" in a.metrics()
        health = b.get_ok("/healthz")
        assert (health["status"], health["role"], health["ha"]["role"]) == ("ok", "standby", "standby"), health
        assert health["ha"]["leader"].endswith(f"127.0.0.1:{a.port}"), health
        assert b.states() == {"clock": "standby", "twice": "standby", "feed": "standby"}
        assert [r["state"] for r in b.dag("twice")["replicas"]] == ["standby", "standby"]
        assert f"127.0.0.1:{a.port} leads" in b.dag("clock")["reason"]
        assert all(w["alive"] for w in b.workers())  # workers up, ready to take over
        metrics = b.metrics()
        assert "dagserver_ha_leader 0\n" in metrics
        states = re.findall(r'^dagserver_dag_state\{dag="(\w+)",worker="\d+"(,replica="\d")?,state="(\w+)"\} (\d)$',
                            metrics, re.MULTILINE)
        assert sorted((dag, replica) for dag, replica, state, value in states if value == "1") == \
            [("clock", ""), ("feed", ""), ("twice", ',replica="0"'), ("twice", ',replica="1"')], metrics
        assert {state for _dag, _replica, state, value in states if value == "1"} == {"standby"}
        assert "dagserver_records_received_total{" not in metrics  # nothing ran here
        status, body = b.post("/api/dags/clock/stop")
        assert status == 409 and "standby" in body["error"] and f"127.0.0.1:{a.port}" in body["error"], body
        assert wait_until(lambda: len(read_jsonl(tmp_path / "clock.jsonl")) >= 3, timeout=SLOW)
        # A leader that shuts down leaves the election after checkpointing: no session timeout to wait for.
        stopped = time.monotonic()
        assert a.terminate(SLOW) == 0, a.log()[-3000:]
        assert wait_until(lambda: role(b) == "leader", timeout=SLOW, interval=0.02), b.log()[-3000:]
        assert time.monotonic() - stopped < TAKEOVER
        b.wait_dags("running", timeout=SLOW)
        assert "dagserver_ha_leader 1\n" in b.metrics()


def test_failover_after_kill_9_of_the_leader_loses_no_input(tmp_path: Path, zookeeper: ZooKeeperServer) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.touch()
    with leader_and_standby(tmp_path, zookeeper, "/failover-test", {"stream": stream_dag(source, out)},
                            shutdown_timeout=5.0) as (a, b), Appender(source) as appender:
        assert wait_until(lambda: len(read_jsonl(out)) >= 200, timeout=SLOW, interval=0.02), a.log()[-3000:]
        os.killpg(a.pid, signal.SIGKILL)  # the whole process group: supervisor and workers
        killed = time.monotonic()
        assert wait_until(lambda: role(b) == "leader", timeout=SLOW, interval=0.02), b.log()[-3000:]
        took = time.monotonic() - killed
        assert took <= TAKEOVER, f"the standby took {took:.2f}s to lead (at most {TAKEOVER:g}s)"
        b.wait_dags("running", timeout=SLOW)
        # the stream goes on through the new leader while input keeps coming
        assert wait_until(lambda: servers_of(read_jsonl(out)).count("b") >= 200, timeout=SLOW, interval=0.05), \
            b.log()[-3000:]
        written = appender.stop()
        assert wait_until(lambda: {line["id"] for line in read_jsonl(out)} >= set(range(written)),
                          timeout=SLOW, interval=0.1), b.log()[-3000:]
    lines = read_jsonl(out)
    ids = {line["id"] for line in lines}
    assert ids == set(range(written)), f"lost {sorted(set(range(written)) - ids)[:20]}"
    # the file sink writes each line once (SPEC §12): the new leader cut what the old one wrote after
    # their last checkpoint back, so some of the old leader's lines are now the new one's
    assert len(lines) == written, f"{len(lines) - written} lines written twice"
    stamps = servers_of(lines)
    assert stamps.count("a") >= 1 and stamps.count("b") >= 200
    assert "a" not in stamps[stamps.index("b"):], "the killed leader wrote after its successor began"


def test_a_frozen_leader_is_fenced_and_writes_nothing_after_its_successor_started(
        tmp_path: Path, zookeeper: ZooKeeperServer) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.touch()
    # heartbeat_timeout longer than the freeze: the thawed supervisor must not take its workers for
    # hung and kill them, which would hide whether the fencing itself stops them.
    with leader_and_standby(tmp_path, zookeeper, "/fencing-test", {"stream": stream_dag(source, out)},
                            shutdown_timeout=5.0, heartbeat_timeout=120.0) as (a, b), Appender(source) as appender:
        assert wait_until(lambda: len(read_jsonl(out)) >= 200, timeout=SLOW, interval=0.02), a.log()[-3000:]
        os.killpg(a.pid, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            assert wait_until(lambda: role(b) == "leader", timeout=SLOW, interval=0.02), b.log()[-3000:]
            took = time.monotonic() - frozen
            assert took <= TAKEOVER, f"the standby took {took:.2f}s to lead (at most {TAKEOVER:g}s)"
            assert wait_until(lambda: servers_of(read_jsonl(out)).count("b") >= 100, timeout=SLOW, interval=0.05), \
                b.log()[-3000:]
        finally:
            os.killpg(a.pid, signal.SIGCONT)  # thawed: input piled up meanwhile, an unfenced leader would read it
        assert wait_until(lambda: role(a) == "standby", timeout=SLOW, interval=0.02), a.log()[-3000:]
        assert a.states() == {"stream": "standby"}
        # its DAG really stopped (a fenced one would only idle): source and sink closed
        assert wait_until(lambda: endpoint_states(a) == ("closed", "closed"), timeout=SLOW, interval=0.02), \
            (endpoint_states(a), a.log()[-3000:])
        assert "is a standby now" in a.log()
        b_lines = servers_of(read_jsonl(out)).count("b")
        assert wait_until(lambda: servers_of(read_jsonl(out)).count("b") >= b_lines + 200, timeout=SLOW,
                          interval=0.05), b.log()[-3000:]
        written = appender.stop()
        assert wait_until(lambda: {line["id"] for line in read_jsonl(out)} >= set(range(written)),
                          timeout=SLOW, interval=0.1), b.log()[-3000:]
        assert role(b) == "leader" and role(a) == "standby"
    stamps = servers_of(read_jsonl(out))
    first_b = stamps.index("b")
    late = [i for i, stamp in enumerate(stamps) if stamp == "a" and i > first_b]
    assert not late, f"the fenced leader wrote {len(late)} lines after its successor started (first at {late[0]})"
    assert {line["id"] for line in read_jsonl(out)} == set(range(written))


def test_a_leader_cut_off_from_zookeeper_stops_reading_and_resumes_in_the_same_session(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.touch()
    with ZooKeeperServer(tmp_path / "zookeeper") as zk:  # its own: this test takes it away
        # a long session: the outage below stays well inside it, so the session survives
        a = SupervisedServer(tmp_path / "a", {"stream": stream_dag(source, out)}, shutdown_timeout=5.0,
                             config_extra=ha_section(zk, "/outage-test").replace(f"= {SESSION}", "= 10"),
                             env={"DAGSERVER_TEST_SERVER": "a"})
        with a, Appender(source) as appender:
            assert wait_until(lambda: role(a) == "leader", timeout=SLOW, interval=0.05), a.log()[-3000:]
            assert wait_until(lambda: len(read_jsonl(out)) >= 100, timeout=SLOW, interval=0.02), a.log()[-3000:]
            zk.stop()
            assert wait_until(lambda: a.get_ok("/healthz")["ha"]["zookeeper"] == "suspended", timeout=SLOW,
                              interval=0.02), a.log()[-3000:]

            def received() -> int:
                subscribers = a.dag("stream")["subscribers"]
                assert "in" in subscribers, ("the DAG's figures are gone: its worker was restarted while fenced",
                                             a.workers(), a.log()[-4000:])
                return int(subscribers["in"]["records"])

            def appended_over_heartbeats(more: int) -> None:
                """Input keeps coming (the leader would read it if it could) for ``more`` lines and at least
                two heartbeats, so the figures shown afterwards are from after everything before."""
                target, until = appender.written + more, time.monotonic() + 2 * HEARTBEAT_INTERVAL
                assert wait_until(lambda: appender.written >= target and time.monotonic() >= until, timeout=SLOW,
                                  interval=0.02)

            # the DAG was deployed when this server became the leader, moments ago: its first figures
            # may still be on their way from the worker (a heartbeat every 0.5 s)
            assert wait_until(lambda: "in" in a.dag("stream")["subscribers"], timeout=SLOW, interval=0.05), \
                (a.workers(), a.log()[-4000:])
            appended_over_heartbeats(200)
            taken, published = received(), len(read_jsonl(out))
            appended_over_heartbeats(200)
            assert (received(), len(read_jsonl(out))) == (taken, published), "read or published while fenced"
            assert role(a) == "leader" and a.states() == {"stream": "running"}  # fenced, not demoted

            zk.start()  # same port, same data: the session is still there
            assert wait_until(lambda: a.get_ok("/healthz")["ha"]["zookeeper"] == "connected", timeout=SLOW,
                              interval=0.02), a.log()[-3000:]
            assert wait_until(lambda: len(read_jsonl(out)) > published, timeout=SLOW, interval=0.02), \
                a.log()[-3000:]
            written = appender.stop()
            assert wait_until(lambda: {line["id"] for line in read_jsonl(out)} >= set(range(written)),
                              timeout=SLOW, interval=0.1), a.log()[-3000:]
            assert role(a) == "leader"
            assert "is a standby now" not in a.log()
