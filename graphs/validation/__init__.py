"""DAG validation: every problem in a parsed DAG document, not just the first.

:func:`validate_dag` checks the top-level keys and values here and delegates the named
sections, the nodes and the edges to :mod:`.sections`, :mod:`.nodes` and :mod:`.edges`.
It never raises for bad input: whatever the document holds, the result is a list of
:class:`Problem`. URIs are checked with the :class:`UriRules` it is given (the adapters'
registry, in the server); without them only the DAG itself is checked.

Usage::

    from adapters import registry
    problems = validate_dag(json.load(f), "examples/dags/x.json", uris=registry)
    for problem in problems:
        print(problem)
"""

from __future__ import annotations

import re
from typing import Any

from graphs.errors import Problem
from graphs.validation.base import (
    AnyUri,
    Collector,
    UriRules,
    check_keys,
    expect_object,
    expect_positive_int,
    expect_string,
    is_int,
    is_number,
    key_path,
    kind_of,
)
from graphs.validation.edges import check_edges
from graphs.validation.nodes import check_nodes, check_propagate
from graphs.validation.schedule import check_schedule
from graphs.validation.sections import (
    Index,
    check_components,
    check_publishers,
    check_subscribers,
    check_uri,
)
from graphs.window import parse_duration, parse_hhmm

TOP_KEYS = (
    "name", "description", "start_time", "end_time", "duration", "schedule",
    "subscribers", "publishers", "calculators", "transformers", "nodes", "edges",
    "propagate", "dead_letter", "replicas", "worker", "checkpoint", "epochs",
)
CHECKPOINT_KEYS = ("every_epochs", "idle_seconds")
CHECKPOINT_SECONDS = ("idle_seconds",)  # numbers of seconds, not counts
EPOCHS_KEYS = ("max_records", "max_inflight", "max_bytes")
DAG_NAME = re.compile(r"[A-Za-z0-9_.-]+")


__all__ = ["AnyUri", "UriRules", "validate_dag"]


def validate_dag(data: Any, file: str = "<memory>", uris: UriRules | None = None) -> list[Problem]:
    """Every problem in the DAG document ``data`` (an empty list when it is valid)."""
    col = Collector(file, uris)
    if not isinstance(data, dict):
        col.add("top level", f"a DAG must be a JSON object, not {kind_of(data)}", data)
        return col.problems
    check_keys(col, data, "", TOP_KEYS, "a DAG")
    _check_name(col, data)
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        col.add("description", f"description must be a string, not {kind_of(description)}", description)
    check_propagate(col, data.get("propagate"), "propagate")
    _check_window(col, data)
    check_schedule(col, data)
    _check_runtime(col, data)
    index = Index()
    check_subscribers(col, data, index)
    check_publishers(col, data, index)
    check_components(col, data, index)
    check_nodes(col, data, index)
    check_edges(col, data, index)
    _check_replicas_sharing(col, data, index)
    return col.problems


def _check_name(col: Collector, data: dict[str, Any]) -> None:
    if "name" not in data or data["name"] is None:
        col.add("name", 'a DAG needs a "name"')
        return
    name = data["name"]
    if not expect_string(col, name, "name", "the DAG name"):
        return
    if not DAG_NAME.fullmatch(name):
        fixed = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("_")
        col.add("name", "a DAG name may only hold letters, digits, '_', '.' and '-'", name,
                f"did you mean {fixed!r}?" if fixed else None)


def _check_window(col: Collector, data: dict[str, Any]) -> None:
    start, end, duration = data.get("start_time"), data.get("end_time"), data.get("duration")
    start_s = _parsed(col, "start_time", start, parse_hhmm)
    end_s = _parsed(col, "end_time", end, parse_hhmm)
    _parsed(col, "duration", duration, parse_duration)
    if end is not None and duration is not None:
        col.add("duration", "give end_time or duration, not both", duration, "drop one of them")
    if start is None:
        for key, value in (("end_time", end), ("duration", duration)):
            if value is not None:
                col.add(key, f"{key} needs a start_time", value, 'add "start_time": "HHMM"')
    elif start_s is not None and end_s is not None and start_s == end_s:
        col.add("end_time", "end_time equals start_time, which leaves an empty window", end,
                "to run around the clock, drop start_time and end_time")


def _parsed(col: Collector, key: str, value: Any, parse: Any) -> int | None:
    if value is None:
        return None
    try:
        result: int = parse(value)
    except ValueError as exc:
        col.add(key, f"bad {key}: {exc}", value)
        return None
    return result


def _check_runtime(col: Collector, data: dict[str, Any]) -> None:
    dead_letter = data.get("dead_letter")
    if dead_letter is not None and expect_string(col, dead_letter, "dead_letter", "dead_letter"):
        check_uri(col, dead_letter, "dead_letter", "destination")
    if data.get("replicas") is not None:
        expect_positive_int(col, data["replicas"], "replicas", "replicas")
    if data.get("worker") is not None:
        expect_positive_int(col, data["worker"], "worker", "worker", minimum=0)
    for key, allowed in (("checkpoint", CHECKPOINT_KEYS), ("epochs", EPOCHS_KEYS)):
        section = data.get(key)
        if section is None or not expect_object(col, section, key, key):
            continue
        check_keys(col, section, key, allowed, f"{key}")
        for sub in allowed:
            if section.get(sub) is None:
                continue
            if sub in CHECKPOINT_SECONDS:
                _expect_seconds(col, section[sub], key_path(key, sub), f"{key}.{sub}")
            else:
                expect_positive_int(col, section[sub], key_path(key, sub), f"{key}.{sub}")


def _expect_seconds(col: Collector, value: Any, path: str, what: str) -> None:
    """A number of seconds > 0 (``checkpoint.idle_seconds``)."""
    if not is_number(value) or value <= 0:
        col.add(path, f"{what} must be a number of seconds > 0", value,
                "for example 1 (the default): a quiet input is checkpointed and committed within that")


def _check_replicas_sharing(col: Collector, data: dict[str, Any], index: Index) -> None:
    replicas = data.get("replicas")
    if not is_int(replicas) or replicas <= 1:
        return
    for sub, uri in index.sources.items():
        try:
            shareable = bool(col.uris.is_shareable(uri))
        except Exception as exc:  # a registry bug must not hide the rest of the report
            col.add("replicas", f"cannot tell whether {uri!r} can be shared: {type(exc).__name__}: {exc}")
            continue
        if not shareable:
            col.add("replicas", f"replicas {replicas} needs sources the replicas can share, but "
                    f"subscriber {sub!r} reads {uri!r}, which cannot be shared", replicas,
                    "use replicas 1, or a shared source such as mem://queue/..., kafka://topic/... "
                    "or activemq://queue/...")

