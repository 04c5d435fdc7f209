"""Restoring a DAG from its checkpoint file, in process (SPEC §3 checkpoints, §4 restart from the last checkpoint).

A :class:`~actors.runtime.DagRuntime` writes ``STATE_DIR/DAG.ckpt`` (``actors/checkpoint.py``) on
every checkpoint epoch and on a clean stop; a new runtime over the same state directory resumes
from it. Covered: what a clean stop writes (source positions, every node's state); resuming
without re-reading committed lines and with the restored node state in effect (an unchanged
output is not re-published, a merge node uses its parents' restored outputs); corrupt or
unreadable checkpoints (logged, the DAG starts from scratch); and the atomic write (a leftover
``.tmp`` from a crashed write never breaks reading); checkpoints of the wrong shape are logged and ignored.
The checkpoint file on its own (round trip, a crash before the rename, fsyncs) is in ``test_checkpoint.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pykka
import pytest

from actors.checkpoint import checkpoint_path, read_checkpoint
from actors.runtime import RUNNING, STOPPED, DagRuntime
from adapters.builtin.mem import get_queue, mem_drain, reset_mem_broker
from graphs.loader import load_dag_dict
from graphs.model import DagModel
from graphs.reference import ReferenceEvaluator

TIMEOUT = 30.0
NAME = "restore"


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_mem_broker()
    yield
    reset_mem_broker()


def keep_v_dag(source: Path) -> DagModel:
    """file source -> ``ingest`` (keeps only ``v``) -> ``publish`` -> ``mem://queue/restore_out``."""
    return load_dag_dict({
        "name": NAME,
        "subscribers": [{"name": "in", "config": {"source": f"file://{source}"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/restore_out"}}],
        "calculators": [{"name": "keep", "type": "AttributeFilterCalculator",
                         "config": {"keep_attributes": ["v"]}}],
        "nodes": [
            {"name": "ingest", "type": "SubscriptionNode", "subscriber": "in", "calculator": "keep"},
            {"name": "publish", "type": "PublicationNode", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
    })


def append_lines(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records))


def run_until_published(runtime: DagRuntime, queue: str, count: int) -> list[dict]:
    """Start ``runtime``, wait for ``count`` publications on ``queue``, stop cleanly; what was published."""
    runtime.start()
    assert runtime.state == RUNNING
    assert get_queue(queue).wait_for(lambda q: len(q) >= count, timeout=TIMEOUT), runtime.details()
    assert runtime.stop(timeout=TIMEOUT)
    assert runtime.state == STOPPED
    return mem_drain(queue)


def first_records() -> list[dict[str, Any]]:
    # v repeats, so change detection matters: 10 records, 5 publications ({"v": 0} .. {"v": 4}).
    return [{"id": i, "v": i // 2} for i in range(10)]


# -- (a) what a clean stop writes ------------------------------------------------------------------------
def test_a_clean_stop_writes_the_source_positions_and_every_nodes_state(tmp_path: Path) -> None:
    source, state = tmp_path / "in.jsonl", tmp_path / "state"
    append_lines(source, first_records())
    published = run_until_published(DagRuntime(keep_v_dag(source), state_dir=state), "restore_out", 5)
    assert published == [{"v": v} for v in range(5)]

    path = checkpoint_path(state, NAME)
    assert path == state / f"{NAME}.ckpt" and path.is_file()
    assert not path.with_name(path.name + ".tmp").exists()  # renamed into place, nothing left over
    data = read_checkpoint(path)
    assert data is not None
    assert data["dag"] == NAME
    assert data["positions"] == {"in": source.stat().st_size}  # every line read is committed
    assert set(data["nodes"]) == {"ingest", "publish"}
    assert data["nodes"]["ingest"]["input"] == {"id": 9, "v": 4}
    assert data["nodes"]["ingest"]["output"] == {"v": 4}
    assert data["nodes"]["publish"]["input"] == {"v": 4}
    assert data["nodes"]["publish"]["output"] == {"v": 4}
    assert data["ticks"] == {}
    assert data == msgpack.unpackb(path.read_bytes(), raw=False)  # plain msgpack, as the SPEC says


# -- (b) resuming -------------------------------------------------------------------------------------------
def test_a_new_runtime_resumes_from_the_checkpoint_without_rereading_and_with_node_state(tmp_path: Path) -> None:
    source, state = tmp_path / "in.jsonl", tmp_path / "state"
    dag = keep_v_dag(source)
    append_lines(source, first_records())
    first = run_until_published(DagRuntime(dag, state_dir=state), "restore_out", 5)

    # The first new record keeps v = 4, the last published output: with the restored state the
    # output is unchanged and nothing is published for it. A fresh node would publish {"v": 4}.
    later = [{"id": 10, "v": 4}, {"id": 11, "v": 5}, {"id": 12, "v": 5}, {"id": 13, "v": 6}]
    append_lines(source, later)
    saved = read_checkpoint(checkpoint_path(state, NAME))["counters"]  # counting resumes from these
    assert (saved["subscribers"]["in"]["records"], saved["nodes"]["ingest"]["computes"]) == (10, 10)
    second_runtime = DagRuntime(dag, state_dir=state)
    second_runtime.start()
    restored = second_runtime.details()["nodes"]
    assert (restored["ingest"]["output"], restored["publish"]["output"]) == ({"v": 4}, {"v": 4})
    assert get_queue("restore_out").wait_for(lambda q: len(q) >= 2, timeout=TIMEOUT)
    assert second_runtime.stop(timeout=TIMEOUT)
    second = mem_drain("restore_out")
    assert second == [{"v": 5}, {"v": 6}]
    # Only the four new lines were read and computed: the committed ten were not read again.
    assert second_runtime.details()["counters_restored"]
    assert second_runtime.details()["subscribers"]["in"]["records"] == 10 + 4
    assert second_runtime.details()["nodes"]["ingest"]["computes"] == 10 + 4
    # Together the two runs published exactly what one uninterrupted run does.
    reference = ReferenceEvaluator(dag)
    assert first + second == [r for rec in first_records() + later for _, r in reference.ingest("in", rec)]
    assert read_checkpoint(checkpoint_path(state, NAME))["positions"] == {"in": source.stat().st_size}


def merge_dag(left: Path, right: Path) -> DagModel:
    """Two file sources -> ``a``, ``b`` -> ``sum`` (x + y) -> ``mem://queue/sum_out``."""
    return load_dag_dict({
        "name": "merge",
        "subscribers": [{"name": "left", "config": {"source": f"file://{left}"}},
                        {"name": "right", "config": {"source": f"file://{right}"}}],
        "publishers": [{"name": "out", "config": {"destination": "mem://queue/sum_out"}}],
        "calculators": [{"name": "add", "type": "AdditionCalculator", "config": {"arguments": ["x", "y"]}}],
        "nodes": [
            {"name": "a", "type": "SubscriptionNode", "subscriber": "left"},
            {"name": "b", "type": "SubscriptionNode", "subscriber": "right"},
            {"name": "sum", "type": "PublicationNode", "calculator": "add", "publishers": ["out"]},
        ],
        "edges": [{"from_node": "a", "to_node": "sum"}, {"from_node": "b", "to_node": "sum"}],
    })


def test_a_merge_node_resumes_with_its_parents_restored_outputs(tmp_path: Path) -> None:
    left, right, state = tmp_path / "left.jsonl", tmp_path / "right.jsonl", tmp_path / "state"
    dag = merge_dag(left, right)
    append_lines(left, [{"x": 1}])
    append_lines(right, [{"y": 10}])
    runtime = DagRuntime(dag, state_dir=state)
    runtime.start()
    # Two publications whichever side comes first: x or y alone, then both.
    assert get_queue("sum_out").wait_for(lambda q: len(q) >= 2, timeout=TIMEOUT)
    assert runtime.stop(timeout=TIMEOUT)
    assert mem_drain("sum_out")[-1] == {"result": 11.0}
    assert read_checkpoint(checkpoint_path(state, "merge"))["nodes"]["b"]["output"] == {"y": 10}

    append_lines(left, [{"x": 2}])  # only the left side moves: y must come from b's restored output
    b_computes = read_checkpoint(checkpoint_path(state, "merge"))["counters"]["nodes"]["b"]["computes"]
    again = DagRuntime(dag, state_dir=state)
    again.start()
    assert get_queue("sum_out").wait_for(lambda q: len(q) >= 1, timeout=TIMEOUT)
    assert again.stop(timeout=TIMEOUT)
    assert mem_drain("sum_out") == [{"result": 12.0}]  # a fresh start would give 2.0
    assert again.details()["nodes"]["b"]["computes"] == b_computes == 1  # b computed nothing more


def test_a_checkpoint_from_before_counters_still_loads_and_counting_starts_from_zero(tmp_path: Path) -> None:
    source, state = tmp_path / "in.jsonl", tmp_path / "state"
    append_lines(source, first_records())
    path = checkpoint_path(state, NAME)
    path.parent.mkdir(parents=True)
    old = {"dag": NAME, "written_at": 0.0, "positions": {"in": 0},
           "nodes": {"ingest": {"input": {}, "output": {"v": 0}, "latest": None}}, "ticks": {}}  # no "counters"
    path.write_bytes(msgpack.packb(old, use_bin_type=True))
    runtime = DagRuntime(keep_v_dag(source), state_dir=state)
    assert run_until_published(runtime, "restore_out", 4) == [{"v": v} for v in range(1, 5)]  # v 0 is restored
    details = runtime.details()
    assert not details["counters_restored"]
    assert (details["subscribers"]["in"]["records"], details["nodes"]["ingest"]["computes"]) == (10, 10)
    assert read_checkpoint(path)["counters"]["subscribers"]["in"]["records"] == 10  # written from now on


# -- (c) corrupt checkpoints ---------------------------------------------------------------------------------
def valid_checkpoint_bytes() -> bytes:
    return msgpack.packb({"dag": NAME, "written_at": 0.0, "positions": {"in": 12},
                          "nodes": {"ingest": {"input": None, "output": {"v": 99}, "latest": None}},
                          "ticks": {}}, use_bin_type=True)


def starts_from_scratch(tmp_path: Path, raw: bytes) -> DagRuntime:
    """Put ``raw`` where the checkpoint goes, run the DAG over ten lines; every line must be published anew."""
    source, state = tmp_path / "in.jsonl", tmp_path / "state"
    append_lines(source, first_records())
    path = checkpoint_path(state, NAME)
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    runtime = DagRuntime(keep_v_dag(source), state_dir=state)
    assert run_until_published(runtime, "restore_out", 5) == [{"v": v} for v in range(5)]
    assert runtime.details()["nodes"]["ingest"]["computes"] == 10
    fresh = read_checkpoint(path)  # the clean stop replaced the bad file with a good checkpoint
    assert fresh is not None and fresh["positions"] == {"in": source.stat().st_size}
    return runtime


CORRUPT = {
    "garbage": b"\xc1\xc1 this is not msgpack",
    "truncated": valid_checkpoint_bytes()[:20],
    "empty": b"",
    "trailing bytes": valid_checkpoint_bytes() + b"\x00junk",
}


@pytest.mark.parametrize("raw", CORRUPT.values(), ids=CORRUPT.keys())
def test_an_unreadable_checkpoint_is_logged_and_the_dag_starts_from_scratch(
        tmp_path: Path, raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dagserver.checkpoint"):
        starts_from_scratch(tmp_path, raw)
    messages = [r.getMessage() for r in caplog.records if r.name == "dagserver.checkpoint"]
    assert any(f"{NAME}.ckpt" in m and "unreadable" in m for m in messages), messages


def test_a_checkpoint_that_is_not_a_map_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dagserver.checkpoint"):
        starts_from_scratch(tmp_path, msgpack.packb([1, 2, 3]))
    assert [r for r in caplog.records if r.name == "dagserver.checkpoint"], "discarded without a word"


WRONG_SHAPE = {
    "nodes not a map": {"positions": {}, "nodes": 5},
    "node state not a map": {"positions": {}, "nodes": {"ingest": [1, 2]}},
    "positions not a map": {"positions": "garbage", "nodes": {}},
    "ticks not a map": {"positions": {}, "nodes": {}, "ticks": [1]},
}


@pytest.mark.parametrize("data", WRONG_SHAPE.values(), ids=WRONG_SHAPE.keys())
def test_a_checkpoint_of_the_wrong_shape_is_logged_and_the_dag_starts_from_scratch(
        tmp_path: Path, data: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    before = {ref.actor_urn for ref in pykka.ActorRegistry.get_all()}
    try:
        with caplog.at_level(logging.WARNING):
            starts_from_scratch(tmp_path, msgpack.packb(data))
        assert any("ckpt" in r.getMessage() for r in caplog.records), "the bad checkpoint was not reported"
    finally:  # if start() ever left actors behind, stop those this test made
        for ref in pykka.ActorRegistry.get_all():
            if ref.actor_urn not in before:
                ref.stop(block=False)


# -- (d) atomic writes ------------------------------------------------------------------------------------------
def test_a_leftover_tmp_file_from_a_crashed_write_does_not_break_reading(tmp_path: Path) -> None:
    source, state = tmp_path / "in.jsonl", tmp_path / "state"
    dag = keep_v_dag(source)
    append_lines(source, first_records())
    run_until_published(DagRuntime(dag, state_dir=state), "restore_out", 5)
    path = checkpoint_path(state, NAME)
    good = read_checkpoint(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(valid_checkpoint_bytes()[:20])  # a write that died half way, before its rename
    assert read_checkpoint(path) == good

    append_lines(source, [{"id": 10, "v": 5}])
    resumed = DagRuntime(dag, state_dir=state)
    assert run_until_published(resumed, "restore_out", 1) == [{"v": 5}]  # resumed from the good file
    assert resumed.details()["nodes"]["ingest"]["computes"] == good["counters"]["nodes"]["ingest"]["computes"] + 1
    assert not tmp.exists()  # the next write went through the same .tmp name and renamed it
    assert read_checkpoint(path)["positions"] == {"in": source.stat().st_size}


def test_only_a_tmp_file_means_no_checkpoint_yet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The very first write crashed before its rename: there is no checkpoint, and that is no error."""
    path = checkpoint_path(tmp_path / "state", NAME)
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".tmp").write_bytes(b"\x85\xa3dag")
    assert read_checkpoint(path) is None
    with caplog.at_level(logging.WARNING, logger="dagserver.checkpoint"):
        source = tmp_path / "in.jsonl"
        append_lines(source, first_records())
        runtime = DagRuntime(keep_v_dag(source), state_dir=tmp_path / "state")
        assert run_until_published(runtime, "restore_out", 5) == [{"v": v} for v in range(5)]
    assert not [r for r in caplog.records if r.name == "dagserver.checkpoint"]
