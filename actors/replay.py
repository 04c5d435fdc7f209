"""``dagserver replay``: run recorded input through a DAG with in-memory capture (SPEC §7).

Each line of the events file is ``{"subscriber": NAME, "record": {...}}`` (or, for a
MetronomeNode, ``{"tick": NODE}`` with an optional ``"record"``), ingested in file
order. Every publication is printed as ``{"publisher": NAME, "record": {...}}``, in
publish order. Both engines print the same lines; that is the point of the command.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from actors.runtime import DagRuntime
from adapters.base import Sink
from adapters.metronome import tick_record
from graphs.errors import DagValidationError
from graphs.loader import load_dag
from graphs.model import METRONOME_NODE, DagModel
from graphs.reference import evaluate
from graphs.suggest import did_you_mean
from graphs.values import reject_reason

Event = tuple[str, str, Any]  # ("record", subscriber, record) or ("tick", node, tick record)
Publication = tuple[str, Any]


class EventsError(ValueError):
    """The events file is not what replay reads; the message names the line."""


def read_events(path: str, dag: DagModel) -> list[Event]:
    """Parse an events file against ``dag``; raises EventsError naming every bad line."""
    events: list[Event] = []
    problems: list[str] = []
    ticks: dict[str, int] = {}
    metronomes = [n for n, spec in dag.nodes.items() if spec.type == METRONOME_NODE]
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError as exc:
        raise EventsError(f"{path}: cannot read events file: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}, column {exc.colno}: not JSON: {exc.msg}")
            continue
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


class CaptureSink(Sink):
    """Collects publications with their ``seq`` so the global publish order can be rebuilt."""

    def __init__(self, uri: str, config: Mapping[str, Any], captured: list[tuple]) -> None:
        super().__init__(uri, config)
        self.captured = captured

    def open(self) -> None:
        self.status = "connected"

    def write_batch(self, records: list[dict]) -> None:  # dead letters
        pass

    def write_sequenced(self, publisher: str, events: list) -> None:
        self.captured.extend((seq, topo, publisher, record) for seq, topo, record in events)

    def close(self) -> None:
        self.status = "closed"


def replay_actors(dag: DagModel, events: list[Event], timeout: float = 600.0) -> list[Publication]:
    """Run ``events`` through the actor runtime; publications in the reference's global order."""
    return run_actors(dag, events, timeout)[0]


def run_actors(dag: DagModel, events: list[Event], timeout: float = 600.0) -> tuple[list[Publication], DagRuntime]:
    """:func:`replay_actors`, also returning the stopped runtime (its counters stay readable)."""
    captured: list[tuple] = []

    def no_source(uri: str, config: Mapping[str, Any]) -> Any:
        raise RuntimeError("replay feeds the coordinator directly")

    runtime = DagRuntime(dag, source_factory=no_source,
                         sink_factory=lambda uri, config: CaptureSink(uri, config, captured),
                         external_ingress=True, tick_timers=False)
    runtime.start()
    try:
        batch: list[Any] = []
        batch_subscriber = None
        for kind, name, record in events:
            if kind == "record" and name == batch_subscriber:
                batch.append(record)
                continue
            if batch:
                _ingest(runtime, batch_subscriber, batch)
            batch, batch_subscriber = [], None
            if kind == "record":
                batch, batch_subscriber = [record], name
            else:
                runtime.tick(name, record)
        if batch:
            _ingest(runtime, batch_subscriber, batch)
    finally:
        drained = runtime.stop(timeout=timeout)
    if not drained:
        raise RuntimeError(f"replay did not finish within {timeout:g}s")
    publisher_rank = {
        (i, p): j for i, n in enumerate(dag.topo_order) for j, p in enumerate(dag.nodes[n].publishers)
    }
    captured.sort(key=lambda c: (c[0], c[1], publisher_rank[(c[1], c[2])]))
    return [(publisher, record) for _, _, publisher, record in captured], runtime


def _ingest(runtime: DagRuntime, subscriber: str | None, records: list[Any]) -> None:
    """Reject what the subscriber actor would reject at the door, then ingest the rest."""
    good = []
    for record in records:
        if reject_reason(record) is None:
            good.append(record)
        else:
            runtime.stats.subscribers[str(subscriber)].rejected += 1
    if good:
        runtime.ingest(str(subscriber), good)


def run_replay(dag_path: str, events_path: str, engine: str = "actors", epoch_records: int | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The CLI command: 0 on success, 2 on an invalid DAG or events file."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        dag = load_dag(dag_path)
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
