"""One incarnation of a DAG's actors: built whole or not at all, torn down within a deadline.

:func:`build` makes every component and adapter, starts the coordinator, publisher, node
and subscriber actors and waits until each has opened what it needs. If any step fails,
whatever was built is torn down and :class:`BuildError` names the step (SPEC §4: a DAG is
never ``running`` with some of its actors). :func:`teardown` stops the actors —
coordinator first, then the subscribers (whose sources take back what was read but not
committed), then the rest — and gives up on any still busy (say, in a hung sink write) at
the deadline, so a stuck actor never holds up its DAG's supervision.

Two helper threads live as long as an incarnation: one ticker per MetronomeNode, and a
watchdog failing a publisher whose sink call outlasts its ``publish_timeout``.

Usage::

    ctx = build(dag, stats, Wiring(open_source, open_sink, on_failure, write_checkpoint))
    ...
    stuck = teardown(ctx, deadline=time.monotonic() + 5)   # names of actors abandoned
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from actors.context import COORDINATOR, DagContext
from actors.coordinator import CoordinatorActor
from actors.deadletters import DeadLetterBox
from actors.fusion import node_chains
from actors.gate import IngressGate
from actors.ingress import IngressIndex
from actors.messages import Control, Tick, encode
from actors.node import NodeActor, node_actor_name
from actors.nodelogic import NodeLogic
from actors.publisher import PublisherActor, publisher_actor_name
from actors.stats import DagStats
from actors.subscriber import SubscriberActor, subscriber_actor_name
from adapters.base import DEFAULT_PUBLISH_TIMEOUT, Sink, Source
from adapters.registry import is_shareable
from graphs.catalog import build_component, callable_of
from graphs.model import METRONOME_NODE, DagModel
from graphs.record_schema import compile_schema
from graphs.values import describe_error

log = logging.getLogger("dagserver.runtime")

BUILD_TIMEOUT = 30.0  # seconds every actor of a new incarnation gets to open its source or sink
WATCH_INTERVAL = 0.25
TEARDOWN_GRACE = 0.2  # seconds each group of actors gets to stop even past a teardown's deadline


class BuildError(RuntimeError):
    """An incarnation could not be built; the message names the step and the cause."""


class PublishTimeout(TimeoutError):
    """A sink call took longer than the publisher's ``publish_timeout``."""


@dataclass
class Wiring:
    """What an incarnation needs from the runtime that owns it."""

    open_source: Callable[[str, Mapping[str, Any]], Source]
    open_sink: Callable[[str, Mapping[str, Any]], Sink]
    on_failure: Callable[[DagContext, str, BaseException], None]
    write_checkpoint: Callable[[dict], None] | None = None
    clock: Callable[[], float] = time.time
    subscribers: bool = True  # False: nothing reads (records arrive otherwise, e.g. in benchmarks)
    tickers: bool = True  # False: MetronomeNodes fire only when told (replay)
    build_timeout: float = BUILD_TIMEOUT
    replica: int | None = None  # which copy of the DAG (None: the only one)
    server: str = ""  # which server runs it, stable across its restarts (see source_identity)


def publish_timeout(config: Mapping[str, Any]) -> float:
    """A publisher's ``publish_timeout`` (validated: a positive number of seconds), or the default."""
    value = config.get("publish_timeout")
    return DEFAULT_PUBLISH_TIMEOUT if value is None else float(value)


def build(dag: DagModel, stats: DagStats, wiring: Wiring, restore: dict[str, Any] | None = None,
          reading: bool = True) -> DagContext:
    """Start a complete set of actors for ``dag``, or raise BuildError having started none."""
    box = DeadLetterBox(stats)
    # one spare slot per subscriber: what an idle subscriber holds while it waits (actors/subscriber.py)
    gate = IngressGate(dag.max_records * (dag.max_inflight + 1) + len(dag.subscribers), dag.max_bytes)
    ctx = DagContext(dag, stats, gate, box, on_actor_failure=lambda a, e: None, clock=wiring.clock,
                     restore=restore)
    ctx.on_actor_failure = lambda actor, exc: wiring.on_failure(ctx, actor, exc)
    ctx.ingress = IngressIndex() if dag.dead_letter else None
    step = "dead_letter"
    try:
        if dag.dead_letter:
            sink = wiring.open_sink(dag.dead_letter, {})
            sink.open()
            box.sink = sink
        step = "coordinator"
        ctx.refs[COORDINATOR] = CoordinatorActor.start(ctx, wiring.write_checkpoint)
        for name, spec in dag.publishers.items():
            if dag.publisher_feeds(name):
                step = f"publisher {name!r} ({spec.destination})"
                ctx.refs[publisher_actor_name(name)] = PublisherActor.start(
                    ctx, name, wiring.open_sink(spec.destination, spec.config))
        node_states = (restore or {}).get("nodes") or {}
        on_error = _node_error_reporter(ctx)
        for chain in reversed(node_chains(dag)):  # children first: a node sends to actors already there
            logics = []
            for name in chain:
                step = f"node {name!r}"
                calcs, trans = node_components(dag, name)
                logic = NodeLogic(dag, name, calcs, trans, stats.nodes[name], on_error, wiring.clock)
                if name in node_states:
                    parents = [(node_states.get(e.from_node) or {}).get("output") for e in dag.parents[name]]
                    logic.restore(node_states[name], parents)
                logics.append(logic)
            ctx.refs[node_actor_name(chain[0])] = NodeActor.start(ctx, logics)
        if wiring.subscribers:
            positions = (restore or {}).get("positions") or {}
            for name, spec in dag.subscribers.items():
                if dag.node_for_subscriber(name) is None:
                    continue
                step = f"subscriber {name!r} ({spec.source})"
                if wiring.replica is not None and spec.source.startswith("custom://") and not is_shareable(spec.source):
                    # the supervisor checks custom classes by name only (it imports no user code): the rule is kept here
                    raise ValueError(f"replicas need sources they can share, and {spec.source} does not say it can "
                                     "(a class attribute shareable = True)")
                config = {**spec.config, **source_identity(dag.name, name, wiring.replica, wiring.server)}
                schema = spec.config.get("schema")
                checker = None if schema is None else compile_schema(schema, dag.source_path)
                ctx.refs[subscriber_actor_name(name)] = SubscriberActor.start(
                    ctx, name, wiring.open_source(spec.source, config), positions.get(name), reading, checker)
        step = "opening sources and sinks"
        _wait_ready(ctx, time.monotonic() + wiring.build_timeout)
        step = "its watchdog"
        limits = {publisher_actor_name(n): publish_timeout(s.config) for n, s in dag.publishers.items()}
        # the coordinator flushing the dead-letter sink waits no longer than the DAG's publishers do
        limits[COORDINATOR] = min(limits.values(), default=DEFAULT_PUBLISH_TIMEOUT)
    except Exception as exc:
        teardown(ctx, time.monotonic() + 5.0)
        cause = ctx.failure or describe_error(exc)
        raise BuildError(f"could not build {step}: {cause}") from exc
    if reading:
        ctx.reading.set()
    _start_helpers(ctx, wiring, limits)
    return ctx


def source_identity(dag: str, subscriber: str, replica: int | None, server: str = "") -> dict[str, Any]:
    """What a source is told of who reads it (keys starting with ``_`` are the runtime's, not the
    DAG file's): shared sources name their consumer group ``dagserver.DAG.SUBSCRIBER``, and a
    source whose broker tracks consumers by name (Redis streams and lists) names this one after
    ``_server`` and ``_replica``: the same after a restart, different on another server."""
    return {"_dag": dag, "_subscriber": subscriber, "_replica": 0 if replica is None else replica,
            "_server": server or socket.gethostname()}


def server_identity(state_dir: str | os.PathLike[str] | None) -> str:
    """This server's name for consumers: the host name, and a digest of its state directory, so
    two servers on one host (different ``state_dir``) differ and a restarted one is the same.

    >>> server_identity(None) == socket.gethostname()
    True
    """
    host = socket.gethostname()
    if state_dir is None:
        return host
    digest = hashlib.sha1(os.path.abspath(os.fspath(state_dir)).encode("utf-8")).hexdigest()[:8]
    return f"{host}-{digest}"


def node_components(dag: DagModel, node: str) -> tuple[dict[str, Callable], dict[str, Callable]]:
    """The calculator and transformers one node uses, built for it alone (user classes need not be
    thread-safe: each instance lives in one actor)."""
    spec = dag.nodes[node]
    calcs = {}
    if spec.calculator:
        calcs[spec.calculator] = callable_of(build_component(dag.calculators[spec.calculator], "calculator"),
                                             "calculator")
    names = [*spec.input_transformers, *spec.output_transformers,
             *(e.data_transformer for e in dag.parents[node] if e.data_transformer)]
    trans = {t: callable_of(build_component(dag.transformers[t], "transformer"), "transformer")
             for t in dict.fromkeys(names)}
    return calcs, trans


def _node_error_reporter(ctx: DagContext) -> Callable[[str, str, Any, int], None]:
    def report(node: str, message: str, input_value: Any, seq: int) -> None:
        subscriber, record = ctx.ingress.find(seq) if ctx.ingress is not None else (None, None)
        ctx.dead_letter({"dag": ctx.dag.name, "node": node, "error": message, "input": input_value,
                         "subscriber": subscriber, "record": record})

    return report


def _wait_ready(ctx: DagContext, deadline: float) -> None:
    """Every actor answered Control.READY, i.e. its on_open succeeded; raise otherwise."""
    futures = [(name, ref.ask(Control.READY, block=False)) for name, ref in ctx.refs.items()]
    for name, future in futures:
        try:
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except pykka.Timeout as exc:
            raise TimeoutError(f"{name} did not open within the build timeout") from exc
        except pykka.ActorDeadError as exc:
            raise RuntimeError(ctx.failure or f"{name} stopped while opening") from exc


def teardown(ctx: DagContext, deadline: float) -> list[str]:
    """Stop every actor of ``ctx`` by ``deadline``; the names of those that did not stop in time."""
    ctx.tearing_down.set()
    ctx.reading.clear()
    ctx.drained.set()  # nothing is left to drain: a waiting stop() ends now
    ctx.gate.close()
    subscribers = [n for n in ctx.refs if n.startswith("subscriber:")]
    others = [n for n in ctx.refs if n != COORDINATOR and n not in subscribers]
    stuck: list[str] = []
    for group in ([COORDINATOR], subscribers, others):
        futures = []
        for name in group:
            ref = ctx.refs.get(name)
            if ref is not None:
                futures.append((name, ref.stop(block=False)))
        for name, future in futures:
            try:  # each group gets a moment even when an earlier one used the deadline up
                future.get(timeout=max(TEARDOWN_GRACE, deadline - time.monotonic()))
            except pykka.Timeout:
                stuck.append(name)
            except pykka.ActorDeadError:
                pass
    if ctx.saver is not None and not ctx.saver.stop(max(TEARDOWN_GRACE, deadline - time.monotonic())):
        stuck.append("the checkpoint writer")
    if not _closed_in_time(ctx, max(TEARDOWN_GRACE, deadline - time.monotonic())):
        stuck.append("the dead-letter sink")
    if stuck:
        log.warning("dag %s: %s still busy at the deadline; left to finish on their own",
                    ctx.dag.name, ", ".join(stuck))
    return stuck


def _closed_in_time(ctx: DagContext, timeout: float) -> bool:
    """Flush and close the dead letters on a thread of their own, waiting at most ``timeout``."""
    def close() -> None:
        try:
            ctx.dead_letters.close()
        except Exception as exc:
            log.error("dag %s: dead letters could not be written: %s", ctx.dag.name, describe_error(exc))

    closer = threading.Thread(target=close, daemon=True, name=f"dead-letters-{ctx.dag.name}")
    closer.start()
    closer.join(timeout)
    return not closer.is_alive()


def _start_helpers(ctx: DagContext, wiring: Wiring, limits: Mapping[str, float]) -> None:
    dag = ctx.dag
    if wiring.tickers:
        for name, node in dag.nodes.items():
            if node.type == METRONOME_NODE:
                threading.Thread(target=_tick, args=(ctx, name, node.interval), daemon=True,
                                 name=f"ticker-{dag.name}-{name}").start()
    threading.Thread(target=_watch, args=(ctx, limits), daemon=True, name=f"watchdog-{dag.name}").start()


def _tick(ctx: DagContext, node: str, interval: float) -> None:
    while not ctx.tearing_down.wait(interval):
        if ctx.reading.is_set():
            ctx.send(COORDINATOR, encode(Tick(node, None)))


def _watch(ctx: DagContext, limits: Mapping[str, float]) -> None:
    """Fail a publisher whose sink call has run longer than its publish_timeout (SPEC §4), and keep the
    sources' and sinks' statuses current in the DAG's figures."""
    interval = min([WATCH_INTERVAL, *(limit / 4 for limit in limits.values())])
    while not ctx.tearing_down.wait(interval):
        for stats, adapter in list(ctx.endpoints.values()):  # a status shows while a call hangs, or reads wait
            stats.status = str(getattr(adapter, "status", stats.status))
        now = time.monotonic()
        for actor, since in list(ctx.busy.items()):
            limit = limits.get(actor)
            if limit is not None and now - since > limit:
                ctx.fail(actor, PublishTimeout(f"a sink call (write or flush) has not returned for "
                                               f"{now - since:.1f}s (publish_timeout {limit:g}s)"))
                return
