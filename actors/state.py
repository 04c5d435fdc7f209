"""A node's component state in the runtime (SPEC §11): snapshots at checkpoints, restores, figures.

:class:`NodeStates` sits beside a :class:`~actors.nodelogic.NodeLogic`: it finds which of the
node's components keep state (``snapshot()``/``restore()``) from the bound methods the node
calls, takes their snapshots on the node's own thread at each checkpoint epoch (encoded
there: see :class:`graphs.state.ComponentStates`), restores them when an incarnation is
built from a checkpoint, and keeps the node's state figures current in its
:class:`~actors.stats.NodeStats`: ``late`` and ``evictions`` (counters), ``state_groups`` and
``state_bytes`` (gauges; the size of the latest snapshot).

Usage::

    states = NodeStates("per_minute", calc, transformers, stats)
    blobs = states.snapshot()       # raises graphs.state.StateError naming the node
    states.restore(blobs)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors.stats import NodeStats
from graphs.state import ComponentStates, node_state_components, owner_of, state_figures

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
