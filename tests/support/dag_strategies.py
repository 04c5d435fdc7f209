"""Hypothesis strategies: random valid DAG documents and random input for them.

:func:`dag_cases` draws a :class:`DagCase`: a DAG document (a plain dict, as a DAG file
would hold it) that passes validation, plus a list of input events in the form the
replay functions take (``("record", subscriber, record)`` or ``("tick", node, record)``).

The shapes are chosen to reach the interesting corners of SPEC §2 often:

* 1-3 subscribers, each feeding one SubscriptionNode, and sometimes a MetronomeNode
  (with or without a subscriber of its own, with or without publishers);
* inner nodes with 1-3 parents among the nodes declared before them, so diamonds and
  multi-parent merges are common; edges are declared in a shuffled order (the merge
  order is the edge-declaration order) and nodes in a shuffled order (topological ties
  are broken by declaration order);
* PublicationNodes with 1-2 publishers, a publisher sometimes shared by several nodes;
* every built-in calculator and transformer plus the user classes of
  :mod:`tests.support.userclasses`, some of them made to drop or raise on everything, and some that
  return lists, strings or numbers instead of maps (an error, SPEC §2 rule 4);
* empty maps everywhere: empty records, filters that keep nothing, so the rules about
  nodes whose merged input is still ``{}``, nodes whose merged input *becomes* ``{}`` after
  being non-empty (they compute on ``in_transforms({})``) and outputs that are ``{}`` are
  exercised; one input profile mixes empty records in on purpose;
* ``propagate`` at DAG and node level, a dead-letter destination sometimes;
* records drawn from a small pool over a small key set, so consecutive identical inputs,
  unchanged outputs and repeated publications are frequent; once in a while a record
  that is not a map (rejected at ingress).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

Event = tuple[str, str, Any]

KEYS = ("a", "b", "c", "price", "qty", "drop", "boom", "name", "ts")
NUMERIC_KEYS = ("a", "b", "c", "price", "qty")
SCALARS: tuple[Any, ...] = (None, 0, 1, 2, 3, -1, 1.5, 0.25, "2", "x", "y", "", True, False, "nan", float("nan"))
NAMES = ("abc", "Abc", "ABC", "x")
# event times for windowed aggregates: out of order, some exactly a window or a gap apart, ISO-8601 and junk too
TIMES: tuple[Any, ...] = (0, 5, 9, 10, 18, 25, 30, 61, 9.5, "1970-01-01T00:00:20Z", None, "soon")
NOT_MAPS: tuple[Any, ...] = ([1, 2], "text", 7, None, [])

RAISING = "tests.support.userclasses.RaisingCalculator"
DROP_FILTER = "tests.support.userclasses.DropFilterCalculator"
UPPER_NAME = "tests.support.userclasses.UpperNameTransformer"
JUNK = "tests.support.userclasses.JunkCalculator"  # returns lists, strings and numbers for some records
JUNK_TRANSFORMER = "tests.support.userclasses.JunkTransformer"
COUNTING = "tests.support.userclasses.CountingCalculator"  # stateful, with snapshot() and restore()

METRONOME = "clock"
METRONOME_SUBSCRIBER = "clock_feed"
TICK_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: tick records are stamped deterministically

# Transformers every DAG may use to force a filter or a raising calculator to act on
# every record: drop the field, then default it to true.
FORCE_TRANSFORMERS: dict[str, dict[str, Any]] = {
    "clear_drop": {"type": "AttributeFilterAwayDataTransformer", "config": {"filter_attributes": ["drop"]}},
    "force_drop": {"type": "ApplyDefaultsDataTransformer", "config": {"defaults": {"drop": True}}},
    "clear_boom": {"type": "AttributeFilterAwayDataTransformer", "config": {"filter_attributes": ["boom"]}},
    "force_boom": {"type": "ApplyDefaultsDataTransformer", "config": {"defaults": {"boom": 1}}},
}


@dataclass
class DagCase:
    """One generated DAG document and its input events."""

    dag: dict[str, Any]
    events: list[Event]

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        return f"DagCase(dag={self.dag!r},\n  events={self.events!r})"


# -- component configs ---------------------------------------------------------------------------
def _key_subset(min_size: int = 0, max_size: int = 3) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(KEYS), min_size=min_size, max_size=max_size, unique=True)


@st.composite
def _rename_mapping(draw: st.DrawFn) -> dict[str, str]:
    olds = draw(_key_subset(1, 3))
    news = draw(st.lists(st.sampled_from((*KEYS, "v", "w")), min_size=len(olds), max_size=len(olds),
                         unique=True))
    return dict(zip(olds, news, strict=True))


def _defaults() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(KEYS), st.sampled_from(SCALARS), min_size=1, max_size=3)


@st.composite
def _arithmetic_config(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {"arguments": draw(st.lists(st.sampled_from(NUMERIC_KEYS), min_size=1,
                                                         max_size=3, unique=True))}
    if draw(st.booleans()):
        config["output_attribute"] = draw(st.sampled_from((*NUMERIC_KEYS, "result", "total")))
    return config


@st.composite
def calculator_entry(draw: st.DrawFn) -> dict[str, Any]:
    """A calculator declaration without its name: ``{"type": ..., "config": ...}``."""
    kind = draw(st.sampled_from((
        "NullCalculator", "PassthruCalculator", "AttributeFilterAwayCalculator",
        "AttributeFilterCalculator", "ApplyDefaultsCalculator", "AdditionCalculator",
        "MultiplicationCalculator", "AttributeNameChangeCalculator", RAISING, DROP_FILTER, JUNK,
        "default", "AggregateCalculator", "AggregateCalculator", COUNTING,
    )))
    if kind == "default":  # no "type": a NullCalculator
        return {}
    if kind == "AttributeFilterAwayCalculator":
        return {"type": kind, "config": {"filter_attributes": draw(_key_subset(0, 3))}}
    if kind == "AttributeFilterCalculator":
        return {"type": kind, "config": {"keep_attributes": draw(_key_subset(0, 4))}}
    if kind == "ApplyDefaultsCalculator":
        return {"type": kind, "config": {"defaults": draw(_defaults())}}
    if kind in ("AdditionCalculator", "MultiplicationCalculator"):
        return {"type": kind, "config": draw(_arithmetic_config())}
    if kind == "AttributeNameChangeCalculator":
        return {"type": kind, "config": {"name_mapping": draw(_rename_mapping())}}
    if kind == "AggregateCalculator":
        return {"type": kind, "config": draw(aggregate_config())}
    return {"type": kind}


AGGREGATE_OUTPUTS = {"n": "count", "s": "sum", "lo": "min", "hi": "max", "m": "avg", "f": "first", "l": "last",
                     "d": "count_distinct"}


@st.composite
def aggregate_config(draw: st.DrawFn) -> dict[str, Any]:
    """An AggregateCalculator config: a few keys, every op, sometimes a tumbling or session window."""
    outs = draw(st.lists(st.sampled_from(sorted(AGGREGATE_OUTPUTS)), min_size=1, max_size=4, unique=True))
    aggregates: dict[str, Any] = {}
    for out in outs:
        aggregates[out] = {"op": AGGREGATE_OUTPUTS[out]}
        if out != "n" or draw(st.booleans()):
            aggregates[out]["of"] = draw(st.sampled_from(("a", "b", "price", "name")))
    config: dict[str, Any] = {"aggregates": aggregates,
                              "key": draw(st.lists(st.sampled_from(("name", "c")), max_size=2, unique=True))}
    window = draw(st.sampled_from((None, "tumbling", "session")))
    if window is not None:
        config["window"] = {window: draw(st.sampled_from((1, 10, 30))), "time": "ts"}
        config["lateness"] = draw(st.sampled_from((0, 0, 5, 20)))
    if draw(st.integers(0, 4)) == 0:
        config["max_keys"] = draw(st.integers(1, 3))
    return config


@st.composite
def transformer_entry(draw: st.DrawFn) -> dict[str, Any]:
    """A transformer declaration without its name."""
    kind = draw(st.sampled_from((
        "NullDataTransformer", "PassthruDataTransformer", "AttributeFilterAwayDataTransformer",
        "AttributeFilterDataTransformer", "ApplyDefaultsDataTransformer",
        "AttributeNameChangeDataTransformer", UPPER_NAME, JUNK_TRANSFORMER,
    )))
    if kind == "AttributeFilterAwayDataTransformer":
        return {"type": kind, "config": {"filter_attributes": draw(_key_subset(1, 3))}}
    if kind == "AttributeFilterDataTransformer":  # keeping nothing makes empty maps: SPEC §2's {} rules
        return {"type": kind, "config": {"keep_attributes": draw(_key_subset(0, 5))}}
    if kind == "ApplyDefaultsDataTransformer":
        return {"type": kind, "config": {"defaults": draw(_defaults())}}
    if kind == "AttributeNameChangeDataTransformer":
        return {"type": kind, "config": {"name_mapping": draw(_rename_mapping())}}
    return {"type": kind}


# -- records -------------------------------------------------------------------------------------
@st.composite
def record(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=5, unique=True))
    out: dict[str, Any] = {}
    for key in keys:
        out[key] = draw(st.sampled_from(NAMES if key == "name" else TIMES if key == "ts" else SCALARS))
    return out


def tick_record(n: int, message: str = "tick") -> dict[str, Any]:
    """The n-th tick record of a metronome, stamped at a fixed, reproducible time."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(TICK_EPOCH + 3600 * n))
    return {"message": message, "current_timestamp": stamp, "tick": n}


# -- whole DAGs ----------------------------------------------------------------------------------
@st.composite
def dag_cases(draw: st.DrawFn, max_nodes: int = 12, max_events: int = 300) -> DagCase:
    """A random valid DAG document and 0..``max_events`` input events for it."""
    total = draw(st.integers(1, max_nodes))
    n_subs = draw(st.integers(1, min(3, total)))
    has_clock = total > n_subs and draw(st.integers(0, 3)) == 0
    n_inner = total - n_subs - int(has_clock)

    dag: dict[str, Any] = {"name": "generated"}
    dag_propagate = draw(st.sampled_from((None, None, "changes", "always")))
    if dag_propagate is not None:
        dag["propagate"] = dag_propagate
    if draw(st.booleans()):
        dag["dead_letter"] = "mem://queue/dead_letters"

    subscribers: list[str] = [f"sub{i}" for i in range(n_subs)]
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    calculators: dict[str, dict[str, Any]] = {}
    transformers: dict[str, dict[str, Any]] = {}
    publisher_pool = [f"pub{i}" for i in range(draw(st.integers(1, 4)))]
    used_publishers: list[str] = []

    def pick_publishers() -> list[str]:
        chosen = draw(st.lists(st.sampled_from(publisher_pool), min_size=1, max_size=2, unique=True))
        used_publishers.extend(p for p in chosen if p not in used_publishers)
        return chosen

    def new_transformer() -> str:
        name = f"t{len(transformers)}"
        transformers[name] = draw(transformer_entry())
        return name

    def any_transformer() -> str:
        """A new transformer, or one already declared (shared between uses)."""
        if transformers and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(sorted(transformers)))
        return new_transformer()

    def decorate(node: dict[str, Any]) -> None:
        """Calculator, transformers and propagate for ``node``, all optional."""
        if draw(st.integers(0, 5)) > 0:
            if calculators and draw(st.integers(0, 4)) == 0:
                node["calculator"] = draw(st.sampled_from(sorted(calculators)))
            else:
                name = f"c{len(calculators)}"
                calculators[name] = draw(calculator_entry())
                node["calculator"] = name
        ins: list[str] = []
        calc_type = calculators.get(node.get("calculator", ""), {}).get("type")
        if calc_type in (RAISING, DROP_FILTER) and draw(st.integers(0, 3)) == 0:
            # acts on every record: the field is cleared, then defaulted to true
            field = "drop" if calc_type == DROP_FILTER else "boom"
            ins += [f"clear_{field}", f"force_{field}"]
            for t in ins:
                transformers.setdefault(t, FORCE_TRANSFORMERS[t])
        if draw(st.integers(0, 3)) == 0:
            ins = [any_transformer() for _ in range(draw(st.integers(1, 2)))] + ins
        if ins:
            node["input_transformers"] = ins
        if draw(st.integers(0, 3)) == 0:
            node["output_transformers"] = [any_transformer() for _ in range(draw(st.integers(1, 2)))]
        if draw(st.integers(0, 4)) == 0:
            node["propagate"] = draw(st.sampled_from(("changes", "always")))

    for i, sub in enumerate(subscribers):
        node = {"name": f"in{i}", "type": "SubscriptionNode", "subscriber": sub}
        decorate(node)
        nodes.append(node)

    tick_message = "tick"
    clock_feed = False
    if has_clock:
        node = {"name": METRONOME, "type": "MetronomeNode", "config": {"interval": 3600}}
        if draw(st.booleans()):
            tick_message = "beat"
            node["config"]["message"] = tick_message
        if draw(st.booleans()):
            clock_feed = True
            node["subscriber"] = METRONOME_SUBSCRIBER
        if draw(st.booleans()):
            node["publishers"] = pick_publishers()
        decorate(node)
        nodes.append(node)

    for i in range(n_inner):
        earlier = [n["name"] for n in nodes]
        last = i == n_inner - 1
        publishes = draw(st.integers(0, 4)) < 2 or (last and not any(
            n.get("type") == "PublicationNode" for n in nodes))
        node = {"name": f"n{i}"}
        if publishes:
            node["type"] = "PublicationNode"
            node["publishers"] = pick_publishers()
        elif draw(st.booleans()):
            node["type"] = "CalculationNode"
        k = draw(st.integers(1, min(3, len(earlier))))
        # favour recent nodes as parents: deeper graphs, more diamonds
        parents = draw(st.lists(st.sampled_from(earlier[-4:] if draw(st.booleans()) else earlier),
                                min_size=1, max_size=k, unique=True))
        for parent in parents:
            edge: dict[str, Any] = {"from_node": parent, "to_node": node["name"]}
            if draw(st.integers(0, 4)) == 0:
                edge["data_transformer"] = any_transformer()
            edges.append(edge)
        decorate(node)
        nodes.append(node)

    dag["subscribers"] = [{"name": s, "config": {"source": f"mem://queue/{s}"}} for s in subscribers]
    if clock_feed:
        dag["subscribers"].append({"name": METRONOME_SUBSCRIBER,
                                   "config": {"source": f"mem://queue/{METRONOME_SUBSCRIBER}"}})
    if used_publishers:
        dag["publishers"] = [{"name": p, "config": {"destination": f"mem://queue/{p}"}}
                             for p in sorted(used_publishers)]
    if calculators:
        dag["calculators"] = [{"name": n, **spec} for n, spec in calculators.items()]
    if transformers:
        dag["transformers"] = [{"name": n, **spec} for n, spec in transformers.items()]
    dag["nodes"] = draw(st.permutations(nodes)) if draw(st.booleans()) else nodes
    if edges:
        dag["edges"] = draw(st.permutations(edges))

    events = draw(_events(subscribers, clock_feed, has_clock, tick_message, max_events))
    return DagCase(dag, events)


@st.composite
def _events(draw: st.DrawFn, subscribers: list[str], clock_feed: bool, has_clock: bool,
            tick_message: str, max_events: int) -> list[Event]:
    """Input events drawn from a small record pool, so repeats are frequent."""
    pool: list[Any] = draw(st.lists(record(), min_size=1, max_size=6))
    profile = draw(st.sampled_from(("mixed", "mixed", "mixed", "all_drop", "all_boom", "with_rejects",
                                    "with_empties")))
    if profile in ("all_drop", "all_boom"):
        field = profile.removeprefix("all_")
        pool = [{**r, field: True} for r in pool]
    elif profile == "with_rejects":
        pool.append(draw(st.sampled_from(NOT_MAPS)))
    elif profile == "with_empties":  # roots' outputs turn {} between non-empty ones: children's inputs empty
        pool += [{}, {}]
    sources: list[tuple[str, str]] = [("record", s) for s in subscribers]
    if clock_feed:
        sources.append(("record", METRONOME_SUBSCRIBER))
    if has_clock:
        sources += [("tick", METRONOME)] * 2  # ticks are as frequent as a subscriber's records
    # the length first: plain lists stay short, and long runs are what epochs need
    length = 0 if draw(st.integers(0, 19)) == 19 else draw(st.integers(1, max_events))
    picks = draw(st.lists(st.tuples(st.integers(0, len(sources) - 1), st.integers(0, len(pool) - 1)),
                          min_size=length, max_size=length))
    events: list[Event] = []
    ticks = 0
    for source, item in picks:
        kind, name = sources[source]
        if kind == "tick":
            ticks += 1
            events.append(("tick", name, tick_record(ticks, tick_message)))
        else:
            events.append(("record", name, copy.deepcopy(pool[item])))
    return events


__all__ = ["KEYS", "METRONOME", "DagCase", "Event", "calculator_entry", "dag_cases", "record",
           "tick_record", "transformer_entry"]
