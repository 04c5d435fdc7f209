"""A node's tap: its latest computes, kept only while someone reads them (SPEC §13).

Every node has a :class:`NodeTap` (in its :class:`~actors.stats.NodeStats`, so it outlives
restarts). It is closed until the first :meth:`NodeTap.read`, and closes itself
:data:`TAP_IDLE_SECONDS` after the last one. A closed tap costs one attribute read per epoch:
:class:`~actors.nodelogic.NodeLogic` looks at ``tap.open`` when an epoch starts and, only
when it is set, runs that epoch through its general path with the calculator wrapped by
:func:`tapped_calculator`, which writes each compute down: the same rules, never a copy of them.

Each entry is ``{seq, time, record_seq, input, output, error}``: ``seq`` numbers the tap's
entries (it only grows, so ``read(after=seq)`` pages), ``record_seq`` is the ingress number
of the record that led to the compute. Values longer than :data:`TAP_VALUE_CHARS` characters
of JSON are cut (``input_truncated``/``output_truncated``), so a reply stays small.

Usage::

    tap = stats.nodes["value"].tap
    entries = tap.read(after=0)          # opens the tap; [] at first, the computes from then on
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from actors.preview import preview
from graphs.state import LateRecord
from graphs.values import describe_error

TAP_SIZE = 100  # computes a tap keeps (and returns at most)
TAP_IDLE_SECONDS = 60.0  # a tap nobody read for this long closes
TAP_VALUE_CHARS = 4096


class NodeTap:
    """One node's ring of recent computes; written by its node actor, read by the worker's reader."""

    def __init__(self, size: int = TAP_SIZE, idle: float = TAP_IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.open = False  # read by the node once per epoch
        self.entries: deque[dict[str, Any]] = deque(maxlen=size)
        self.next_seq = 1
        self.idle = idle
        self.clock = clock
        self._open_until = 0.0
        self._lock = threading.Lock()  # guards entries and next_seq; held for a copy, never across a wait

    def still_open(self) -> bool:
        """Called by the node when ``open`` is set: whether a reader looked within ``idle`` seconds
        (else the tap closes and forgets what it held)."""
        if self.clock() < self._open_until:
            return True
        with self._lock:  # a read may have come in meanwhile: look again where reads set it
            if self.clock() < self._open_until:
                return True
            self.open = False
            self.entries.clear()
        return False

    def read(self, after: int = 0, limit: int = TAP_SIZE) -> dict[str, Any]:
        """Open (or keep open) the tap; the entries after ``after``, oldest first, at most ``limit``.

        An ``after`` beyond the newest entry (the worker restarted since) returns everything held.
        """
        with self._lock:
            self._open_until = self.clock() + self.idle
            self.open = True
            entries = list(self.entries)
            newest = self.next_seq - 1
        if after <= newest:
            entries = [e for e in entries if e["seq"] > after]
        entries = entries[-limit:] if limit > 0 else []
        return {"open": True, "newest": newest, "computes": [_shown(e) for e in entries]}

    def add(self, found: list[tuple[int, Any, Any, str | None]], when: float) -> None:
        """The computes of one epoch, made at about ``when``: ``(record_seq, input, output, error)`` each."""
        if not found:
            return
        keep = self.entries.maxlen or len(found)
        with self._lock:
            first = self.next_seq + max(0, len(found) - keep)  # the ones the ring would drop at once are skipped
            for seq, (record_seq, value, out, error) in enumerate(found[-keep:], first):
                self.entries.append({"seq": seq, "time": when, "record_seq": record_seq, "input": value,
                                     "output": out, "error": error})
            self.next_seq += len(found)


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    shown = dict(entry)
    for key in ("input", "output"):
        shown[key], shown[f"{key}_truncated"] = preview(entry[key], TAP_VALUE_CHARS)
    return shown


def tapped_calculator(logic: Any, calc: Callable[[Any], Any], found: list) -> Callable[[Any], Any]:
    """``calc`` noting each call in ``found`` as ``(record_seq, input, output, error)``; the record's
    number is the one the node is computing (``logic.seq``). What it raises is raised on, so the node
    applies rule 4 exactly as without a tap."""

    def noted(value: Any) -> Any:
        try:
            out = calc(value)
        except BaseException as exc:  # a late record reads as the node counts it: late, not an error
            found.append((logic.seq, value, None, str(exc) if isinstance(exc, LateRecord) else describe_error(exc)))
            raise
        found.append((logic.seq, value, out, None))
        return out

    return noted
