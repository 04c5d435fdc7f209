"""``dagserver replay``: run recorded input through a DAG with in-memory capture (SPEC §7).

Each line of the events file is ``{"subscriber": NAME, "record": {...}}`` (or, for a
MetronomeNode, ``{"tick": NODE}`` with an optional ``"record"``), ingested in file
order. Every publication is printed as ``{"publisher": NAME, "record": {...}}``, in
publish order. Both engines print the same lines for each publisher; that is the point of
the command. (With several publishers, the actors engine interleaves different
publishers' lines in the order their sinks received them.)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, TextIO

from actors.runtime import DagRuntime
from actors.states import DagState
from adapters import registry
from adapters.base import Sink, Source
from graphs.errors import DagValidationError
from graphs.loader import load_dag
from graphs.model import METRONOME_NODE, DagModel
from graphs.reference import evaluate
from graphs.suggest import did_you_mean
from graphs.ticks import tick_record

Event = tuple[str, str, Any]  # ("record", subscriber, record) or ("tick", node, tick record)
Publication = tuple[str, Any]


class EventsError(ValueError):
    """The events file is not what replay reads; the message names the line."""


def read_events(path: str, dag: DagModel) -> list[Event]:
    """Parse an events file against ``dag``; raises EventsError naming every bad line."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError as exc:
        raise EventsError(f"{path}: cannot read events file: {exc.strerror or exc}") from exc
    items: list[tuple[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append((f"{path}: line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}: line {number}, column {exc.colno}: not JSON: {exc.msg}")
    try:
        events = parse_events(items, dag)
    except EventsError as exc:
        problems.append(str(exc))
    if problems:
        raise EventsError("\n".join(problems))
    return events


def parse_events(items: list[tuple[str, Any]], dag: DagModel) -> list[Event]:
    """Events from decoded ``(where, event)`` pairs, ``where`` naming the line or JSON path in the messages;
    raises EventsError naming every bad one."""
    events: list[Event] = []
    problems: list[str] = []
    ticks: dict[str, int] = {}
    metronomes = [n for n, spec in dag.nodes.items() if spec.type == METRONOME_NODE]
    for where, event in items:
        if not isinstance(event, dict):
            problems.append(f"{where}: an event is an object, got {json.dumps(event)[:60]}")
            continue
        if "tick" in event:
            node = event["tick"]
            if node not in metronomes:
                hint = did_you_mean(str(node), metronomes)
                problems.append(f"{where}: tick: {node!r} is not a MetronomeNode"
                                + (f" (did you mean {hint!r}?)" if hint else ""))
                continue
            ticks[node] = ticks.get(node, 0) + 1
            record = event.get("record")
            if record is None:
                message = str(dag.nodes[node].config.get("message", "tick"))
                record = tick_record(message, ticks[node], time.time())
            events.append(("tick", node, record))
            continue
        unknown = sorted(set(event) - {"subscriber", "record"})
        if unknown:
            hint = did_you_mean(unknown[0], ["subscriber", "record", "tick"])
            problems.append(f"{where}: unknown key {unknown[0]!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
            continue
        subscriber = event.get("subscriber")
        if subscriber not in dag.subscribers:
            hint = did_you_mean(str(subscriber), list(dag.subscribers))
            problems.append(f"{where}: subscriber: unknown subscriber {subscriber!r}"
                            + (f" (did you mean {hint!r}?)" if hint else ""))
            continue
        if "record" not in event:
            problems.append(f"{where}: record: missing")
            continue
        events.append(("record", subscriber, event["record"]))
    if problems:
        raise EventsError("\n".join(problems))
    return events


def replay_reference(dag: DagModel, events: list[Event]) -> list[Publication]:
    """The reference evaluator's publications for ``events`` (the oracle side of replay)."""
    return evaluate(dag, events)


class ReplayScript:
    """The events in file order, handed out so that the coordinator receives them in that order.

    Each subscriber actor reads from its own :class:`ReplaySource`; a source hands out the
    head of the script only when it belongs to its subscriber. A subscriber may read more
    than once for one batch (a record, then what came with it), and asks its source's
    position just before it sends the batch to the coordinator: so the script lets other
    subscribers on only when that subscriber comes back for more after asking
    (:meth:`seal`). Ticks are sent by the driver when they reach the head. So the ingress
    order is the file order, whatever the threads do.
    """

    def __init__(self, events: list[Event]) -> None:
        self.steps: deque[list] = deque()
        for kind, name, record in events:
            if kind == "record" and self.steps and self.steps[-1][0] == "record" and self.steps[-1][1] == name:
                self.steps[-1][2].append(record)
            else:
                self.steps.append([kind, name, [record]])
        self.cond = threading.Condition()
        self.out_with: str | None = None  # the subscriber whose last batch may not be sent yet
        self.sealed = False  # out_with asked its position: its batch is sent before it reads again
        self.handed = 0
        self.finished = False  # every event reached the coordinator: a read now returns at once

    def take(self, subscriber: str, max_records: int, timeout: float) -> list[Any]:
        with self.cond:
            if self.out_with == subscriber and self.sealed:  # back: what it read before is at the coordinator
                self.out_with = None
                self.cond.notify_all()
            if not self.cond.wait_for(lambda: self.finished or self._head_is(subscriber), timeout) or self.finished:
                return []
            step = self.steps[0]
            batch, step[2] = step[2][:max_records], step[2][max_records:]
            if not step[2]:
                self.steps.popleft()
            self.out_with, self.sealed = subscriber, False
            self.handed += len(batch)
            return batch

    def seal(self, subscriber: str) -> None:
        """``subscriber`` has read its whole batch and sends it now (it asked for its position)."""
        with self.cond:
            if self.out_with == subscriber:
                self.sealed = True

    def _head_is(self, subscriber: str) -> bool:
        """The head is ``subscriber``'s, and nobody else's batch is on its way (its own may still grow)."""
        return (self.out_with in (None, subscriber) and bool(self.steps)
                and self.steps[0][:2] == ["record", subscriber])

    def drive(self, runtime: DagRuntime, timeout: float) -> None:
        """Send the ticks when they come up; return once every event has reached the coordinator."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.steps or self.out_with is not None:
                head = self.steps[0] if self.steps else None
                if self.out_with is None and head is not None and head[0] == "tick":
                    runtime.tick(head[1], head[2][0])
                    self.steps.popleft()
                    self.cond.notify_all()
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or runtime.state not in (DagState.RUNNING, DagState.STARTING, DagState.RESTARTING):
                    raise RuntimeError(f"replay stalled with {len(self.steps)} steps left ({runtime.state}: "
                                       f"{runtime.reason})")
                self.cond.wait(min(left, 0.1))
            self.finished = True  # a stop's pause need not wait for a read that can find nothing
            self.cond.notify_all()


class ReplaySource(Source):
    """A subscriber's share of a :class:`ReplayScript`."""

    def __init__(self, uri: str, config: Mapping[str, Any], script: ReplayScript, subscriber: str) -> None:
        super().__init__(uri, config)
        self.script = script
        self.subscriber = subscriber
        self.count = 0

    def open(self, position: Any | None) -> None:
        self.status = "connected"

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        batch = self.script.take(self.subscriber, max_records, timeout)
        self.count += len(batch)
        return batch

    def position(self) -> int:
        """Asked just after a batch is read, before it is sent on: the script may move on after that."""
        self.script.seal(self.subscriber)
        return self.count

    def close(self) -> None:
        self.status = "closed"


class CaptureSink(Sink):
    """Collects what its publisher writes, in arrival order, into the shared ``captured`` list."""

    def __init__(self, uri: str, config: Mapping[str, Any], captured: list[Publication], publisher: str,
                 lock: threading.Lock) -> None:
        super().__init__(uri, config)
        self.captured = captured
        self.publisher = publisher
        self.lock = lock

    def open(self) -> None:
        self.status = "connected"

    def write_batch(self, records: list[dict]) -> None:
        with self.lock:
            self.captured.extend((self.publisher, record) for record in records)

    def close(self) -> None:
        self.status = "closed"


def replay_actors(dag: DagModel, events: list[Event], timeout: float = 600.0) -> list[Publication]:
    """Run ``events`` through the actor runtime; publications in the order the sinks received them."""
    return run_actors(dag, events, timeout)[0]


def run_actors(dag: DagModel, events: list[Event], timeout: float = 600.0,
               state_dir: str | None = None) -> tuple[list[Publication], DagRuntime]:
    """:func:`replay_actors`, also returning the stopped runtime (its counters stay readable).

    Every subscriber and publisher is replaced by in-memory capture, but the records take
    the server's own path: subscriber actors, the coordinator, node actors, publisher
    actors and ``write_batch``. With ``state_dir`` the DAG starts from the checkpoint there
    (if any) and leaves its final one there.
    """
    script = ReplayScript(events)
    captured: list[Publication] = []
    lock = threading.Lock()
    subscribers = {name: dataclasses.replace(spec, config={**spec.config, "source": f"replay://{name}"})
                   for name, spec in dag.subscribers.items()}
    sinks = {name: dataclasses.replace(spec, config={**spec.config, "destination": f"replay://{name}"})
             for name, spec in dag.publishers.items()}
    uris = {f"replay://{name}": name for name in subscribers}
    publishers = {f"replay://{name}": name for name in sinks}

    def source(uri: str, config: Mapping[str, Any]) -> Source:
        return ReplaySource(uri, config, script, uris[uri])

    def sink(uri: str, config: Mapping[str, Any]) -> Sink:  # the dead letters' sink captures nothing
        return CaptureSink(uri, config, captured if uri in publishers else [], publishers.get(uri, ""), lock)

    # replayed input has no time of day: the DAG's daily window or schedule does not apply
    dag = dataclasses.replace(dag, subscribers=subscribers, publishers=sinks, start_time=None, end_time=None,
                              duration_seconds=None, schedule=None)
    runtime = DagRuntime(dag, source_factory=source, sink_factory=sink, tick_timers=False, state_dir=state_dir)
    runtime.start()
    try:
        script.drive(runtime, timeout)
    finally:
        drained = runtime.stop(timeout=timeout)
    if not drained:
        raise RuntimeError(f"replay did not finish within {timeout:g}s: {runtime.reason}")
    return captured, runtime


def run_replay(dag_path: str, events_path: str, engine: str = "actors", epoch_records: int | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The CLI command: 0 on success, 2 on an invalid DAG or events file."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        dag = load_dag(dag_path, uris=registry)
    except DagValidationError as exc:
        print(str(exc), file=err)
        return 2
    if epoch_records is not None:
        if epoch_records < 1:
            print(f"--epoch-records: must be a positive number of records, got {epoch_records}", file=err)
            return 2
        dag = dataclasses.replace(dag, max_records=epoch_records)
    try:
        events = read_events(events_path, dag)
    except EventsError as exc:
        print(str(exc), file=err)
        return 2
    published = replay_reference(dag, events) if engine == "reference" else replay_actors(dag, events)
    for publisher, record in published:
        out.write(json.dumps({"publisher": publisher, "record": record}, default=_json_default) + "\n")
    out.flush()
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
