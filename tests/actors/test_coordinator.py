"""The coordinator actor on its own (``actors/coordinator.py``, SPEC §3 epochs, checkpoints, drain).

A real :class:`CoordinatorActor` runs on a hand-built :class:`DagContext`
(``tests/support/coordination.py``); the root nodes and subscribers it talks to are tiny
recording actors, and the test plays the subscribers, terminals and nodes by telling it
encoded ``Ingest``, ``Ack``, ``State`` and ``Tick`` messages. Every send, dead-letter write
and checkpoint write is also logged in the order the coordinator makes them.

Covered: epoch cutting (at most ``max_records`` records, whole batches, a big batch alone,
at most ``max_inflight`` open, one message per root per epoch, consecutive ``seq``),
in-order completion and what it gives back to the gate, checkpoint epochs (flags, waiting
for every node's state, dead letters then checkpoint then commits), ticks, and the drain.
No sleeps: ``Control.READY`` is asked of every actor as a barrier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.context import COORDINATOR
from actors.messages import (
    FLAG_CHECKPOINT,
    RUN_RECORDS,
    RUN_TICK,
    Commit,
    Control,
    decode_records,
    encode_records,
)
from actors.subscriber import subscriber_actor_name
from graphs.model import DagModel
from graphs.ticks import tick_record
from tests.support.coordination import AUDIT, NODES, NOW, OUT, TIMEOUT, Harness, coordinated_dag
from tests.support.waiting import wait_until


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(dag: DagModel, restore: dict[str, Any] | None = None) -> Harness:
        made.append(Harness(dag, restore))
        return made[-1]

    yield make
    for h in made:
        h.close()
        assert h.failures == [], h.failures  # the coordinator never failed


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"v": i} for i in range(start, start + n)]


# -- cutting epochs -------------------------------------------------------------------------------------------
def test_every_root_gets_exactly_one_message_per_epoch_even_when_empty(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(max_inflight=4))
    h.ingest("a", rows(2))
    h.ingest("b", rows(1))
    ra, rb = h.epochs("ra"), h.epochs("rb")
    assert [(e.epoch, e.flags, e.sender) for e in ra] == [(0, 0, COORDINATOR), (1, 0, COORDINATOR)]
    assert [e.epoch for e in rb] == [0, 1]
    assert h.runs("ra") == [[(0, 2)], []]
    assert h.runs("rb") == [[], [(2, 1)]]
    assert decode_records(ra[0].changes[0][2]) == rows(2)  # the batch is passed on as it came


def test_epochs_hold_whole_batches_up_to_max_records_and_a_big_batch_alone(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(max_records=5, max_inflight=1))
    for subscriber, n in [("a", 1), ("a", 2), ("b", 3), ("a", 3), ("b", 7), ("a", 1), ("a", 1)]:
        h.ingest(subscriber, rows(n))
    h.settle()
    assert len(h.epochs("ra")) == 1  # the first batch went at once; the rest waits for room
    for epoch in range(4):
        h.ack(epoch)
    assert h.runs("ra") == [[(0, 1)], [(1, 2)], [(6, 3)], [], [(16, 1), (17, 1)]]
    assert h.runs("rb") == [[], [(3, 3)], [], [(9, 7)], []]
    # epoch 1: 2 + 3, exactly 5; epoch 2: 3 (the 7 would pass 5); epoch 3: the 7 alone; epoch 4: 1 + 1


def test_seq_numbers_are_consecutive_across_batches_roots_and_ticks(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(max_records=100, max_inflight=1, metronome=True))
    h.ingest("a", rows(1))  # epoch 0, seq 0
    h.ingest("b", rows(3))
    h.tick("clock")
    h.ingest("a", rows(2))
    h.settle()
    h.ack(0, OUT, AUDIT)
    runs = [(run[0], run[1]) for root in h.dag.roots for e in h.epochs(root) for run in e.changes]
    assert sorted(runs) == [(0, RUN_RECORDS), (1, RUN_RECORDS), (4, RUN_TICK), (5, RUN_RECORDS)]


def test_no_more_than_max_inflight_epochs_are_open(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(max_records=1, max_inflight=3))
    for i in range(6):
        h.ingest("a", rows(1, i))
    assert [e.epoch for e in h.epochs("ra")] == [0, 1, 2]
    assert h.stats.epochs_open == 3
    h.ack(1)  # out of order: epoch 0 is still open, so is every later one
    assert [e.epoch for e in h.epochs("ra")] == [0, 1, 2]
    h.ack(0)
    assert [e.epoch for e in h.epochs("ra")] == [0, 1, 2, 3, 4]
    assert h.stats.epochs_open == 3


# -- completing epochs ----------------------------------------------------------------------------------------
def test_epochs_complete_in_order_and_give_their_records_and_bytes_back(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(max_records=10, max_inflight=3))
    sizes = [h.ingest("a", rows(2)), h.ingest("b", rows(3)), h.ingest("a", rows(4))]
    h.settle()
    assert (h.gate.backlog, h.gate.bytes_in_flight) == (9, sum(sizes))
    h.ack(2)
    h.ack(1)
    h.settle()
    assert h.gate.released == [] and h.stats.epochs_completed == 0
    h.ack(0)
    h.settle()
    assert h.gate.released == [(2, sizes[0]), (3, sizes[1]), (4, sizes[2])]
    assert (h.gate.backlog, h.gate.bytes_in_flight) == (0, 0)
    assert (h.stats.epochs_completed, h.stats.epochs_open, h.stats.epoch_latency.count) == (3, 0, 3)


def test_an_epoch_waits_for_every_terminal(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(metronome=True))
    h.ingest("a", rows(1))
    h.ack(0, OUT)
    h.settle()
    assert h.stats.epochs_completed == 0
    h.ack(0, AUDIT)
    h.settle()
    assert h.stats.epochs_completed == 1 and h.gate.released == [(1, len(encode_records(rows(1))))]


def test_a_batch_of_only_rejected_records_moves_the_position(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=1))
    h.ingest("a", [], position=17)  # the subscriber rejected everything it read
    assert h.runs("ra") == [[]] and h.epochs("ra")[0].flags == FLAG_CHECKPOINT
    h.ack(0)
    h.states(0)
    assert [c["positions"] for c in h.written()] == [{"a": 17}]


# -- checkpoints ----------------------------------------------------------------------------------------------
def test_every_nth_epoch_is_a_checkpoint_epoch(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=3, max_records=1, max_inflight=7))
    for i in range(7):
        h.ingest("a", rows(1, i))
    assert [e.flags for e in h.epochs("ra")] == [0, 0, 1, 0, 0, 1, 0]
    assert [e.flags for e in h.epochs("rb")] == [0, 0, 1, 0, 0, 1, 0]


def test_a_checkpoint_epoch_completes_once_every_node_sent_its_state(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=2, max_records=1, max_inflight=4))
    for i, subscriber in enumerate("aaba"):
        h.ingest(subscriber, rows(1, i), position=i + 1)
    h.ack(0)
    h.ack(1)
    h.states(1, ("ra", "rb"))
    h.settle()
    assert h.stats.epochs_completed == 1 and h.written() == []
    h.states(1, ("pub",))
    (checkpoint,) = h.written()
    assert checkpoint.pop("counters")["epochs_completed"] == 2  # the counts that go with it (actors/counting.py)
    assert checkpoint == {"dag": "coord", "written_at": NOW, "positions": {"a": 2}, "ticks": {}, "sinks": {},
                          "nodes": {n: {"input": {"n": n}, "output": {}, "latest": None} for n in NODES}}
    h.states(3)  # states may come before the acks
    h.ack(2)
    h.settle()
    assert len(h.written()) == 1
    h.ack(3)
    assert h.written()[1]["positions"] == {"a": 4, "b": 3}  # positions of unflagged epochs carry on
    assert h.stats.epochs_completed == 4


def test_dead_letters_then_the_checkpoint_then_the_commits(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=1))
    h.ingest("a", rows(1), position=5)
    h.settle()
    letter = {"dag": "coord", "node": "pub", "error": "boom", "input": {"v": 0}, "subscriber": "a",
              "record": {"v": 0}, "time": 1.0}
    h.ctx.dead_letter(letter)
    h.ack(0)
    h.states(0)
    h.settle()
    order = [entry[0] if entry[0] != "send" else f"send {type(entry[2]).__name__} to {entry[1]}"
             for entry in h.log if entry[0] != "send" or type(entry[2]) is Commit]
    assert order == ["dead letters", "flush dead letters", "checkpoint", "send Commit to subscriber:a"]
    assert h.log[[e[0] for e in h.log].index("dead letters")][1] == [letter]
    assert h.got[subscriber_actor_name("a")] == [Commit(5)]
    assert h.got[subscriber_actor_name("b")] == []  # nothing read from b: nothing to commit


def test_a_pause_cuts_an_empty_checkpoint_epoch_after_idle_seconds(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=100, max_inflight=4, idle_seconds=0.2))
    h.ingest("a", rows(2), position=2)
    h.ack(0)
    assert wait_until(lambda: len(h.epochs("ra")) == 2, timeout=TIMEOUT)  # the timer fired, nothing pending
    first, idle = h.epochs("ra")
    assert (first.flags, idle.flags, idle.changes) == (0, FLAG_CHECKPOINT, [])
    h.ack(1)
    h.states(1)
    (checkpoint,) = h.written()
    assert checkpoint["positions"] == {"a": 2}
    assert h.got[subscriber_actor_name("a")] == [Commit(2)]


def test_no_idle_checkpoint_while_records_are_pending(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=100, max_records=2, max_inflight=1, idle_seconds=0.05))
    h.ingest("a", rows(2))
    h.ingest("a", rows(2, 2))  # waits: one epoch may be open
    idle = ("send", COORDINATOR, Control.IDLE)
    assert wait_until(lambda: list(h.log).count(idle) >= 2, timeout=TIMEOUT)  # fired, looked again, fired again
    assert not h.coordinator.proxy().checkpoint_due.get()  # input is flowing: every_epochs covers it
    h.ack(0)
    assert [e.flags for e in h.epochs("ra")] == [0, 0]


# -- ticks ----------------------------------------------------------------------------------------------------
def test_a_tick_is_an_ungated_run_for_its_metronome_node(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=2, metronome=True, max_inflight=4))
    h.tick("clock")
    h.tick("clock", {"given": True})
    assert [e.changes for e in h.epochs("clock")] == [[[0, RUN_TICK, tick_record("beat", 1, NOW)]],
                                                      [[1, RUN_TICK, {"given": True}]]]
    assert [e.changes for e in h.epochs("ra")] == [[], []]
    h.ack(0, OUT, AUDIT)
    h.ack(1, OUT, AUDIT)
    h.states(1, (*NODES, "clock"))
    h.settle()
    assert h.gate.released == [(0, 0), (0, 0)]
    assert h.written()[0]["ticks"] == {"clock": 2}


def test_ticks_count_on_from_the_restored_checkpoint(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(metronome=True), restore={"ticks": {"clock": 7}, "positions": {"a": 3}})
    h.tick("clock")
    assert h.epochs("clock")[0].changes == [[0, RUN_TICK, tick_record("beat", 8, NOW)]]


# -- drain ----------------------------------------------------------------------------------------------------
def test_drain_cuts_what_is_pending_into_a_final_checkpoint_epoch(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=10, max_records=10, max_inflight=1))
    h.ingest("a", rows(1), position=1)
    h.ingest("a", rows(2), position=3)
    h.ingest("b", rows(1), position=1)
    assert h.coordinator.ask(Control.DRAIN, timeout=TIMEOUT) is True
    assert len(h.epochs("ra")) == 1 and not h.ctx.drained.is_set()
    h.ack(0)
    assert h.runs("ra") == [[(0, 1)], [(1, 2)]] and h.runs("rb") == [[], [(3, 1)]]
    assert [e.flags for e in h.epochs("ra")] == [0, FLAG_CHECKPOINT]
    h.ack(1)
    h.states(1, ("ra", "rb"))
    h.settle()
    assert not h.ctx.drained.is_set()
    h.states(1, ("pub",))
    assert h.ctx.drained.wait(TIMEOUT)
    assert h.written()[-1]["positions"] == {"a": 3, "b": 1}
    assert h.got[subscriber_actor_name("a")] == [Commit(3)]


def test_drain_with_more_than_one_epoch_pending_flags_only_the_last(harness: Callable[..., Harness]) -> None:
    h = harness(coordinated_dag(every=10, max_records=5, max_inflight=1))
    for i in range(4):
        h.ingest("a", rows(4, i * 4))
    h.coordinator.ask(Control.DRAIN, timeout=TIMEOUT)
    for epoch in range(3):
        h.ack(epoch)
    assert [e.flags for e in h.epochs("ra")] == [0, 0, 0, FLAG_CHECKPOINT]
    h.ack(3)
    h.states(3)
    assert h.ctx.drained.wait(TIMEOUT)


@pytest.mark.parametrize("drain_first", [False, True], ids=["after the last ack", "before the last ack"])
def test_drain_after_unflagged_epochs_cuts_an_empty_checkpoint_epoch(harness: Callable[..., Harness],
                                                                      drain_first: bool) -> None:
    h = harness(coordinated_dag(every=10))
    h.ingest("a", rows(2), position=2)
    if drain_first:
        h.coordinator.ask(Control.DRAIN, timeout=TIMEOUT)
    h.ack(0)
    h.settle()
    assert not h.ctx.drained.is_set()  # epoch 0 was not a checkpoint epoch: the drain is not over
    h.coordinator.ask(Control.DRAIN, timeout=TIMEOUT)
    assert [(e.epoch, e.flags, e.changes) for e in h.epochs("ra")][1:] == [(1, FLAG_CHECKPOINT, [])]
    assert [(e.epoch, e.flags, e.changes) for e in h.epochs("rb")][1:] == [(1, FLAG_CHECKPOINT, [])]
    assert not h.ctx.drained.is_set()
    h.ack(1)
    h.states(1)
    assert h.ctx.drained.wait(TIMEOUT)
    assert h.written()[-1]["positions"] == {"a": 2}


@pytest.mark.parametrize("history", ["nothing read", "right after a checkpoint"])
def test_drain_with_nothing_to_checkpoint_is_drained_at_once(harness: Callable[..., Harness], history: str) -> None:
    h = harness(coordinated_dag(every=1))
    if history != "nothing read":
        h.ingest("a", rows(1))
        h.ack(0)
        h.states(0)
    before = len(h.epochs("ra"))
    assert h.coordinator.ask(Control.DRAIN, timeout=TIMEOUT) is True
    assert h.ctx.drained.is_set()
    assert len(h.epochs("ra")) == before  # no extra epoch
