"""Adding a URI scheme takes one new module and one line of the registry (SPEC §6).

``tests/support/toy_adapter.py`` declares ``toy://COUNT`` by the steps of "Writing an adapter"
(docs/ADAPTERS.md); each test here checks one or two of them. The fixture adds the registry
line (step 6) and everything else follows: validation knows the URI shape and the config keys,
replicas know it can be shared, and a DAG runs with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.runtime import DagRuntime
from adapters import registry
from adapters.base import CLOSED, CONNECTED, RejectedRecord
from graphs.loader import check_dag_dict
from supervision.counters import carry_forward, with_carry
from tests.support.toy_adapter import ToySink
from tests.support.waiting import wait_until
from web.metrics import render_metrics


@pytest.fixture(autouse=True)
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry, "_adapters", dict(registry._adapters))
    monkeypatch.setitem(registry.MODULES, "toy", "tests.support.toy_adapter")  # step 6: the one line
    ToySink.kept = []
    yield


def toy_dag(source: str = "toy://5", **source_config: object) -> dict:
    return {
        "name": "toy", "replicas": 2,
        "subscribers": [{"name": "in", "config": {"source": source, **source_config}}],
        "publishers": [{"name": "out", "config": {"destination": "toy://0"}}],
        "nodes": [{"name": "ingest", "type": "SubscriptionNode", "subscriber": "in"},
                  {"name": "publish", "type": "PublicationNode", "publishers": ["out"]}],
        "edges": [{"from_node": "ingest", "to_node": "publish"}],
    }


def test_validation_knows_the_new_scheme() -> None:
    """Steps 2 and 5: the URI rule, the config keys and sharing reach validation."""
    model, problems = check_dag_dict(toy_dag(label="x"), uris=registry)
    assert problems == [] and model is not None  # shape, config key and sharing (replicas 2) all known
    _, problems = check_dag_dict(toy_dag("toy://many", labl="x"), uris=registry)
    messages = [str(p) for p in problems]
    assert any("must look like toy://COUNT" in m for m in messages), messages
    assert any("labl" in m and "did you mean 'label'?" in m for m in messages), messages
    assert registry.check_uri("tyo://3", "source") == "unknown URI scheme 'tyo' (did you mean 'toy'?)"


def test_the_source_resumes_just_after_its_position() -> None:
    """Step 3: settings in the constructor, records from open(), a position a restart resumes from."""
    src = registry.open_source("toy://5", {"label": "a"})
    assert src.status == CLOSED  # built, not connected
    src.open(None)
    assert (src.status, src.read_batch(2, timeout=0.0)) == (CONNECTED, [{"n": 0, "label": "a"}, {"n": 1, "label": "a"}])
    saved = msgpack.unpackb(msgpack.packb(src.position()))  # what a checkpoint keeps
    assert src.backlog() == 3
    src.close()
    assert src.status == CLOSED
    again = registry.open_source("toy://5?label=b", {})  # a setting may also come in the URI
    again.open(saved)
    assert again.read_batch(10, timeout=0.0) == [{"n": n, "label": "b"} for n in (2, 3, 4)]
    assert again.read_batch(10, timeout=0.0) == []


def test_the_sink_hands_back_the_records_it_refuses() -> None:
    """Step 4: a record the sink can never write comes back; the rest of the batch is written."""
    sink = registry.open_sink("toy://0", {})
    sink.open()
    refused = sink.write_batch([{"n": 1}, {"m": 2}, {"n": 3}])
    assert refused == [RejectedRecord({"m": 2}, "a toy record needs an 'n'")]
    assert ToySink.kept == [{"n": 1}, {"n": 3}]


def test_a_dag_runs_on_the_new_scheme() -> None:
    """Step 7: a whole DAG reads and writes the new scheme."""
    model, _ = check_dag_dict(toy_dag(), uris=registry)
    assert model is not None
    runtime = DagRuntime(model)
    runtime.start()
    assert wait_until(lambda: len(ToySink.kept) == 5)
    assert ToySink.kept == [{"n": n} for n in range(5)]
    assert runtime.stop(timeout=5)


def commit_errors_sample(details: dict) -> float:
    text = render_metrics([{**details, "worker": 0}], []).decode("utf-8")
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "dagserver_commit_errors_total"]
    assert [s.labels for s in samples] == [{"dag": "toy", "subscriber": "in", "worker": "0"}]
    return samples[0].value


def test_failed_commits_are_counted_from_the_source_to_the_metric() -> None:
    """A source whose commits fail counts them (SPEC §6): the runtime reads the count as it reads
    ``dropped``, the details carry it, /metrics shows it, and a worker's carry keeps it."""
    doc = {**toy_dag(refuse_commits=True), "replicas": 1, "checkpoint": {"every_epochs": 1}}
    model, _ = check_dag_dict(doc, uris=registry)
    assert model is not None
    runtime = DagRuntime(model)
    runtime.start()
    try:
        assert wait_until(lambda: len(ToySink.kept) == 5)
        assert wait_until(lambda: runtime.stats.subscribers["in"].commit_errors > 0)  # the completed epochs' commits
    finally:
        assert runtime.stop(timeout=5)
    details = runtime.details()
    failed = details["subscribers"]["in"]["commit_errors"]
    assert failed == runtime.stats.subscribers["in"].commit_errors >= 1
    assert details["publishers"]["out"]["commit_errors"] == 0
    assert commit_errors_sample(details) == failed
    carry: dict = {}
    carry_forward(carry, details)  # the worker dies: what it counted is carried onto its replacement
    restarted = {**details, "subscribers": {"in": {**details["subscribers"]["in"], "commit_errors": 1}}}
    assert commit_errors_sample(with_carry(restarted, carry)) == failed + 1
