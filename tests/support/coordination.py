"""A real coordinator actor on a hand-built :class:`DagContext`, and stand-ins for everyone it talks to.

Used by ``tests/actors/test_coordinator.py``. The root nodes and subscribers are tiny
:class:`Recipient` actors keeping every message they are told, decoded; the test plays the
subscribers, terminals and nodes through :class:`Harness` (``ingest``, ``ack``, ``states``,
``tick``). Every send, dead-letter write and checkpoint write is logged in ``Harness.log``
in the order they are made (by the coordinator, or by its checkpoint saver for dead letters,
checkpoints and commits), and the gate logs what each completed epoch gives back.
``settle()`` asks every actor ``Control.READY`` as a barrier and waits for the saver to be
idle, so nothing needs to sleep::

    h = Harness(coordinated_dag(max_inflight=2))
    h.ingest("a", [{"v": 1}], position=1)
    h.ack(0)
    assert h.epochs("ra")[0].changes[0][0] == 0      # first seq of the run
    h.close()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.context import COORDINATOR, DagContext
from actors.coordinator import CoordinatorActor
from actors.deadletters import DeadLetterBox
from actors.gate import IngressGate
from actors.messages import (
    RUN_RECORDS,
    Ack,
    Control,
    Epoch,
    Ingest,
    Message,
    State,
    Tick,
    decode,
    decode_records,
    encode,
    encode_records,
)
from actors.node import node_actor_name
from actors.publisher import publisher_actor_name
from actors.stats import DagStats
from actors.subscriber import subscriber_actor_name
from graphs.loader import load_dag_dict
from graphs.model import DagModel

NOW = 1_700_000_000.0
TIMEOUT = 10.0
OUT, AUDIT = publisher_actor_name("out"), publisher_actor_name("audit")
NODES = ("ra", "rb", "pub")


def coordinated_dag(every: int = 10, max_records: int = 5, max_inflight: int = 1, metronome: bool = False,
                    idle_seconds: float = 3600) -> DagModel:
    """Subscribers a, b -> roots ra, rb -> pub -> publisher out; with ``metronome``, a MetronomeNode
    ``clock`` (message "beat") publishing to audit, a second terminal. Idle checkpoints come only
    when a test asks for them with a short ``idle_seconds``: the others count every epoch."""
    nodes: list[dict[str, Any]] = [{"name": "ra", "type": "SubscriptionNode", "subscriber": "a"},
                                   {"name": "rb", "type": "SubscriptionNode", "subscriber": "b"},
                                   {"name": "pub", "type": "PublicationNode", "publishers": ["out"]}]
    publishers = [{"name": "out", "config": {"destination": "mem://queue/out"}}]
    if metronome:
        nodes.append({"name": "clock", "type": "MetronomeNode", "config": {"interval": 5, "message": "beat"},
                      "publishers": ["audit"]})
        publishers.append({"name": "audit", "config": {"destination": "mem://queue/audit"}})
    return load_dag_dict({
        "name": "coord",
        "subscribers": [{"name": s, "config": {"source": f"mem://queue/{s}"}} for s in ("a", "b")],
        "publishers": publishers,
        "nodes": nodes,
        "edges": [{"from_node": "ra", "to_node": "pub"}, {"from_node": "rb", "to_node": "pub"}],
        "checkpoint": {"every_epochs": every, "idle_seconds": idle_seconds},
        "epochs": {"max_records": max_records, "max_inflight": max_inflight},
    })


@dataclass
class LoggingContext(DagContext):
    """Logs every send, in the sender's thread, before it is delivered (a Control value as it is)."""

    log: list[tuple[Any, ...]] = field(default_factory=list)

    def send(self, target: str, data: Any) -> None:
        self.log.append(("send", target, data if isinstance(data, Control) else decode(data)))
        super().send(target, data)


class LoggingGate(IngressGate):
    def __init__(self) -> None:
        super().__init__(records=100_000, max_bytes=1 << 30)
        self.released: list[tuple[int, int]] = []

    def release(self, records: int, nbytes: int) -> None:
        self.released.append((records, nbytes))
        super().release(records, nbytes)


class LoggingSink:
    """A dead-letter sink writing into the shared log."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        self.log.append(("dead letters", list(records)))

    def flush(self) -> None:
        self.log.append(("flush dead letters",))


class Recipient(pykka.ThreadingActor):
    """Stands in for a node or subscriber actor: keeps every message it is told, decoded."""

    use_daemon_thread = True

    def __init__(self, got: list[Message]) -> None:
        super().__init__()
        self.got = got

    def on_receive(self, message: Any) -> Any:
        if message == Control.READY:
            return True
        self.got.append(decode(message))
        return None


class Harness:
    """One coordinator, its recipients, and the test playing everyone else."""

    def __init__(self, dag: DagModel, restore: dict[str, Any] | None = None) -> None:
        self.dag = dag
        self.stats = DagStats.for_dag(dag)
        self.gate = LoggingGate()
        self.failures: list[tuple[str, BaseException]] = []
        log: list[tuple[Any, ...]] = []
        self.ctx = LoggingContext(dag, self.stats, self.gate, DeadLetterBox(self.stats, LoggingSink(log)),
                                  on_actor_failure=lambda actor, exc: self.failures.append((actor, exc)),
                                  clock=lambda: NOW, restore=restore, log=log)
        self.log = log
        self.got: dict[str, list[Message]] = {}
        names = [node_actor_name(r) for r in dag.roots] + [subscriber_actor_name(s) for s in dag.subscribers]
        for name in names:
            self.got[name] = []
            self.ctx.refs[name] = Recipient.start(self.got[name])
        self.coordinator = CoordinatorActor.start(self.ctx, self._write)
        self.ctx.refs[COORDINATOR] = self.coordinator

    def _write(self, checkpoint: dict[str, Any]) -> None:
        self.log.append(("checkpoint", checkpoint))

    # -- playing the other actors -------------------------------------------------------------------
    def ingest(self, subscriber: str, records: list[dict[str, Any]], position: Any = None) -> int:
        """What a subscriber does for one read; the bytes it charged."""
        payload = encode_records(records)
        assert self.gate.acquire(len(records), timeout=0) == len(records)
        self.gate.charge(len(records), len(payload))
        self.coordinator.tell(encode(Ingest(subscriber, len(records), position, payload)))
        return len(payload)

    def ack(self, epoch: int, *senders: str) -> None:
        for sender in senders or (OUT,):
            self.coordinator.tell(encode(Ack(epoch, sender)))

    def states(self, epoch: int, nodes: tuple[str, ...] = NODES) -> None:
        for node in nodes:
            self.coordinator.tell(encode(State(epoch, node, {"input": {"n": node}, "output": {}, "latest": None})))

    def tick(self, node: str, record: dict[str, Any] | None = None) -> None:
        self.coordinator.tell(encode(Tick(node, record)))

    def settle(self) -> None:
        """Every message told so far has been handled, by the coordinator and by the recipients."""
        while True:  # a written checkpoint lets its epoch complete, which may hand over the next one
            written = self.ctx.saver.written
            assert self.coordinator.ask(Control.READY, timeout=TIMEOUT)
            assert self.ctx.saver.wait_idle(TIMEOUT)
            assert self.coordinator.ask(Control.READY, timeout=TIMEOUT)  # it has heard of the last write
            if self.ctx.saver.written == written:
                break
        for name in self.got:
            assert self.ctx.refs[name].ask(Control.READY, timeout=TIMEOUT)

    # -- what came out -------------------------------------------------------------------------------
    def epochs(self, root: str) -> list[Epoch]:
        self.settle()
        got = self.got[node_actor_name(root)]
        assert all(type(m) is Epoch for m in got), got
        return got  # type: ignore[return-value]

    def runs(self, root: str) -> list[list[tuple[int, int]]]:
        """Per epoch sent to ``root``: (first seq, record count) of each records run."""
        return [[(first, len(decode_records(payload))) for first, kind, payload in e.changes if kind == RUN_RECORDS]
                for e in self.epochs(root)]

    def written(self) -> list[dict[str, Any]]:
        self.settle()
        return [entry[1] for entry in self.log if entry[0] == "checkpoint"]

    def close(self) -> None:
        for ref in [self.coordinator, *(self.ctx.refs[n] for n in self.got)]:
            ref.stop(block=True, timeout=TIMEOUT)
        assert self.ctx.saver.stop(TIMEOUT)
