"""The node actor: waits for one epoch message from every parent, then computes.

Roots (subscription and metronome nodes) get their epochs from the coordinator; every
other node gets exactly one ``EPOCH`` message per epoch from each parent, possibly
empty, and processes epoch ``e`` once it holds all of them (SPEC §3). Epochs arrive in
order from each parent, so a node may hold several epochs while a slower parent catches
up: that is the pipelining.

One actor runs a whole chain of nodes (:mod:`actors.fusion`): the head as above, then
each following node on the changes of the one before it, within the same message.
Every node of the chain still sends its own publications, checkpoint state and
acknowledgement under its own name, so nothing outside the actor can tell.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from actors.alignment import EpochAligner
from actors.context import COORDINATOR, DagActor, DagContext, log
from actors.counting import node_counted
from actors.fusion import shares_outputs
from actors.messages import FLAG_CHECKPOINT, FLAG_DROPPED, Ack, Epoch, Publish, State, decode, encodable, encode
from actors.nodelogic import NodeLogic


def node_actor_name(node: str) -> str:
    return f"node:{node}"


class NodeActor(DagActor):
    """Runs ``logics``, a chain ``head -> ... -> tail`` (one node, usually)."""

    def __init__(self, ctx: DagContext, logics: list[NodeLogic]) -> None:
        head, tail = logics[0].name, logics[-1].name
        super().__init__(ctx, node_actor_name(head))
        dag = ctx.dag
        self.logics = logics
        self.parent_index = {edge.from_node: i for i, edge in enumerate(dag.parents[head])}
        self.is_root = not self.parent_index
        self.children = [node_actor_name(c) for c in dag.children[tail]]
        self.publishers = [[f"publisher:{p}" for p in dag.nodes[logic.name].publishers] for logic in logics]
        self.terminal = not self.children and not self.publishers[-1]
        # per hop inside the chain: whether the next node reads this one's outputs as they are
        self.shared = [shares_outputs(dag, a.name, b.name) for a, b in pairwise(logics)]
        self.dropped = False  # this epoch, the node being sent on lost outputs msgpack could not carry
        self.aligner = EpochAligner(self.parent_index)

    def receive(self, message: Any) -> None:
        msg = decode(message)
        if type(msg) is not Epoch:
            log.warning("%s: unexpected message %r", self.actor_name, type(msg).__name__)
            return
        epoch, flags, items, sender = msg
        head = self.logics[0]
        if self.is_root:
            self._run_chain(epoch, flags, *head.run_root(items))
            return
        for ready, ready_flags, slots in self.aligner.add(epoch, sender, flags, items):
            self._run_chain(ready, ready_flags & ~FLAG_DROPPED,
                            *head.run_merge(slots, complete=not ready_flags & FLAG_DROPPED))

    def _run_chain(self, epoch: int, flags: int, changes: list, publications: list) -> None:
        """The head's result in ``changes``/``publications``; the rest of the chain runs on them."""
        last = len(self.logics) - 1
        self.dropped = False  # set by _encode when msgpack could not carry an output
        for i, logic in enumerate(self.logics):
            if i:
                changes, publications = logic.run_merge([changes], complete=not self.dropped)
                self.dropped = False
            self._publish(i, epoch, flags, changes, publications)
            if i == last:
                break
            if not self.shared[i]:  # as across a hop: unencodable outputs are errors, the next node gets copies
                changes = decode(self._encode(logic, Epoch, epoch, flags, changes, publications)).changes
        ctx = self.ctx
        tail = self.logics[-1]
        if self.children:
            # told when outputs were dropped, the children do not take the tail's outputs as all they missed
            data = self._encode(tail, Epoch, epoch, flags | (FLAG_DROPPED if self.dropped else 0), changes,
                                publications)
            for child in self.children:
                ctx.send(child, data)
        if self.terminal:
            ctx.send(COORDINATOR, encode(Ack(epoch, node_actor_name(tail.name))))

    def _publish(self, i: int, epoch: int, flags: int, changes: list, publications: list) -> None:
        """Node ``i``'s publications to its publishers, and its state on a checkpoint epoch."""
        logic = self.logics[i]
        if self.publishers[i]:
            data = self._encode(logic, Publish, epoch, flags, publications, changes)
            for publisher in self.publishers[i]:
                self.ctx.send(publisher, data)
        if flags & FLAG_CHECKPOINT:
            self.ctx.send(COORDINATOR, encode(State(epoch, logic.name, logic.snapshot(), node_counted(logic.stats))))

    def _encode(self, logic: NodeLogic, kind: type[Epoch] | type[Publish], epoch: int, flags: int, changes: list,
                also: list | None) -> bytes:
        """``kind(...)`` encoded; outputs msgpack cannot carry are errors, dropped here and from ``also``
        (an Epoch that lost some says so: FLAG_DROPPED)."""
        try:
            return encode(kind(epoch, flags, changes, logic.name))
        except (TypeError, ValueError, OverflowError):
            self.dropped = True
            if kind is Epoch:
                flags |= FLAG_DROPPED
            bad = {seq for seq, out in zip(*changes, strict=True) if not encodable(out)}
            for seq, out in zip(*changes, strict=True):
                if seq in bad:
                    logic.seq = seq
                    logic.record_error("output cannot be encoded (msgpack)", repr(out))
            for lists in {id(each): each for each in (changes, also) if each is not None}.values():
                kept = [(seq, out) for seq, out in zip(*lists, strict=True) if seq not in bad]
                lists[:] = [[seq for seq, _ in kept], [out for _, out in kept]]
            return encode(kind(epoch, flags, changes, logic.name))
