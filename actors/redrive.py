"""A DAG's dead letters read back from its ``dead_letter`` destination, and redriven (SPEC §13).

The letters are read through the adapters' registry by URI (``registry.read_back``: file,
``mem://queue``, Redis lists and streams, Kafka), in this worker, where a ``mem://`` queue
lives. Each letter's ``id`` is its place in that store (a line number, a stream entry id,
``partition:offset``), stable while the letter is there. A redrive injects each chosen
letter's ``record`` again at its ``subscriber`` (:mod:`actors.injection`) and counts it in
that subscriber's ``redriven`` (``dagserver_redriven_total``); a letter without both (a
rejected record, a sink's refusal, a MetronomeNode tick) is skipped with the reason.

Usage::

    letters = list_dead_letters(runtime, limit=1000)      # [{"id": "0", "dag": ..., "record": ...}, ...]
    redrive(runtime, ids=["0", "3"])                      # {"redriven": 2, "by_subscriber": {...}, "skipped": []}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.injection import InjectionError, inject_at_subscriber
from adapters import registry
from graphs.values import describe_error

if TYPE_CHECKING:
    from actors.runtime import DagRuntime

MAX_LETTERS = 10_000  # the most letters one listing or redrive reads back


def list_dead_letters(runtime: DagRuntime, limit: int = MAX_LETTERS) -> list[dict[str, Any]]:
    """The DAG's dead letters, oldest first, each with its ``id`` (in a store several DAGs share, only
    this DAG's); InjectionError when it keeps none, or its store cannot be read now."""
    uri = runtime.dag.dead_letter
    if not uri:
        raise InjectionError(f"dag {runtime.dag.name!r} has no dead_letter destination: its dead letters are "
                             "only counted (add \"dead_letter\": \"file:///path/dead.jsonl\" to keep them)")
    try:
        found = registry.read_back(uri, max(0, min(limit, MAX_LETTERS)))
    except ValueError as exc:
        raise InjectionError(str(exc)) from exc
    except Exception as exc:  # the store is down or refuses: a refusal to answer, not a worker failure
        raise InjectionError(f"the dead_letter destination of dag {runtime.dag.name!r} could not be read: "
                             f"{describe_error(exc)}") from exc
    name = runtime.dag.name
    letters = [{"id": letter_id, **(letter if isinstance(letter, dict) else {"letter": letter})}
               for letter_id, letter in found]
    return [letter for letter in letters if letter.get("dag") in (None, name)]  # a store shared by several DAGs


def redrive(runtime: DagRuntime, ids: list[str] | None = None) -> dict[str, Any]:
    """Inject the chosen letters' records again (``ids`` None: every letter), in the letters' order.

    Returns ``{"redriven": N, "by_subscriber": {SUB: N}, "skipped": [{"id", "reason"}], "unknown": [ids]}``.
    """
    letters = list_dead_letters(runtime)
    if ids is not None:
        wanted = {str(i) for i in ids}
        unknown = sorted(wanted - {letter["id"] for letter in letters})
        letters = [letter for letter in letters if letter["id"] in wanted]
    else:
        unknown = []
    runs: list[tuple[str, list[Any]]] = []  # consecutive letters of one subscriber go in together
    skipped = []
    for letter in letters:
        subscriber, record = letter.get("subscriber"), letter.get("record")
        if not isinstance(subscriber, str) or not isinstance(record, dict):
            skipped.append({"id": letter["id"], "reason": "no ingress record and subscriber to inject again"})
            continue
        if subscriber not in runtime.dag.subscribers:
            skipped.append({"id": letter["id"], "reason": f"the dag has no subscriber {subscriber!r} any more"})
            continue
        if runs and runs[-1][0] == subscriber:
            runs[-1][1].append(record)
        else:
            runs.append((subscriber, [record]))
    by_subscriber: dict[str, int] = {}
    for subscriber, records in runs:
        sent = inject_at_subscriber(runtime, subscriber, records)
        runtime.stats.subscribers[subscriber].redriven += sent
        by_subscriber[subscriber] = by_subscriber.get(subscriber, 0) + sent
    return {"redriven": sum(by_subscriber.values()), "by_subscriber": by_subscriber, "skipped": skipped,
            "unknown": unknown}
