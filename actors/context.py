"""What every actor of one DAG incarnation shares: the model, the wiring, the counters, the gate.

A :class:`DagContext` is built for one incarnation of a DAG's actors (see
:mod:`actors.incarnation`); a restart builds a new one around the same
:class:`~actors.stats.DagStats`, so counters survive it. :class:`DagActor` is the base of
every actor: it reports failures to the DAG's supervision and goes quiet once its
incarnation is being torn down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.deadletters import DeadLetterBox
from actors.gate import IngressGate
from actors.messages import Control
from actors.stats import DagStats
from graphs.model import DagModel
from graphs.values import describe_error

log = logging.getLogger("dagserver.actors")

COORDINATOR = "coordinator"


@dataclass
class DagContext:
    """Shared by the actors of one incarnation of a DAG."""

    dag: DagModel
    stats: DagStats
    gate: IngressGate
    dead_letters: DeadLetterBox
    on_actor_failure: Callable[[str, BaseException], None]
    clock: Callable[[], float] = time.time
    refs: dict[str, pykka.ActorRef] = field(default_factory=dict)
    restore: dict[str, Any] | None = None  # the checkpoint this incarnation starts from
    tearing_down: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)  # a graceful stop is draining
    drained: threading.Event = field(default_factory=threading.Event)  # the drain finished (or failed)
    reading: threading.Event = field(default_factory=threading.Event)  # metronome tickers tick while set
    busy: dict[str, float] = field(default_factory=dict)  # actor -> monotonic start of a sink call
    endpoints: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # actor -> (its stats, its source/sink)
    saver: Any = None  # the coordinator's CheckpointSaver (actors/saver.py), stopped at teardown
    failure: str = ""  # the first actor failure of this incarnation, described
    generation: int = -1  # the runtime generation that installed this incarnation
    capture: Any = None  # the Capture (actors/capture.py) the coordinator and publishers feed, while one runs
    ingress: Any = None  # an IngressIndex (actors/ingress.py) when the DAG keeps dead letters: their records

    def send(self, target: str, data: Any) -> None:
        """Tell ``target``; a receiver that already died is ignored (the DAG is restarting)."""
        try:
            self.refs[target].tell(data)
        except pykka.ActorDeadError:
            if not self.tearing_down.is_set():
                log.debug("dag %s: %s is gone", self.dag.name, target)

    def dead_letter(self, letter: dict[str, Any]) -> None:
        self.dead_letters.put(letter)

    def fail(self, actor: str, exc: BaseException) -> None:
        """Record ``actor``'s failure (the first one wins) and report it to supervision."""
        if not self.failure:
            self.failure = f"{actor} failed: {describe_error(exc)}"
        self.on_actor_failure(actor, exc)


def escaped(exc: BaseException) -> RuntimeError:
    """A BaseException from user code (``sys.exit()``...) as an ordinary failure of its actor."""
    return RuntimeError(f"{type(exc).__name__} raised: {exc}")


class DagActor(pykka.ThreadingActor):
    """Base of every actor of a DAG.

    Subclasses implement :meth:`receive`; once the incarnation is tearing down, messages
    are dropped unread so the actor stops quickly whatever its inbox holds.
    """

    use_daemon_thread = True

    def __init__(self, ctx: DagContext, actor_name: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.actor_name = actor_name

    def on_start(self) -> None:
        try:
            self.on_open()
        except BaseException as exc:  # pykka stops the actor without on_failure here: report it
            self.ctx.fail(self.actor_name, exc if isinstance(exc, Exception) else escaped(exc))
            self._release(failed=True)
            if isinstance(exc, Exception):
                raise
            raise escaped(exc) from exc

    def on_open(self) -> None:
        """Acquire what the actor needs (open a source or sink); runs in the actor's thread."""

    def on_receive(self, message: Any) -> Any:
        if self.ctx.tearing_down.is_set():
            return None
        if message == Control.READY:  # asked once built (or as a barrier): everything before it is handled
            return True
        try:
            return self.receive(message)
        except Exception:
            raise
        except BaseException as exc:  # e.g. sys.exit() in user code: pykka would stop every actor of the process
            raise escaped(exc) from exc

    def receive(self, message: Any) -> Any:
        """Handle one message (msgpack bytes, or a :class:`~actors.messages.Control` sent with ``ask``)."""
        raise NotImplementedError

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.ctx.fail(self.actor_name, exception_value)  # reported first: a failing cleanup must not hide it
        self._release(failed=True)

    def on_stop(self) -> None:
        self._release(failed=False)

    def _release(self, failed: bool) -> None:
        try:
            self.on_teardown(failed)
        except Exception as exc:
            log.warning("dag %s: %s could not release what it holds: %s", self.ctx.dag.name, self.actor_name,
                        describe_error(exc))

    def on_teardown(self, failed: bool) -> None:
        """Release what the actor holds (sources, sinks); runs on stop and on failure."""
