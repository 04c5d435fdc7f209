"""The node actor: waits for one epoch message from every parent, then computes.

Roots (subscription and metronome nodes) get their epochs from the coordinator; every
other node gets exactly one ``EPOCH`` message per epoch from each parent, possibly
empty, and processes epoch ``e`` once it holds all of them (SPEC §3). Epochs arrive in
order from each parent, so a node may hold several epochs while a slower parent catches
up: that is the pipelining.
"""

from __future__ import annotations

from typing import Any

from actors.alignment import EpochAligner
from actors.context import COORDINATOR, DagActor, DagContext, log
from actors.messages import FLAG_CHECKPOINT, Ack, Epoch, Publish, State, decode, encodable, encode
from actors.nodelogic import NodeLogic


def node_actor_name(node: str) -> str:
    return f"node:{node}"


class NodeActor(DagActor):
    def __init__(self, ctx: DagContext, logic: NodeLogic) -> None:
        super().__init__(ctx, node_actor_name(logic.name))
        dag = ctx.dag
        self.logic = logic
        self.parent_index = {edge.from_node: i for i, edge in enumerate(dag.parents[logic.name])}
        self.is_root = not self.parent_index
        self.children = [node_actor_name(c) for c in dag.children[logic.name]]
        self.publishers = [f"publisher:{p}" for p in dag.nodes[logic.name].publishers]
        self.terminal = not self.children and not self.publishers
        self.aligner = EpochAligner(self.parent_index)

    def receive(self, message: Any) -> None:
        msg = decode(message)
        if type(msg) is not Epoch:
            log.warning("%s: unexpected message %r", self.actor_name, type(msg).__name__)
            return
        epoch, flags, items, sender = msg
        if self.is_root:
            self._finish(epoch, flags, *self.logic.run_root(items))
            return
        for ready, ready_flags, slots in self.aligner.add(epoch, sender, flags, items):
            self._finish(ready, ready_flags, *self.logic.run_merge(slots))

    def _finish(self, epoch: int, flags: int, changes: list, publications: list) -> None:
        ctx = self.ctx
        name = self.logic.name
        if self.children:
            data = self._encode(Epoch, epoch, flags, changes, publications)
            for child in self.children:
                ctx.send(child, data)
        if self.publishers:
            data = self._encode(Publish, epoch, flags, publications, None)
            for publisher in self.publishers:
                ctx.send(publisher, data)
        if flags & FLAG_CHECKPOINT:
            ctx.send(COORDINATOR, encode(State(epoch, name, self.logic.snapshot())))
        if self.terminal:
            ctx.send(COORDINATOR, encode(Ack(epoch, self.actor_name)))

    def _encode(self, kind: type[Epoch] | type[Publish], epoch: int, flags: int, changes: list,
                also: list | None) -> bytes:
        """``kind(...)`` encoded; outputs msgpack cannot carry are errors, dropped here and from ``also``."""
        try:
            return encode(kind(epoch, flags, changes, self.logic.name))
        except (TypeError, ValueError, OverflowError):
            bad = {seq for seq, out in zip(*changes, strict=True) if not encodable(out)}
            for seq, out in zip(*changes, strict=True):
                if seq in bad:
                    self.logic.record_error("output cannot be encoded (msgpack)", repr(out))
            for lists in {id(each): each for each in (changes, also) if each is not None}.values():
                kept = [(seq, out) for seq, out in zip(*lists, strict=True) if seq not in bad]
                lists[:] = [[seq for seq, _ in kept], [out for _, out in kept]]
            return encode(kind(epoch, flags, changes, self.logic.name))
