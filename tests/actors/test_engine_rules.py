"""SPEC §2 corner rules, checked on both engines through ``dagserver replay``.

* rule 4: a calculator or transformer returning something other than a map or None is an
  error (counted, kept, the node's output unchanged), never a crash or a publication;
* every node starts with input ``{}`` and output ``{}``: a node whose merged input is still
  empty does not compute (its input is unchanged), one whose merged input *becomes* empty
  computes on ``in_transforms({})``, and an empty output is never published.
"""

from __future__ import annotations

import json
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import supervisor
from graphs.loader import load_dag_dict
from graphs.reference import ReferenceEvaluator
from supervision.replay import read_events, run_actors

ENGINES = ("reference", "actors")


def replay(tmp_path: Path, dag: dict[str, Any], events: list[dict[str, Any]], engine: str,
           capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    dag_file, events_file = tmp_path / "dag.json", tmp_path / "events.jsonl"
    dag_file.write_text(json.dumps(dag))
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    code = supervisor.main(["replay", str(dag_file), str(events_file), "--engine", engine])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def chain(calculators: list[dict[str, Any]], inner: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """in (SubscriptionNode) -> each of ``inner`` in turn -> pub (PublicationNode) -> out."""
    names = ["in", *[n["name"] for n in inner], "pub"]
    return {
        "name": "rules",
        "subscribers": [{"name": "s", "config": {"source": "mem://queue/s"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/out"}}],
        "calculators": calculators,
        "nodes": [{"name": "in", "type": "SubscriptionNode", "subscriber": "s", **extra}, *inner,
                  {"name": "pub", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": a, "to_node": b} for a, b in pairwise(names)],
    }


JUNK_DAG = chain([{"name": "junk", "type": "tests.support.userclasses.JunkCalculator"}], [], calculator="junk")
JUNK_EVENTS = [{"subscriber": "s", "record": r} for r in (
    {"a": 5}, {"a": 1}, {"a": 6}, {"a": 2}, {"a": 3}, {"a": 6}, {"a": 7},
)]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_calculator_returning_a_list_is_an_error_not_a_publication(
        tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    published = replay(tmp_path, JUNK_DAG, JUNK_EVENTS, engine, capsys)
    # a=1, 2, 3 give a list, a string and a number: errors, the output stays {"a": 5} then {"a": 6}
    assert published == [{"publisher": "out", "record": {"a": a}} for a in (5, 6, 7)]


def test_both_engines_record_the_junk_the_same_way() -> None:
    dag = load_dag_dict(JUNK_DAG)
    reference = ReferenceEvaluator(dag)
    for event in JUNK_EVENTS:
        reference.ingest("s", event["record"])
    events = [("record", "s", e["record"]) for e in JUNK_EVENTS]
    _, runtime = run_actors(dag, events, timeout=30)
    node = runtime.stats.nodes["in"]
    assert (node.computes, node.errors) == (reference.state["in"].computes, reference.state["in"].errors) == (7, 3)
    messages = [e["message"] for e in node.last_errors]
    assert messages == [e.message for e in reference.state["in"].last_errors]
    assert messages[0] == "NotAMapError: calculator 'junk' returned a list, not a map (or None)"
    assert "a str," in messages[1] and "a float," in messages[2]


def test_the_replay_cli_prints_the_same_for_both_engines_on_junk(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay(tmp_path, JUNK_DAG, JUNK_EVENTS, "actors", capsys) == \
        replay(tmp_path, JUNK_DAG, JUNK_EVENTS, "reference", capsys)


KEEP_NOTHING = {"name": "nothing", "type": "AttributeFilterCalculator", "config": {"keep_attributes": []}}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_publication_node_fed_through_a_filter_that_drops_every_key_publishes_nothing(
        tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    dag = chain([KEEP_NOTHING], [], calculator="nothing")
    events = [{"subscriber": "s", "record": {"a": i}} for i in range(5)]
    assert replay(tmp_path, dag, events, engine, capsys) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_a_node_whose_merged_input_is_still_empty_does_not_compute(
        tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    total = {"name": "total", "type": "AdditionCalculator", "config": {"arguments": ["a"], "output_attribute": "s"}}
    dag = chain([KEEP_NOTHING, total], [{"name": "sum", "calculator": "total"}], calculator="nothing")
    events = [{"subscriber": "s", "record": {"a": i}} for i in range(3)]
    assert replay(tmp_path, dag, events, engine, capsys) == []  # not {"s": 0.0}


@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_output_is_never_published_even_when_propagating_always(
        tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    dag = chain([KEEP_NOTHING], [], calculator="nothing", propagate="always")
    dag["propagate"] = "always"
    events = [{"subscriber": "s", "record": {"a": i}} for i in range(3)]
    assert replay(tmp_path, dag, events, engine, capsys) == []


def test_an_empty_record_reaches_a_pass_through_child(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dag = chain([], [{"name": "copy"}])
    events = [{"subscriber": "s", "record": r} for r in ({}, {"a": 1}, {}, {"a": 1})]
    for engine in ENGINES:
        # {} equals the initial output {}: nothing changes. {"a": 1} flows through. The second {}
        # changes in's output to {}: copy's input changes to {} and it computes ({} is not
        # published), so the last {"a": 1} is a change again and is published again.
        assert replay(tmp_path, dag, events, engine, capsys) == [{"publisher": "out", "record": {"a": 1}}] * 2, engine


@pytest.mark.parametrize(("engine", "epoch_records"), [("reference", None), ("actors", 1), ("actors", 1000)])
def test_a_node_whose_input_empties_computes_on_the_transformed_empty_input(
        tmp_path: Path, engine: str, epoch_records: int | None, capsys: pytest.CaptureFixture[str]) -> None:
    """in keeps only "a"; total adds a default a=0 to its input: a record without "a" makes total's
    merged input {}, which is a change, so total computes on {"a": 0} (SPEC §2)."""
    keep_a = {"name": "keep_a", "type": "AttributeFilterCalculator", "config": {"keep_attributes": ["a"]}}
    total = {"name": "total", "type": "AdditionCalculator", "config": {"arguments": ["a"], "output_attribute": "s"}}
    dag = chain([keep_a, total], [{"name": "sum", "calculator": "total", "input_transformers": ["default_a"]}],
                calculator="keep_a")
    dag["transformers"] = [{"name": "default_a", "type": "ApplyDefaultsDataTransformer",
                            "config": {"defaults": {"a": 0}}}]
    records = ({"a": 2}, {"b": 1}, {"b": 2}, {"a": 2}, {"a": 3}, {"c": 1})
    events_file = tmp_path / "events.jsonl"
    dag_file = tmp_path / "dag.json"
    dag_file.write_text(json.dumps(dag))
    events_file.write_text("".join(json.dumps({"subscriber": "s", "record": r}) + "\n" for r in records))
    args = ["replay", str(dag_file), str(events_file), "--engine", engine]
    code = supervisor.main(args + (["--epoch-records", str(epoch_records)] if epoch_records else []))
    out, err = capsys.readouterr()
    assert code == 0, err
    sums = [json.loads(line)["record"]["s"] for line in out.splitlines()]
    assert sums == [2.0, 0.0, 2.0, 3.0, 0.0]


def test_read_events_accepts_what_the_cli_writes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in JUNK_EVENTS))
    assert [r for _, _, r in read_events(str(path), load_dag_dict(JUNK_DAG))] == [e["record"] for e in JUNK_EVENTS]


def test_replay_ignores_the_daily_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now()
    dag = chain([], [])
    dag["start_time"] = f"{(now.hour + 2) % 24:02d}00"  # a window that is closed now
    dag["end_time"] = f"{(now.hour + 3) % 24:02d}00"
    events = [{"subscriber": "s", "record": {"a": 1}}]
    for engine in ENGINES:
        assert replay(tmp_path, dag, events, engine, capsys) == [{"publisher": "out", "record": {"a": 1}}], engine
