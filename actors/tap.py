"""A node's tap: its latest computes, kept only while someone reads them (SPEC §13).

Every node has a :class:`NodeTap` (in its :class:`~actors.stats.NodeStats`, so it outlives
restarts). It is closed until the first :meth:`NodeTap.read`, and closes itself
:data:`TAP_IDLE_SECONDS` after the last one. A closed tap costs one attribute read per epoch:
:class:`~actors.nodelogic.NodeLogic` looks at ``tap.open`` when an epoch starts and, only
when it is set, runs that epoch through :func:`tapped_step` (the rules of ``_step``, with each
compute written down) instead of its untapped paths.

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
from graphs.values import describe_error, nan_equal, not_a_map

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


def tapped_step(logic: Any, found: list, seq: int, record: Any, compare_input: bool, always: bool) -> Any:
    """``NodeLogic._step`` with every compute appended to ``found`` (only while a tap is open): the
    same rules 1-4 for one record; the new output when it is to be propagated, else None."""
    value = record
    if logic.in_chain:
        try:
            value = _through(logic.in_chain, value)
        except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
            message = describe_error(exc)
            logic.record_error(message, record)
            found.append((seq, record, None, message))
            return None
        if value is None:
            return None
    # a stateful calculator computes on every record that reaches it: no input comparison (SPEC §11)
    if compare_input and not always and not logic.stateful and (value == logic.input
                                                                or nan_equal(value, logic.input)):
        return None
    logic.input = value
    started = time.perf_counter()
    try:
        out = logic.calc(value)
        if out is not None:
            if not isinstance(out, dict):
                raise not_a_map("calculator", logic.calc_name, out)
            if logic.out_chain:
                out = _through(logic.out_chain, out)
    except LateRecord as exc:  # a stateful calculator's: counted and dead-lettered, not an error
        logic.times.append(time.perf_counter() - started)
        message = str(exc)
        if logic.stateful:
            logic.states.late(message, value, logic.on_error)
        else:
            logic.record_error(describe_error(exc), value)
        found.append((seq, value, None, message))
        return None
    except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
        logic.times.append(time.perf_counter() - started)
        message = describe_error(exc)
        logic.record_error(message, value)
        found.append((seq, value, None, message))
        return None
    logic.times.append(time.perf_counter() - started)
    found.append((seq, value, out, None))
    if out is None or (not always and (out == logic.output or nan_equal(out, logic.output))):
        return None
    logic.output = out
    return out


def tapped_plain(logic: Any, found: list, in_seqs: list[int] | range, values: list[Any], seqs: list[int],
                 outs: list[Any], root: bool, complete: bool = True) -> None:
    """``NodeLogic._run_plain`` with every compute appended to ``found`` (only while a tap is open): the
    same rules 1-4 over one run of inputs of a node without transformers, appending what it propagates."""
    calc, times, always, name = logic.calc, logic.times, logic.always, logic.calc_name
    trusted = logic.parent_distinct and not root and complete
    inp, cur, fresh = logic.input, logic.output, logic.fresh
    clock = time.perf_counter
    record = found.append
    for seq, value in zip(in_seqs, values, strict=True):
        if not root:  # an empty input ({}) is compared like any other (SPEC §2)
            if not always and not (fresh and trusted) and (value == inp or nan_equal(value, inp)):
                fresh = True
                continue
            fresh = True
        inp = value
        started = clock()
        try:
            out = calc(value)
            if out is not None and not isinstance(out, dict):
                raise not_a_map("calculator", name, out)
        except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
            times.append(clock() - started)
            message = describe_error(exc)
            logic.record_error(message, value)
            record((seq, value, None, message))
            continue
        times.append(clock() - started)
        record((seq, value, out, None))
        if out is None or (not always and (out == cur or nan_equal(out, cur))):
            continue
        cur = out
        seqs.append(seq)
        outs.append(out)
    logic.input, logic.output, logic.fresh = inp, cur, fresh


def _through(chain: tuple[tuple[str, Callable], ...], value: Any) -> Any:
    for name, trans in chain:
        value = trans(value)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise not_a_map("transformer", name, value)
    return value
