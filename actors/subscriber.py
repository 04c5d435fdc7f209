"""The subscriber actor: reads batches from its source and hands them to the coordinator.

It polls by sending itself a ``POLL`` message after every read, so commits, pauses and
stops are handled between reads; each read waits at most a fraction of a second. It
reads only as many records as the ingress gate allows (backpressure) and rejects, at
the door, records that are not maps with string keys or cannot be encoded (SPEC §3), and those
that do not satisfy the subscriber's JSON Schema ``schema`` (SPEC §14). On a
high-availability server it reads only while the leader's lease runs (:mod:`actors.lease`).
"""

from __future__ import annotations

import logging
from typing import Any

from actors.context import COORDINATOR, DagActor, DagContext
from actors.counting import subscriber_counted
from actors.lease import LEASE
from actors.messages import Commit, Control, Ingest, Poll, decode, encode, encode_records
from adapters.base import RejectedRecord, Source
from graphs.record_schema import violation
from graphs.values import reject_reason

log = logging.getLogger("dagserver.ingress")

POLL_MESSAGE = encode(Poll())
READ_WAIT = 0.05  # seconds a poll may wait for the gate and again for the source


def subscriber_actor_name(subscriber: str) -> str:
    return f"subscriber:{subscriber}"


class SubscriberActor(DagActor):
    def __init__(self, ctx: DagContext, name: str, source: Source, position: Any = None,
                 reading: bool = True, schema: Any = None) -> None:
        super().__init__(ctx, subscriber_actor_name(name))
        self.schema = schema  # a compiled JSON Schema validator (graphs.record_schema), or None
        self.name = name
        self.source = source
        self.start_position = position
        self.reading = reading
        self.polling = False
        self.opened = False
        self.max_records = ctx.dag.max_records
        self.stats = ctx.stats.subscribers[name]
        self._dropped_seen = 0  # the source's ``dropped`` when last looked at
        self._commit_errors_seen = 0  # the source's ``commit_errors`` when last looked at

    def on_open(self) -> None:
        self.source.open(self.start_position)
        self.opened = True
        self.stats.status = getattr(self.source, "status", "connected")
        self.ctx.endpoints[self.actor_name] = (self.stats, self.source)  # its status is kept fresh meanwhile
        if self.reading:
            self._schedule()

    def receive(self, message: Any) -> Any:
        if message == Control.PAUSE:  # control plane, sent with ask(): returns once no read is running
            self.reading = False
            return True
        if message == Control.RESUME:
            self.reading = True
            if not self.polling:
                self._schedule()
            return True
        msg = decode(message)
        if type(msg) is Poll:
            self._poll()
        elif type(msg) is Commit:
            self.source.commit(msg.position)
            self._count_commit_errors()
        return None

    def _schedule(self) -> None:
        self.polling = True
        self.actor_ref.tell(POLL_MESSAGE)

    def _poll(self) -> None:
        if not self.reading:
            self.polling = False
            return
        if not LEASE.wait(READ_WAIT):  # fenced (SPEC §9): this server may not read now
            self.actor_ref.tell(POLL_MESSAGE)
            return
        gate = self.ctx.gate
        granted = gate.acquire(self.max_records, READ_WAIT)
        if granted:
            try:
                items, granted = self._read(granted)
            except Exception:  # the actor fails; its incarnation, gate included, is torn down
                self.stats.status = getattr(self.source, "status", "failed")
                raise
            self.stats.status = getattr(self.source, "status", "connected")
            if items:
                self._count_dropped()  # before the batch's counts are taken: they go with its position
                records, nbytes, data = self._admit(items)
                gate.give_back(granted - len(records))
                gate.charge(len(records), nbytes)
                self.ctx.send(COORDINATOR, data)
            else:
                gate.give_back(granted)
        else:
            self.source.keep_alive()
        self.stats.backlog = self.source.backlog()  # None: the source cannot tell (source_lag is left out)
        self._count_dropped()
        self._count_commit_errors()  # a source may also learn of a failed commit while it reads
        self.actor_ref.tell(POLL_MESSAGE)

    def _count_dropped(self) -> None:
        dropped = getattr(self.source, "dropped", 0)
        if dropped != self._dropped_seen:  # the source counts from its open; the stats across restarts
            self.stats.dropped += max(0, dropped - self._dropped_seen)
            self._dropped_seen = dropped

    def _count_commit_errors(self) -> None:
        """What the source counted in ``commit_errors`` since last looked at, into the stats (SPEC §6)."""
        failed = getattr(self.source, "commit_errors", 0)
        if failed != self._commit_errors_seen:  # the source counts from its open; the stats across restarts
            self.stats.commit_errors += max(0, failed - self._commit_errors_seen)
            self._commit_errors_seen = failed

    def _read(self, granted: int) -> tuple[list[Any], int]:
        """What is there now; else wait for the next record holding just one gate slot, then take
        what came with it.

        Returns the items and the slots still held. An idle source must not sit on many
        slots while it waits: the gate has one spare slot per subscriber, so however many
        sources are idle, the busy ones keep theirs.
        """
        source, gate = self.source, self.ctx.gate
        items = source.read_batch(granted, 0.0)
        if items:
            return items, granted
        if granted > 1:
            gate.give_back(granted - 1)
        items = source.read_batch(1, READ_WAIT)
        if not items or self.max_records == 1:
            return items, 1
        more = gate.acquire(self.max_records - 1, 0.0)  # what arrived with it, without waiting again
        if not more:
            return items, 1
        extra = source.read_batch(more, 0.0)
        return items + extra, 1 + more

    def _admit(self, items: list[Any]) -> tuple[list[dict], int, bytes]:
        """Keep the acceptable records; count, log and dead-letter the others."""
        records = []
        keys_are_strings = "".join  # raises TypeError on a key that is not a str, at C speed
        for item in items:
            if type(item) is dict:
                try:
                    keys_are_strings(item)
                except TypeError:
                    self._reject(item, reject_reason(item) or "record is not acceptable")
                    continue
                if self.schema is not None:
                    why = violation(self.schema, item)
                    if why is not None:
                        self._reject(item, f"does not satisfy the subscriber's schema: {why}")
                        continue
                records.append(item)
            elif isinstance(item, RejectedRecord):
                self._reject(item.raw, item.reason)
            else:
                self._reject(item, reject_reason(item) or "record is not acceptable")
        position = self.source.position()
        try:
            payload = encode_records(records)
        except (TypeError, ValueError, OverflowError):
            kept = []
            for record in records:
                reason = reject_reason(record)
                if reason is None:
                    kept.append(record)
                else:
                    self._reject(record, reason)
            records, payload = kept, encode_records(kept)
        self.stats.add(len(records))  # counted before the Ingest, which carries the counts with its position
        return records, len(payload), encode(Ingest(self.name, len(records), position, payload,
                                                    subscriber_counted(self.stats)))

    def _reject(self, raw: Any, reason: str) -> None:
        self.stats.rejected += 1
        if self.stats.rejected <= 10 or self.stats.rejected % 1000 == 0:
            log.warning("dag %s, subscriber %s: rejected record (%s): %.200r (%d rejected so far)",
                        self.ctx.dag.name, self.name, reason, raw, self.stats.rejected)
        self.ctx.dead_letter({"dag": self.ctx.dag.name, "subscriber": self.name, "error": reason,
                                 "input": repr(raw)})

    def on_teardown(self, failed: bool) -> None:
        if self.opened:
            self.opened = False
            try:
                self.source.close()
            finally:
                self.stats.status = "closed"
