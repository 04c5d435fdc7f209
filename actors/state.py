"""A node's component state in the runtime (SPEC §11): snapshots at checkpoints, restores, figures.

:class:`NodeStates` sits beside a :class:`~actors.nodelogic.NodeLogic`: it finds which of the
node's components keep state (``snapshot()``/``restore()``) from the bound methods the node
calls, takes their snapshots on the node's own thread at each checkpoint epoch (encoded
there: see :class:`graphs.state.ComponentStates`), restores them when an incarnation is
built from a checkpoint, and keeps the node's state figures current in its
:class:`~actors.stats.NodeStats`: ``late`` and ``evictions`` (counters), ``state_groups`` and
``state_bytes`` (gauges; the size of the latest snapshot).

A stateful calculator that offers ``calculate_many(records)`` (the
:class:`~graphs.aggregate.AggregateCalculator` does) gets a node's whole run of records in one
call: :func:`run_many` applies rules 1-4 to what it returns, as the node does record by record.

Usage::

    states = NodeStates("per_minute", calc, transformers, stats)
    blobs = states.snapshot()       # raises graphs.state.StateError naming the node
    states.restore(blobs)
    many = many_of(calc)            # (calc, calc.__self__.calculate_many), or None
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

from actors.stats import NodeStats
from graphs.state import ComponentStates, LateRecord, node_state_components, owner_of, state_figures
from graphs.values import describe_error, nan_equal, not_a_map

ErrorSink = Callable[[str, str, Any, int], None]  # (node, message, input, seq of the ingress record)


class NodeStates:
    """The stateful components of one node and the figures they feed."""

    def __init__(self, node: str, calculator: Callable[..., Any], transformers: Mapping[str, Callable[..., Any]],
                 stats: NodeStats) -> None:
        self.node = node
        calc = owner_of(calculator)
        self.components = ComponentStates(node, node_state_components(
            calc, {name: owner_of(t) for name, t in transformers.items()}))
        self.figures = calc if callable(getattr(calc, "state_figures", None)) else None
        self.stats = stats
        stats.stateful = stats.stateful or bool(self.components) or self.figures is not None
        self.evictions_seen = 0  # the calculator's own count when last read (it restarts with it)
        if self.figures is not None:
            self.account()

    def __bool__(self) -> bool:
        return bool(self.components)

    def snapshot(self) -> dict[str, bytes]:
        blobs = self.components.snapshot()
        self.stats.state_bytes = self.components.last_bytes
        return blobs

    def restore(self, blobs: Mapping[str, Any] | None) -> None:
        if not blobs or not self.components:
            return
        self.components.restore(blobs)
        self.stats.state_bytes = self.components.last_bytes
        if self.figures is not None:
            figures = state_figures(self.figures) or {}
            self.evictions_seen = int(figures.get("evictions", 0))
            self.stats.state_groups = figures.get("groups")

    def late(self, message: str, input_value: Any, on_error: ErrorSink | None, seq: int) -> None:
        """A record too late for its window (ingress record ``seq``): counted and dead-lettered, not an error."""
        self.stats.late += 1
        if on_error is not None:
            on_error(self.node, message, input_value, seq)

    def account(self) -> None:
        """Read the calculator's figures into the node's (once per epoch)."""
        figures = state_figures(self.figures)
        if not figures:
            return
        self.stats.state_groups = figures.get("groups")
        evictions = int(figures.get("evictions", 0))
        if evictions > self.evictions_seen:
            self.stats.evictions += evictions - self.evictions_seen
        self.evictions_seen = evictions


def many_of(calc: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[[Sequence[Any]], list[Any]]] | None:
    """``(calc, its owner's calculate_many)`` when ``calc`` is a bound ``calculate`` whose component offers
    ``calculate_many`` (a list holding, per record, its output or the exception ``calculate`` raises); else
    None. A node uses the pair only while its ``calc`` is still ``calc`` (a tap wraps it)."""
    owner = owner_of(calc)
    many = getattr(owner, "calculate_many", None)
    if callable(many) and calc == getattr(owner, "calculate", None):
        return calc, many
    return None


def run_many(logic: Any, in_seqs: Sequence[int], values: list[Any], seqs: list[int], outs: list[Any]) -> None:
    """Rules 1-4 of a stateful node (no input comparison, no transformers) over one run of inputs numbered
    ``in_seqs``, computed with one ``calculate_many`` call (``logic.many``); appends what it propagates to
    ``seqs``/``outs``. The same outcome as ``NodeLogic._step`` on each input in turn; each compute's
    duration is observed as the run's mean (one clock reading per run, not two per record)."""
    if not values:
        return
    started = perf_counter()
    try:
        results = logic.many[1](values)
    except Exception as exc:  # the component failed as a whole: every input of the run is in error
        results = [exc] * len(values)
    each = (perf_counter() - started) / len(values)
    logic.times.extend([each] * len(values))
    always, cur = logic.always, logic.output
    for seq, value, out in zip(in_seqs, values, results, strict=True):
        if type(out) is not dict:
            logic.seq = seq
            if isinstance(out, LateRecord):  # counted and dead-lettered, not an error
                logic.states.late(str(out), value, logic.on_error, seq)
                continue
            if isinstance(out, BaseException):
                logic.record_error(describe_error(out), value)
                continue
            if out is None:
                continue
            if not isinstance(out, dict):
                logic.record_error(describe_error(not_a_map("calculator", logic.calc_name, out)), value)
                continue
        if not always and (out == cur or nan_equal(out, cur)):
            continue
        cur = out
        seqs.append(seq)
        outs.append(out)
    logic.input, logic.output, logic.seq = values[-1], cur, in_seqs[-1]
