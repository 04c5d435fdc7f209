"""The publisher actor: writes each epoch's publications to its sink, in order, then acks.

A publisher may be fed by several nodes; it waits for epoch ``e`` from all of them and
publishes by ``(seq, topological position of the node)``, which is the order the
reference evaluator publishes in. The ack tells the coordinator the sink accepted the
epoch; on checkpoint epochs the sink is flushed first.
"""

from __future__ import annotations

from typing import Any

from actors.alignment import EpochAligner
from actors.context import COORDINATOR, DagActor, DagContext
from actors.messages import ACK, FLAG_CHECKPOINT, PUBLISH, decode, encode
from adapters.base import Sink


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
        self.sequenced = hasattr(sink, "write_sequenced")
        self.opened = False

    def on_open(self) -> None:
        self.sink.open()
        self.opened = True

    def on_receive(self, message: Any) -> None:
        kind, epoch, flags, items, node = decode(message)
        if kind != PUBLISH:
            return
        for ready, ready_flags, slots in self.aligner.add(epoch, node, flags, items):
            self._publish(ready, ready_flags, slots)
        self.stats.backlog = len(self.aligner.pending)  # epochs waiting for another feeding node

    def _publish(self, epoch: int, flags: int, slots: list[list]) -> None:
        if len(slots) == 1 and not self.sequenced:
            records = slots[0][1]
            events: list = records
        else:
            topo = self.feeder_topo
            events = [(seq, topo[i], record) for i, (seqs, outs) in enumerate(slots)
                      for seq, record in zip(seqs, outs, strict=True)]
            events.sort(key=lambda event: (event[0], event[1]))
            records = [event[2] for event in events]
        if records:
            try:
                if self.sequenced:
                    self.sink.write_sequenced(self.name, events)
                else:
                    self.sink.write_batch(records)
            except Exception:
                self.stats.errors += 1
                raise
            self.stats.add(len(records))
        if flags & FLAG_CHECKPOINT:
            self.sink.flush()
        self.ctx.send(COORDINATOR, encode([ACK, epoch, self.actor_name]))

    def on_teardown(self, failed: bool) -> None:
        if not self.opened:
            return
        try:
            if not failed:
                self.sink.flush()
        finally:
            self.sink.close()
