"""Idle checkpoints (SPEC §3 ``checkpoint.idle_seconds``): when input pauses, the epochs completed since
the last checkpoint are checkpointed and their positions committed within ``idle_seconds``, however
far ``checkpoint.every_epochs`` is away. Without them a quiet stream leaves its acknowledgements
pending (a Redis stream entry is then claimed by another replica, a Kafka offset or STOMP ack hangs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from actors.checkpoint import checkpoint_path, read_checkpoint
from actors.runtime import DagRuntime
from adapters.builtin.mem import mem_drain, reset_mem_broker
from graphs.loader import load_dag_dict
from tests.support.waiting import wait_until

IDLE = 0.5  # checkpoint.idle_seconds of the DAG under test
SLACK = 5.0  # what a loaded machine may add to it before the test gives up


class FewRecordsSource:
    """Hands out ``config["count"]`` records in one batch, then nothing; notes each commit it is told."""

    commits: ClassVar[list[tuple[float, int]]] = []
    committed: ClassVar[threading.Event] = threading.Event()

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        self.count = int(config["count"])
        self.next = 0

    def open(self, position: Any) -> None:
        self.next = position or 0

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        out = [{"n": i} for i in range(self.next, min(self.count, self.next + max_records))]
        self.next += len(out)
        return out

    def position(self) -> int:
        return self.next

    def commit(self, position: int) -> None:
        self.commits.append((time.monotonic(), position))
        if position >= self.count:
            self.committed.set()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_mem_broker()
    FewRecordsSource.commits = []
    FewRecordsSource.committed = threading.Event()
    yield
    reset_mem_broker()


def quiet_dag(checkpoint: dict[str, Any]) -> Any:
    return load_dag_dict({
        "name": "quiet",
        "subscribers": [{"name": "in", "config": {
            "source": f"custom://{__name__}.FewRecordsSource", "count": 5}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
        "checkpoint": checkpoint,
    })


def test_a_pause_checkpoints_and_commits_completed_epochs_within_idle_seconds(tmp_path: Path) -> None:
    dag = quiet_dag({"every_epochs": 1000, "idle_seconds": IDLE})
    assert dag.checkpoint_idle == IDLE
    runtime = DagRuntime(dag, state_dir=tmp_path)
    runtime.start()
    try:
        published: list[dict] = []
        assert wait_until(lambda: published.extend(mem_drain("out")) or len(published) == 5, timeout=10)
        done_at = time.monotonic()  # the five records are out: every epoch holding them has completed
        assert FewRecordsSource.committed.wait(IDLE + SLACK), "the pause was not checkpointed nor committed"
        committed_at = FewRecordsSource.commits[-1][0]
        assert committed_at - done_at < IDLE + SLACK
        saved = read_checkpoint(checkpoint_path(tmp_path, "quiet"))
        assert saved is not None and saved["positions"] == {"in": 5}  # durable before the commit
    finally:
        assert runtime.stop(timeout=10)


def test_idle_seconds_defaults_to_one_second() -> None:
    assert quiet_dag({"every_epochs": 3}).checkpoint_idle == 1.0
