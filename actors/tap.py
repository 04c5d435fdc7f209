"""A node's tap: its latest computes, kept only while someone reads them (SPEC §13).

Every node has a :class:`NodeTap` (in its :class:`~actors.stats.NodeStats`, so it outlives
restarts). It is closed until the first :meth:`NodeTap.read`, and closes itself
:data:`TAP_IDLE_SECONDS` after the last one. A closed tap costs one attribute read per epoch:
:class:`~actors.nodelogic.NodeLogic` looks at ``tap.open`` when an epoch starts and, only
when it is set, runs that epoch through the same loops (its plain one included) with the
calculator wrapped by :func:`tapped_calculator`, which notes each compute: the same rules,
never a copy of them. The notes of an epoch reach the tap in one :meth:`NodeTap.add`, and
become entries (dicts, previews) only when read.

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
from itertools import repeat
from typing import Any

from actors.preview import preview
from graphs.state import LateRecord
from graphs.values import describe_error

TAP_SIZE = 100  # computes a tap keeps (and returns at most)
TAP_IDLE_SECONDS = 60.0  # a tap nobody read for this long closes
TAP_VALUE_CHARS = 4096


class NodeTap:
    """One node's ring of recent computes; written by its node actor, read by the worker's reader.

    The node hands over an epoch's computes as it noted them (tuples) in one :meth:`add`; only a
    :meth:`read` turns the ones it returns into entries (dicts, values cut to a preview), so an
    open tap costs the node a list append per compute and a copy of at most ``size`` per epoch.
    """

    def __init__(self, size: int = TAP_SIZE, idle: float = TAP_IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.open = False  # read by the node once per epoch
        self.entries: deque[tuple[int, Any, Any, str | None]] = deque(maxlen=size)  # (record_seq, input, output, error)
        self.times: deque[float] = deque(maxlen=size)  # when each of entries was written down
        self.next_seq = 1  # entries[-1] is numbered next_seq - 1, the ones before it one less each
        self.idle = idle
        self.clock = clock
        self._open_until = 0.0
        self._lock = threading.Lock()  # guards entries, times, next_seq; held for a copy, never across a wait

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
            self.times.clear()
        return False

    def read(self, after: int = 0, limit: int = TAP_SIZE) -> dict[str, Any]:
        """Open (or keep open) the tap; the entries after ``after``, oldest first, at most ``limit``.

        An ``after`` beyond the newest entry (the worker restarted since) returns everything held.
        """
        with self._lock:
            self._open_until = self.clock() + self.idle
            self.open = True
            entries, times = list(self.entries), list(self.times)
            newest = self.next_seq - 1
        oldest = newest - len(entries) + 1  # the seq of entries[0]
        start = max(0, after + 1 - oldest) if after <= newest else 0
        start = max(start, len(entries) - limit) if limit > 0 else len(entries)
        computes = [_shown(oldest + i, times[i], *entries[i]) for i in range(start, len(entries))]
        return {"open": True, "newest": newest, "computes": computes}

    def add(self, found: list[tuple[int, Any, Any, str | None]], when: float) -> None:
        """The computes of one epoch, made at about ``when``: ``(record_seq, input, output, error)`` each."""
        if not found:
            return
        kept = found[-(self.entries.maxlen or len(found)):]  # the ones the ring would drop at once: numbered, not kept
        with self._lock:
            self.entries.extend(kept)
            self.times.extend(repeat(when, len(kept)))
            self.next_seq += len(found)


def _shown(seq: int, when: float, record_seq: int, value: Any, out: Any, error: str | None) -> dict[str, Any]:
    shown_in, in_cut = preview(value, TAP_VALUE_CHARS)
    shown_out, out_cut = preview(out, TAP_VALUE_CHARS)
    return {"seq": seq, "time": when, "record_seq": record_seq, "input": shown_in, "output": shown_out,
            "error": error, "input_truncated": in_cut, "output_truncated": out_cut}


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
