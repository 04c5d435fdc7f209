"""A DAG run as replicas, with a real ``dagserver serve`` (SPEC §5 replicas, §7 API, §8 labels).

``feed`` makes a tick every 20 ms into ``mem://queue/jobs``; ``work`` (``replicas: 2``) reads
that queue as competing consumers and writes ``mem://queue/done``; ``collect`` writes what is
done to a file. The in-process broker keeps all three on one worker. Each record is processed
by exactly one replica, the API shows one DAG with its ``replicas`` list and summed counters,
the metrics carry a ``replica`` label, and the operator's actions reach every replica.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.supervised import SupervisedServer, read_jsonl
from tests.support.waiting import wait_until


def chain(name: str, source: dict[str, Any], destination: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "subscribers": [{"name": "in", "config": source}],
        "publishers": [{"name": "out", "config": {"destination": destination}}],
        "nodes": [{"name": "take", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "give", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "take", "to_node": "give"}],
        **extra,
    }


def test_replicas_share_a_queue_and_show_as_one_dag(tmp_path: Path) -> None:
    out = tmp_path / "done.jsonl"
    dags = {
        "feed": chain("feed", {"source": "metronome", "interval": 0.02}, "mem://queue/jobs"),
        "work": chain("work", {"source": "mem://queue/jobs"}, "mem://queue/done", replicas=2,
                      epochs={"max_records": 5}),
        "collect": chain("collect", {"source": "mem://queue/done"}, f"file://{out}"),
    }
    with SupervisedServer(tmp_path, dags, workers=2) as server:
        server.wait_dags("running")
        listed = {d["name"]: d for d in server.get_ok("/api/dags")}
        assert [(r["index"], r["state"]) for r in listed["work"]["replicas"]] == [(0, "running"), (1, "running")]
        assert len({r["worker"] for r in listed["work"]["replicas"]}) == 1  # mem:// keeps them together

        def both_took_some() -> bool:
            text = server.metrics()
            taken = re.findall(r'dagserver_records_received_total\{dag="work",subscriber="in",worker="\d+",'
                               r'replica="(\d)"\} (\d+)', text)
            return len(taken) == 2 and all(int(n) > 0 for _, n in taken)

        assert wait_until(both_took_some, timeout=20), server.metrics()
        assert wait_until(lambda: len(read_jsonl(out)) >= 40, timeout=20)

        status, body = server.post("/api/dags/work/stop")
        assert (status, body["state"]) == (200, "stopped"), body
        assert [r["state"] for r in server.dag("work")["replicas"]] == ["stopped", "stopped"]

        def added_up() -> bool:  # stopped, the counters hold still: the one DAG shows both replicas' sum
            per_replica = re.findall(r'dagserver_records_received_total\{dag="work",subscriber="in",worker="\d+",'
                                     r'replica="\d"\} (\d+)', server.metrics())
            shown = server.dag("work")["subscribers"]["in"]["records"]
            return len(per_replica) == 2 and shown == sum(int(n) for n in per_replica) > max(map(int, per_replica))

        assert wait_until(added_up)
        ticks = [line["tick"] for line in read_jsonl(out)]
        assert len(ticks) == len(set(ticks)), "a record was processed by two replicas"
        status, body = server.post("/api/dags/work/start")
        assert status == 200, body
        server.wait_dags("running", ["work"])
        assert [r["state"] for r in server.dag("work")["replicas"]] == ["running", "running"]
        assert {w["id"]: w["dags"] for w in server.workers()}[listed["work"]["worker"]].count("work#1") == 1
