"""Writing checkpoints beside the coordinator, so an fsync never holds up the records behind it.

The coordinator decides what a checkpoint holds (SPEC §3) and hands it to its DAG's
:class:`CheckpointSaver`; the saver's thread then does what must happen in order — flush
the dead letters, write the checkpoint (atomically, fsynced), commit the positions it
covers at the sources — while the coordinator goes on cutting and completing epochs.
Positions are still committed only once a checkpoint covering them is durable.

The coordinator completes a checkpoint epoch only once the checkpoint before it is
durable (the saver tells it, ``on_saved``), so one is in hand at a time and the durable
checkpoint is never more than two intervals behind (a crash replays at most that and what
was in flight). Should several be handed over during one write all the same, only the
newest is written: it covers the older ones.
A failure (a dead-letter sink or a disk that refuses) fails the coordinator, which
restarts the DAG from the last checkpoint written. While its server is fenced (SPEC §9)
a saver writes nothing.

Usage::

    saver = CheckpointSaver(ctx, write_checkpoint)       # starts its thread
    saver.submit({"positions": {...}, "nodes": {...}, ...})
    saver.when_idle(ctx.drained.set)                     # once nothing is pending or being written
    saver.stop(timeout=1.0)                              # at teardown: finish the write in hand
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from actors.context import COORDINATOR, DagContext, escaped
from actors.lease import LEASE
from actors.messages import Commit, encode
from actors.subscriber import subscriber_actor_name

log = logging.getLogger("dagserver.checkpoint")


class CheckpointSaver:
    """One DAG incarnation's checkpoint writer thread."""

    def __init__(self, ctx: DagContext, write: Callable[[dict[str, Any]], None] | None,
                 on_saved: Callable[[], None] | None = None) -> None:
        """``on_saved`` is called on the saver's thread after each checkpoint written (or skipped)."""
        self.ctx = ctx
        self.write = write
        self.on_saved = on_saved
        self._cond = threading.Condition()
        self._pending: dict[str, Any] | None = None
        self._writing = False
        self._stopped = False
        self._on_idle: Callable[[], None] | None = None
        self.written = 0  # checkpoints written (or skipped while fenced) so far
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"checkpoints-{ctx.dag.name}")
        self._thread.start()

    def submit(self, checkpoint: dict[str, Any]) -> None:
        """Write ``checkpoint`` next (replacing one still waiting), then commit its positions."""
        with self._cond:
            self._pending = checkpoint
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._writing

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once nothing is waiting or being written: now, or on the saver's thread."""
        with self._cond:
            if self._pending is not None or self._writing:
                self._on_idle = callback
                return
        callback()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting or being written; False on timeout (for tests and benches)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._writing, timeout)

    def stop(self, timeout: float) -> bool:
        """Write nothing more (a checkpoint still waiting is dropped: the DAG replays from the one
        before it); wait up to ``timeout`` for a write in hand. Whether the thread is done."""
        with self._cond:
            self._stopped = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopped)
                if self._stopped:
                    return
                checkpoint, self._pending, self._writing = self._pending, None, True
            try:
                self._save(checkpoint)  # type: ignore[arg-type]
            except BaseException as exc:  # a dead-letter sink is user code too: sys.exit() fails the DAG
                self.ctx.fail(COORDINATOR, exc if isinstance(exc, Exception) else escaped(exc))
                return
            finally:
                with self._cond:
                    self._writing = False
                    self.written += 1
                    idle = self._pending is None
                    callback, self._on_idle = (self._on_idle, None) if idle else (None, self._on_idle)
                    self._cond.notify_all()
            if self.on_saved is not None:
                self.on_saved()
            if callback is not None:
                callback()

    def _save(self, checkpoint: dict[str, Any]) -> None:
        ctx = self.ctx
        if not LEASE.valid():  # fenced (SPEC §9): an older checkpoint only means more replay, never loss
            log.warning("dag %s: not the leader's lease any more; checkpoint skipped", ctx.dag.name)
            return
        busy = ctx.busy
        busy[COORDINATOR] = time.monotonic()  # the watchdog fails a dead-letter sink that hangs here
        try:
            ctx.dead_letters.flush()  # durable before the positions they cover are committed
        finally:
            busy.pop(COORDINATOR, None)
        if self.write is not None:
            self.write(checkpoint)
        for subscriber, position in checkpoint["positions"].items():
            target = subscriber_actor_name(subscriber)
            if target in ctx.refs:
                ctx.send(target, encode(Commit(position)))
