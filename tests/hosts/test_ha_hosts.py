"""High availability over the network (SPEC §9), scenario 3 of the multi-host tests.

ZooKeeper runs on host ``svc``; the leader on ``a`` and its standby on ``b`` share one
``state_dir`` (the namespaces share the file system, as hosts share a network folder). The
stream DAG copies ``{"id"}`` lines from a file to a file, stamping each with its server.
A's link goes down: it loses ZooKeeper, stops publishing, its session expires and B leads;
not one line stamped by A comes after B's first, nothing is lost, and A, back on the
network, is a standby.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.supervisor.test_ha import SESSION, TAKEOVER, Appender, role, servers_of, stream_dag
from tests.support.hosted import HostedServer, faults
from tests.support.hosts import TestBed
from tests.support.supervised import read_jsonl
from tests.support.waiting import wait_until
from tests.support.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.hosts

SLOW = 90.0
DETECT = 2.0  # a cut link is noticed by missed pings, not by a closed connection


def test_a_cut_off_leader_stops_publishing_before_the_standby_on_another_host_leads(tmp_path: Path) -> None:
    source, out, state = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "state"
    source.touch()
    with TestBed() as bed:
        svc, host_a, host_b = bed.add_host("svc"), bed.add_host("a"), bed.add_host("b")
        zookeeper = ZooKeeperServer(tmp_path / "zookeeper", host=svc.address, port=2181)
        svc.run(zookeeper.start)
        try:
            ha = f'\n[ha]\nzookeeper = "{zookeeper.hosts}"\npath = "/hosts"\nsession_timeout = {SESSION}\n'
            dags = {"stream": stream_dag(source, out)}
            a = HostedServer(host_a, tmp_path / "a", dags, state_dir=state, config_extra=ha, shutdown_timeout=5.0,
                             env={"DAGSERVER_TEST_SERVER": "a"})
            b = HostedServer(host_b, tmp_path / "b", dags, state_dir=state, config_extra=ha, shutdown_timeout=5.0,
                             env={"DAGSERVER_TEST_SERVER": "b"})
            with a:
                assert wait_until(lambda: role(a) == "leader", timeout=SLOW, interval=0.05), a.log()[-3000:]
                with b, Appender(source) as appender:
                    assert wait_until(lambda: role(b) == "standby", timeout=SLOW, interval=0.05), b.log()[-3000:]
                    assert wait_until(lambda: len(read_jsonl(out)) >= 200, timeout=SLOW, interval=0.05), \
                        a.log()[-3000:]
                    cut = time.monotonic()
                    host_a.link_down()
                    assert wait_until(lambda: role(b) == "leader", timeout=SLOW, interval=0.05), b.log()[-3000:]
                    took = time.monotonic() - cut
                    assert wait_until(lambda: servers_of(read_jsonl(out)).count("b") >= 200, timeout=SLOW,
                                      interval=0.05), b.log()[-3000:]
                    host_a.link_up()
                    assert wait_until(lambda: role(a) == "standby", timeout=SLOW, interval=0.05), a.log()[-3000:]
                    written = appender.stop()
                    assert wait_until(lambda: {line["id"] for line in read_jsonl(out)} >= set(range(written)),
                                      timeout=SLOW, interval=0.1), b.log()[-3000:]
                    figures = {"took_s": round(took, 2), "written": written, "faults_a": faults(a),
                               "faults_b": faults(b)}
                    lines = read_jsonl(out)  # before b stops: a leads again then, which is another story
        finally:
            zookeeper.close()
    stamps = servers_of(lines)
    runs: list[list] = []
    for line in lines:  # who wrote, in write order: [server, lines, first id, last id] runs
        if not runs or line["server"] != runs[-1][0]:
            runs.append([line["server"], 0, line["id"], line["id"]])
        runs[-1][1] += 1
        runs[-1][3] = line["id"]
    figures.update(lines=len(lines), runs=runs[:12])
    print(f"scenario 3 (leader's link down): {figures}")
    assert "a" not in stamps[stamps.index("b"):], "the cut-off leader wrote after its successor began"
    assert {line["id"] for line in lines} == set(range(written))
    assert took <= TAKEOVER + DETECT, figures
    assert figures["faults_a"]["worker_restarts"] == figures["faults_b"]["worker_restarts"] == 0, figures
