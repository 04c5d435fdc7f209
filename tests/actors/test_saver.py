"""Checkpoints written beside the coordinator (``actors/saver.py``, SPEC §3).

A real coordinator on the test harness (``tests/support/coordination.py``) whose checkpoint
write can be held or made to fail. Covered: epochs go on completing while a write is held,
up to the next checkpoint epoch, which waits for it (the durable checkpoint is at most two
intervals behind), and nothing is committed before; a failing write fails the
coordinator (the DAG restarts from the last checkpoint written) and commits nothing; a
drain is over only once the last checkpoint is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.messages import Commit, Control
from actors.subscriber import subscriber_actor_name
from tests.support.coordination import TIMEOUT, Harness, coordinated_dag


class HeldWrites(Harness):
    """A harness whose checkpoint writes wait for ``release`` (and raise ``fail`` when it is set)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.fail: Exception | None = None
        super().__init__(*args, **kwargs)

    def _write(self, checkpoint: dict[str, Any]) -> None:
        self.entered.release()
        assert self.release.wait(TIMEOUT)
        if self.fail is not None:
            raise self.fail
        super()._write(checkpoint)


@pytest.fixture
def held_writes() -> Iterator[Callable[..., HeldWrites]]:
    """Makes harnesses with held writes on ``coordinated_dag(max_records=1, **settings)``; releases and
    closes them at the end."""
    made: list[HeldWrites] = []

    def make(**settings: Any) -> HeldWrites:
        made.append(HeldWrites(coordinated_dag(max_records=1, **settings)))
        return made[-1]

    yield make
    for h in made:
        h.release.set()
        h.close()


@pytest.fixture
def held(held_writes: Callable[..., HeldWrites]) -> HeldWrites:
    return held_writes(every=1, max_inflight=2)


def complete(h: Harness, epoch: int, flagged: bool = True) -> None:
    """Ack ``epoch``, and send every node's state for it when it is a checkpoint epoch."""
    h.ack(epoch)
    if flagged:
        h.states(epoch)


def commits(h: Harness) -> list[Any]:
    assert h.coordinator.ask(Control.READY, timeout=TIMEOUT)
    assert h.ctx.refs[subscriber_actor_name("a")].ask(Control.READY, timeout=TIMEOUT)
    return h.got[subscriber_actor_name("a")]


def test_epochs_complete_while_a_checkpoint_is_written_up_to_the_next_checkpoint_epoch(
        held_writes: Callable[..., HeldWrites]) -> None:
    h = held_writes(every=3, max_inflight=4)
    for i in range(6):  # epochs 0-5, one record each; 2 and 5 are checkpoint epochs
        h.ingest("a", [{"v": i}], position=i + 1)
    for epoch in (0, 1, 2):
        complete(h, epoch, flagged=epoch == 2)
    assert h.entered.acquire(timeout=TIMEOUT)  # epoch 2's checkpoint is being written, and held
    for epoch in (3, 4, 5):
        complete(h, epoch, flagged=epoch == 5)
    assert h.coordinator.ask(Control.READY, timeout=TIMEOUT)
    # 2, 3 and 4 completed without waiting for the write; 5, the next checkpoint epoch, waits for
    # it, so the durable checkpoint is never more than two intervals behind
    assert h.stats.epochs_completed == 5
    assert commits(h) == []  # nothing is durable yet
    h.release.set()
    h.settle()
    assert h.stats.epochs_completed == 6
    assert [c["positions"] for c in h.written()] == [{"a": 3}, {"a": 6}]
    assert commits(h) == [Commit(3), Commit(6)]
    assert h.failures == []


def test_a_failing_checkpoint_write_fails_the_coordinator_and_commits_nothing(held: HeldWrites) -> None:
    held.fail = OSError("No space left on device")
    held.ingest("a", [{"v": 0}], position=1)
    complete(held, 0)
    held.release.set()
    held.ctx.saver._thread.join(TIMEOUT)
    assert not held.ctx.saver._thread.is_alive()
    assert [(actor, str(exc)) for actor, exc in held.failures] == [("coordinator", "No space left on device")]
    assert commits(held) == []
    held.failures.clear()


def test_a_drain_is_over_only_once_the_last_checkpoint_is_written(held: HeldWrites) -> None:
    held.ingest("a", [{"v": 0}], position=1)
    assert held.coordinator.ask(Control.DRAIN, timeout=TIMEOUT)
    complete(held, 0)
    assert held.entered.acquire(timeout=TIMEOUT)
    assert not held.ctx.drained.wait(0.2)  # the epoch completed, its checkpoint is not written yet
    held.release.set()
    assert held.ctx.drained.wait(TIMEOUT)
    assert [c["positions"] for c in held.written()] == [{"a": 1}]


class ExitingSink:
    """A dead-letter sink whose write calls sys.exit(): user code, like any custom:// sink."""

    uri = "custom://exiting"

    def write_batch(self, letters: list[Any]) -> None:
        raise SystemExit(3)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_dead_letter_sink_that_exits_fails_the_coordinator_instead_of_killing_the_saver_quietly(
        held: HeldWrites) -> None:
    held.ctx.dead_letters.sink = ExitingSink()  # type: ignore[assignment]
    held.ctx.dead_letter({"dag": "coord", "node": "pub", "error": "boom", "input": {}})
    held.ingest("a", [{"v": 0}], position=1)
    complete(held, 0)
    held.ctx.saver._thread.join(TIMEOUT)
    assert not held.ctx.saver._thread.is_alive()
    assert [(actor, str(exc)) for actor, exc in held.failures] == [("coordinator", "SystemExit raised: 3")]
    assert commits(held) == [] and held.written() == []
