"""What a running DAG lets an operator do to see inside it: inject records, capture traffic (SPEC §13).

:class:`Observable` is a part of :class:`actors.runtime.DagRuntime`, kept here so the runtime's
module holds its lifecycle only. It reads the runtime's ``_lock``, ``_ctx``, ``state``, ``dag``
and ``captures``.

Usage::

    runtime.inject("orders", [{"price": 2}])        # '' when they went in, else why not
    runtime.start_capture(Capture("c1", records=20, seconds=60))
    runtime.capture_status("c1")                     # {"state": "taking" | "done" | ..., ...}
"""

from __future__ import annotations

import threading
from typing import Any

from actors.capture import Capture
from actors.context import DagContext
from actors.injection import InjectionError, inject_at_subscriber
from actors.states import DagState
from graphs.model import DagModel

CAPTURES_KEPT = 4  # captures a runtime remembers (the latest)
RUNNING, SUSPENDED = DagState.RUNNING, DagState.SUSPENDED


class Observable:
    """Inject and capture on a DAG's current incarnation."""

    dag: DagModel
    state: DagState
    captures: dict[str, tuple[Capture, DagContext]]
    _lock: threading.Lock
    _ctx: DagContext | None

    def inject(self, subscriber: str, records: list[dict]) -> str:
        """``records`` enter as if ``subscriber`` had read them (SPEC §13): same ingress order, epochs and
        checkpoints, but no source position, so nothing is committed for them. '' when they went in,
        else why not (the DAG is not running, or had no room for them in time)."""
        with self._lock:
            ctx, state = self._ctx, self.state
        if ctx is None or state not in (RUNNING, SUSPENDED) or ctx.stopping.is_set() or ctx.tearing_down.is_set():
            return f"dag {self.dag.name!r} is {state}: records can be injected only while it runs"
        try:
            inject_at_subscriber(self, subscriber, records, count=False)
        except (InjectionError, TimeoutError) as exc:
            return str(exc)
        return ""

    def start_capture(self, capture: Capture) -> str:
        """Have the running actors feed ``capture``; '' when they do, else why not."""
        with self._lock:
            ctx, state = self._ctx, self.state
            if ctx is None or state not in (RUNNING, SUSPENDED) or ctx.stopping.is_set():
                return f"dag {self.dag.name!r} is {state}: a capture needs it running"
            if ctx.capture is not None and ctx.capture.taking:
                return f"capture {ctx.capture.id} of dag {self.dag.name!r} is still taking records"
            ctx.capture = capture
            self.captures[capture.id] = (capture, ctx)
            while len(self.captures) > CAPTURES_KEPT:
                del self.captures[next(iter(self.captures))]
        return ""

    def capture_status(self, capture_id: str) -> dict[str, Any] | None:
        """A capture's status (and its content once done); None when this runtime has no such capture."""
        with self._lock:
            found, current = self.captures.get(capture_id), self._ctx
        if found is None:
            return None
        capture, ctx = found
        if ctx is not current or ctx.tearing_down.is_set():
            capture.fail("the DAG stopped or restarted before the capture was done")
        return capture.status()
