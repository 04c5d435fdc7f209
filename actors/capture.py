"""A capture: the next inputs of a running DAG and what its publishers published for them (SPEC §13).

The coordinator hands a :class:`Capture` every epoch it cuts while the capture is taking
(:meth:`Capture.take`: the records in ingress order, each with its subscriber's name, and
MetronomeNode ticks); each publisher hands it what it wrote (:meth:`Capture.published`), of
which only the outputs of captured records are kept; the coordinator tells it every epoch that
completes (:meth:`Capture.completed`). It stops taking after ``records`` records, after
``seconds``, or at ``max_bytes`` of input, and is ``done`` once the epoch holding its last
record has completed, so every output of what it took is in. The result is what
``dagserver test --from-capture`` reads: ``events`` in the ``replay`` format and ``outputs``
per publisher.

Usage::

    capture = Capture("c1", records=20, seconds=60)
    ctx.capture = capture                        # the coordinator and publishers feed it
    ...
    capture.status()                             # {"id": "c1", "state": "done", "events": [...], ...}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from actors.messages import decode_records

CAPTURE_MAX_RECORDS = 10_000  # records one capture may ask for
CAPTURE_MAX_SECONDS = 3600.0
CAPTURE_MAX_BYTES = 16 << 20  # encoded input one capture keeps at most; it stops there
TAKING, FINISHING, DONE, FAILED = "capturing", "finishing", "done", "failed"


class Capture:
    """One capture's progress and content; fed by the actors' threads, read by the worker's."""

    def __init__(self, capture_id: str, records: int, seconds: float, max_bytes: int = CAPTURE_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.id = capture_id
        self.want = records
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.clock = clock
        self.deadline = clock() + seconds
        self.started = time.time()
        self.events: list[dict[str, Any]] = []
        self.outputs: dict[str, list[Any]] = {}
        self.taking = True
        self.first_seq: int | None = None
        self.last_seq: int | None = None  # set when it stops taking: outputs of later records are not its own
        self.last_epoch: int | None = None  # the last epoch holding a record it took
        self.completed_epoch = -1
        self.nbytes = 0
        self.stopped_because = ""
        self.failure = ""
        self._lock = threading.Lock()  # guards everything above; held only to copy or append

    # -- fed by the coordinator -----------------------------------------------------------------------
    def take(self, epoch: int, batches: list[tuple[int, Any]]) -> None:
        """An epoch just cut: ``(first seq, Batch)`` per batch, in ingress order."""
        with self._lock:
            if not self.taking:
                return
            if self.clock() >= self.deadline:
                self._stop(f"{self.seconds:g} s passed")
                return
            for seq, batch in batches:
                if batch.tick_node is not None:
                    records, events = [batch.payload], [{"tick": batch.tick_node, "record": batch.payload}]
                else:
                    records = decode_records(batch.payload)
                    events = [{"subscriber": batch.subscriber, "record": r} for r in records]
                    self.nbytes += len(batch.payload)
                if self.first_seq is None and events:
                    self.first_seq = seq
                room = self.want - len(self.events)
                self.events += events[:room]
                if events[:room]:
                    self.last_epoch = epoch
                    self.last_seq = seq + min(room, len(events)) - 1
                if len(self.events) >= self.want:
                    self._stop(f"{self.want} records taken")
                    return
                if self.nbytes >= self.max_bytes:
                    self._stop(f"stopped at the {self.max_bytes >> 20} MB cap after {len(self.events)} records")
                    return

    def completed(self, epoch: int) -> None:
        self.completed_epoch = epoch

    # -- fed by the publishers ------------------------------------------------------------------------
    def published(self, publisher: str, seqs: list[int], records: list[Any]) -> None:
        """What ``publisher`` wrote, each record with the seq of the input that led to it."""
        with self._lock:
            first, last = self.first_seq, self.last_seq if not self.taking else None
            if first is None:
                return
            kept = [r for s, r in zip(seqs, records, strict=True) if s >= first and (last is None or s <= last)]
            if kept:
                self.outputs.setdefault(publisher, []).extend(kept)

    # -- read by the worker -----------------------------------------------------------------------------
    def fail(self, reason: str) -> None:
        with self._lock:
            if self._state() != DONE:
                self.failure = reason
                self.taking = False

    def status(self) -> dict[str, Any]:
        """``{id, state, records, ...}``; once ``done``, also ``events`` and ``outputs``."""
        with self._lock:
            if self.taking and self.clock() >= self.deadline:
                self._stop(f"{self.seconds:g} s passed")
            state = self._state()
            answer: dict[str, Any] = {"id": self.id, "state": state, "records": len(self.events),
                                      "asked": {"records": self.want, "seconds": self.seconds},
                                      "started": self.started, "stopped_because": self.stopped_because}
            if state == FAILED:
                answer["error"] = self.failure
            if state == DONE:
                answer["events"] = list(self.events)
                answer["outputs"] = {name: list(records) for name, records in self.outputs.items()}
            return answer

    def _state(self) -> str:
        if self.failure:
            return FAILED
        if self.taking:
            return TAKING
        if self.last_epoch is not None and self.completed_epoch < self.last_epoch:
            return FINISHING
        return DONE

    def _stop(self, why: str) -> None:
        """Stop taking (lock held); outputs of records after the last one taken are not kept."""
        self.taking = False
        self.stopped_because = why
        if self.last_seq is None:
            self.last_seq = -1  # nothing taken: nothing published belongs to it
