"""The publisher actor: writes each epoch's publications to its sink, in order, then acks.

A publisher may be fed by several nodes; it waits for epoch ``e`` from all of them and
publishes by ``(seq, topological position of the node)``, which is the order the
reference evaluator publishes in. The ack tells the coordinator the sink accepted the
epoch; on checkpoint epochs the sink is flushed first, and the ack carries what the checkpoint
keeps of the sink (``Sink.checkpoint_state``, a file's length: SPEC §12), which a restarted
incarnation hands back to the new sink (``Sink.resume_from``) before opening it.

While a sink call runs, the actor is marked busy in the DAG context; a call that takes
longer than the publisher's ``publish_timeout`` fails the actor (SPEC §4, see
:mod:`actors.incarnation`), so the DAG restarts from its checkpoint instead of hanging.

On a high-availability server nothing is written once the leader's lease has run out
(:mod:`actors.lease`): the publisher waits, without acking, until the lease is granted
again or its incarnation is torn down.
"""

from __future__ import annotations

import time
from typing import Any

from actors.alignment import EpochAligner
from actors.context import COORDINATOR, DagActor, DagContext
from actors.lease import LEASE
from actors.messages import FLAG_CHECKPOINT, Ack, Publish, decode, encode
from adapters.base import RejectedRecord, Sink

FENCE_WAIT = 0.05  # seconds between looks at a torn-down incarnation while fenced


def publisher_actor_name(publisher: str) -> str:
    return f"publisher:{publisher}"


class PublisherActor(DagActor):
    def __init__(self, ctx: DagContext, name: str, sink: Sink) -> None:
        super().__init__(ctx, publisher_actor_name(name))
        self.name = name
        self.sink = sink
        feeders = ctx.dag.publisher_feeds(name)
        self.feeders = {node: i for i, node in enumerate(feeders)}
        self.feeder_topo = [ctx.dag.topo_order.index(node) for node in feeders]
        self.stats = ctx.stats.publishers[name]
        self.aligner = EpochAligner(self.feeders)
        self.opened = False

    def on_open(self) -> None:
        resume = ((self.ctx.restore or {}).get("sinks") or {}).get(self.name)
        if resume is not None:
            self.sink.resume_from(resume)
        self.sink.open()
        self.opened = True
        self.stats.status = self.sink.status
        self.ctx.endpoints[self.actor_name] = (self.stats, self.sink)  # its status is kept fresh, even mid-call

    def receive(self, message: Any) -> None:
        msg = decode(message)
        if type(msg) is not Publish:
            return
        epoch, flags, items, node = msg
        for ready, ready_flags, slots in self.aligner.add(epoch, node, flags, items):
            self._publish(ready, ready_flags, slots)
        self.stats.backlog = len(self.aligner.pending)  # epochs waiting for another feeding node

    def _publish(self, epoch: int, flags: int, slots: list[list]) -> None:
        if len(slots) == 1:
            seqs, records = slots[0]
        else:
            topo = self.feeder_topo
            events = [(seq, topo[i], record) for i, (seqs, outs) in enumerate(slots)
                      for seq, record in zip(seqs, outs, strict=True)]
            events.sort(key=lambda event: (event[0], event[1]))
            seqs, records = [event[0] for event in events], [event[2] for event in events]
        sink_state = None
        if records or flags & FLAG_CHECKPOINT:
            if not self._allowed():
                return  # torn down while fenced: the epoch stays unacked, the next leader replays it
            busy = self.ctx.busy
            busy[self.actor_name] = time.monotonic()
            try:
                if records:
                    capture = self.ctx.capture
                    if capture is not None:  # before the write: a sink may keep the list it is given
                        capture.published(self.name, seqs, records)
                    refused = self.sink.write_batch(records)
                    self.stats.add(len(records) - len(refused or ()))
                    if refused:
                        self._refused(refused)
                if flags & FLAG_CHECKPOINT:
                    self.sink.flush()
                    sink_state = self.sink.checkpoint_state()
            except Exception:
                self.stats.errors += 1
                raise
            finally:
                busy.pop(self.actor_name, None)
                self.stats.status = self.sink.status
        self.ctx.send(COORDINATOR, encode(Ack(epoch, self.actor_name, sink_state)))

    def _allowed(self) -> bool:
        """Wait while this server is fenced (SPEC §9); False if the incarnation is torn down meanwhile."""
        while not LEASE.wait(FENCE_WAIT):
            if self.ctx.tearing_down.is_set():
                return False
        return True

    def _refused(self, refused: list[RejectedRecord]) -> None:
        """Records the sink could never write: publish errors, dead-lettered (the DAG goes on)."""
        self.stats.errors += len(refused)
        for item in refused:
            self.ctx.dead_letter({"dag": self.ctx.dag.name, "publisher": self.name, "error": item.reason,
                                  "input": item.raw})

    def on_teardown(self, failed: bool) -> None:
        if not self.opened:
            return
        self.opened = False
        try:
            if not failed:
                self.sink.flush()
        finally:
            try:
                self.sink.close()
            finally:
                self.stats.status = "closed"
