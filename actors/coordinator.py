"""The coordinator actor: owns the DAG's ingress order and its epochs (SPEC §3).

It numbers incoming records (``seq``), cuts epochs of at most ``epochs.max_records``
records while fewer than ``epochs.max_inflight`` are open, sends every root one message
per epoch, and closes an epoch once every terminal actor (each publisher, and each node
with neither children nor publishers) has acknowledged it. Epochs complete in order.

Every ``checkpoint.every_epochs`` epochs one epoch is flagged: every node reports its
state for it, and on completion the coordinator hands the checkpoint to its saver
(:mod:`actors.saver`), which flushes the dead letters, writes the checkpoint and only then
tells the subscribers to commit their sources' positions, on a thread of its own. A
high-availability server whose lease has run out (:mod:`actors.lease`) skips all three:
another server may own the shared ``state_dir`` by now.

Idle checkpoints: when input pauses, epochs cut since the last checkpoint epoch wait at
most ``checkpoint.idle_seconds`` for one. The first such epoch arms a timer; when it fires
(``Control.IDLE``) with them still uncovered and nothing pending, an empty checkpoint epoch
is cut at once (while records are pending, input still flows: ``every_epochs`` covers it,
and the timer looks again later). So a pause commits what was read (Kafka offsets, STOMP
acks, stream XACKs) instead of leaving it pending until traffic resumes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.context import COORDINATOR, DagActor, DagContext
from actors.counting import checkpoint_counters, nodes_counted, subscribers_counted
from actors.messages import (
    FLAG_CHECKPOINT,
    RUN_RECORDS,
    RUN_TICK,
    Ack,
    Control,
    Epoch,
    Ingest,
    State,
    Tick,
    decode,
    encode,
)
from actors.node import node_actor_name
from actors.publisher import publisher_actor_name
from actors.saver import CheckpointSaver
from graphs.ticks import tick_record

log = logging.getLogger("dagserver.coordinator")


@dataclass
class Batch:
    """One subscriber read (its records still encoded), or one MetronomeNode tick."""

    subscriber: str | None  # None: a tick
    count: int
    payload: Any  # encoded record list, or the tick record
    position: Any
    arrived: float
    tick_node: str | None = None
    counted: Any = None  # the subscriber's counts with this batch (actors/counting.py)


@dataclass
class OpenEpoch:
    acks: set[str]
    gated: int  # records holding ingress-gate slots
    gated_bytes: int  # bytes those records were charged to the gate
    started: float
    flags: int
    positions: dict[str, Any]
    states: dict[str, Any] = field(default_factory=dict)
    counted: dict[str, Any] = field(default_factory=dict)  # per subscriber, as positions: its counts
    node_counted: dict[str, Any] = field(default_factory=dict)  # per node, with its state: its counts
    end_seq: int = 0  # the first seq after this epoch's records
    sinks: dict[str, Any] = field(default_factory=dict)  # per publisher: its sink's checkpoint_state()


class CoordinatorActor(DagActor):
    def __init__(self, ctx: DagContext, write_checkpoint: Callable[[dict], None] | None) -> None:
        super().__init__(ctx, COORDINATOR)
        dag = ctx.dag
        self.dag = dag
        self.saver = ctx.saver = CheckpointSaver(ctx, write_checkpoint,
                                                 on_saved=lambda: ctx.send(COORDINATOR, Control.SAVED))
        self.roots = dag.roots
        self.root_of = {dag.nodes[r].subscriber: r for r in self.roots if dag.nodes[r].subscriber}
        self.terminals = frozenset(
            [publisher_actor_name(p) for p in dag.publishers if dag.publisher_feeds(p)]
            + [node_actor_name(n) for n in dag.nodes
               if not dag.children[n] and not dag.nodes[n].publishers]
        )
        self.pending: deque[Batch] = deque()
        self.pending_records = 0
        self.open: dict[int, OpenEpoch] = {}
        self.next_epoch = 0
        self.next_seq = 0
        self.since_checkpoint = 0
        self.checkpoint_due = False  # idle_seconds passed with epochs not covered by a checkpoint epoch
        self.idle_timer: threading.Timer | None = None
        self.ticks: dict[str, int] = {}
        restore = ctx.restore or {}
        self.positions: dict[str, Any] = dict(restore.get("positions") or {})
        # the counts that go with the positions and node states, saved in each checkpoint beside them
        self.counted = subscribers_counted(restore.get("counters"))
        self.node_counted = nodes_counted(restore.get("counters"))
        self.ticks.update(restore.get("ticks") or {})
        self.sinks: dict[str, Any] = dict(restore.get("sinks") or {})  # per publisher, as of the last checkpoint
        self.draining = False
        self.ingress = ctx.ingress  # None unless the DAG keeps dead letters: then seq -> record for them

    # -- messages ---------------------------------------------------------------------------------
    def receive(self, message: Any) -> Any:
        if message == Control.DRAIN:
            self.draining = True
            self._cut()
            self._check_drained()
            return True
        if message == Control.SAVED:  # a checkpoint epoch waiting for the write before it may complete
            self._complete()
            self._cut()
            return None
        if message == Control.IDLE:  # the idle timer fired: epochs waited idle_seconds for a checkpoint
            self.idle_timer = None
            if self.since_checkpoint and self.pending:  # input still flowing: every_epochs covers it
                self._arm_idle_timer()
            elif self.since_checkpoint:  # input paused: checkpoint what was cut, at once
                self.checkpoint_due = True
                self._cut()
            return None
        msg = decode(message)
        if type(msg) is Ingest:
            self.pending.append(Batch(msg.subscriber, msg.count, msg.records, msg.position, self.ctx.clock(),
                                      counted=msg.counted))
            self.pending_records += msg.count
        elif type(msg) is Ack:
            self.open[msg.epoch].acks.discard(msg.sender)
            if msg.sink_state is not None:
                self.open[msg.epoch].sinks[msg.sender.removeprefix("publisher:")] = msg.sink_state
            self._complete()
        elif type(msg) is State:
            self.open[msg.epoch].states[msg.node] = msg.state
            if msg.counted is not None:
                self.open[msg.epoch].node_counted[msg.node] = msg.counted
            self._complete()
        elif type(msg) is Tick:
            self._tick(msg.node, msg.record)
        self._cut()
        self.ctx.stats.ingress_backlog = self.ctx.gate.backlog
        return None

    def _tick(self, node: str, record: dict | None) -> None:
        n = self.ticks.get(node, 0) + 1
        self.ticks[node] = n
        if record is None:
            message = str(self.dag.nodes[node].config.get("message", "tick"))
            record = tick_record(message, n, self.ctx.clock())
        self.pending.append(Batch(None, 1, record, None, self.ctx.clock(), tick_node=node))
        self.pending_records += 1

    # -- cutting epochs -----------------------------------------------------------------------------
    def _cut(self) -> None:
        while len(self.open) < self.dag.max_inflight and (
            self.pending or ((self.draining or self.checkpoint_due) and self.since_checkpoint
                             and not self._flag_open())
        ):
            self._cut_one()

    def _arm_idle_timer(self) -> None:
        """Tell this actor ``Control.IDLE`` in ``checkpoint.idle_seconds`` (one timer at a time)."""
        if self.idle_timer is None and not self.ctx.tearing_down.is_set():
            timer = threading.Timer(self.dag.checkpoint_idle, self.ctx.send, (COORDINATOR, Control.IDLE))
            timer.daemon = True
            timer.name = f"idle-checkpoint-{self.dag.name}"
            self.idle_timer = timer
            timer.start()

    def on_teardown(self, failed: bool) -> None:
        timer, self.idle_timer = self.idle_timer, None
        if timer is not None:
            timer.cancel()

    def _flag_open(self) -> bool:
        return any(e.flags & FLAG_CHECKPOINT for e in self.open.values())

    def _cut_one(self) -> None:
        """One epoch of whole batches: at most ``max_records`` records, unless one batch is larger.

        Batches are never split, so every epoch ends where a source position is known and
        any epoch can be a checkpoint epoch.
        """
        limit = self.dag.max_records
        flagged = self.since_checkpoint + 1 >= self.dag.checkpoint_every or self.checkpoint_due or (
            self.draining and self.pending_records <= limit)
        runs: dict[str, list] = {root: [] for root in self.roots}
        positions: dict[str, Any] = {}
        counted: dict[str, Any] = {}
        taken = gated = gated_bytes = 0
        started = self.ctx.clock()
        pending = self.pending
        capture = self.ctx.capture
        captured: list | None = [] if capture is not None and capture.taking else None
        while pending and (not taken or taken + pending[0].count <= limit):
            batch = pending.popleft()
            seq = self.next_seq
            if captured is not None:
                captured.append((seq, batch))
            self.next_seq += batch.count
            taken += batch.count
            started = min(started, batch.arrived)
            if self.ingress is not None:
                self.ingress.add(seq, None if batch.tick_node is not None else batch.subscriber, batch.count,
                                 batch.payload)
            if batch.tick_node is not None:
                runs[batch.tick_node].append([seq, RUN_TICK, batch.payload])
                continue
            gated += batch.count
            gated_bytes += len(batch.payload)
            if batch.position is not None:
                positions[batch.subscriber] = batch.position  # type: ignore[index]
            if batch.counted is not None:
                counted[batch.subscriber] = batch.counted  # type: ignore[index]
            root = self.root_of.get(batch.subscriber)  # type: ignore[arg-type]
            if root is not None and batch.count:
                runs[root].append([seq, RUN_RECORDS, batch.payload])
        self.pending_records -= taken
        epoch = self.next_epoch
        self.next_epoch += 1
        flags = FLAG_CHECKPOINT if flagged else 0
        self.since_checkpoint = 0 if flagged else self.since_checkpoint + 1
        if flagged:
            self.checkpoint_due = False
        else:
            self._arm_idle_timer()
        self.open[epoch] = OpenEpoch(set(self.terminals), gated, gated_bytes, started, flags, positions,
                                     counted=counted, end_seq=self.next_seq)
        self.ctx.stats.epochs_open = len(self.open)
        if captured:
            capture.take(epoch, captured)  # before the epoch leaves: its outputs find the capture ready
        for root, root_runs in runs.items():
            self.ctx.send(node_actor_name(root), encode(Epoch(epoch, flags, root_runs, COORDINATOR)))
        self._complete()

    # -- completing epochs --------------------------------------------------------------------------
    def _complete(self) -> None:
        """Close the oldest epochs whose every terminal acked. A checkpoint epoch also waits for every
        node's state, and for the checkpoint before it to be durable; its own checkpoint is then
        handed to the saver, and later epochs complete while it is written. So the durable
        checkpoint is at most two intervals behind: a crash replays at most that and what was in
        flight, while an fsync never holds up the records behind it."""
        stats = self.ctx.stats
        while self.open:
            epoch = next(iter(self.open))
            info = self.open[epoch]
            if info.acks:
                break
            if info.flags & FLAG_CHECKPOINT and (len(info.states) < len(self.dag.nodes) or not self.saver.idle()):
                break  # Control.SAVED comes when the saver is done
            del self.open[epoch]
            self.ctx.gate.release(info.gated, info.gated_bytes)
            stats.epochs_completed += 1
            stats.epochs_open = len(self.open)
            stats.epoch_latency.observe(max(0.0, self.ctx.clock() - info.started))
            self.positions.update(info.positions)
            self.counted.update(info.counted)
            self.node_counted.update(info.node_counted)
            self.sinks.update(info.sinks)
            if self.ctx.capture is not None:
                self.ctx.capture.completed(epoch)
            if self.ingress is not None:
                self.ingress.forget_below(info.end_seq)
            if info.flags & FLAG_CHECKPOINT:
                self._checkpoint(info)
        self._check_drained()

    def _checkpoint(self, info: OpenEpoch) -> None:
        """Hand the checkpoint to the saver: it flushes the dead letters, writes it and commits the
        positions it covers on its own thread, while epochs go on (actors/saver.py)."""
        self.saver.submit({"dag": self.dag.name, "written_at": self.ctx.clock(), "positions": dict(self.positions),
                           "nodes": info.states, "ticks": dict(self.ticks),
                           "sinks": dict(self.sinks),
                           "counters": checkpoint_counters(self.ctx.stats, self.counted, self.node_counted)})

    def _check_drained(self) -> None:
        if self.draining and not self.pending and not self.open and not self.since_checkpoint:
            self.saver.when_idle(self.ctx.drained.set)  # drained once the last checkpoint is written
