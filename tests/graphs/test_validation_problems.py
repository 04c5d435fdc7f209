"""``dagserver check`` problem reports inside a DAG document: one case per kind of problem.

Each case mutates a valid DAG, writes it to a file, runs :func:`run_check` and asserts the
exit code 2 and the reported line: file, JSON path, offending value and suggestion. Also:
a document that is not an object or has no nodes, every problem reported at once, and user
component classes (found, failing to build, without the method, misspelt, missing).
Reading files and the loader's API are in ``test_loading.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graphs.errors import MISSING
from tests.support.dag_check import base, check_doc, line_at


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting (or, for MISSING, deleting) ``a.b[0].c`` in the document."""
    parts: list[Any] = []
    for chunk in path.split("."):
        name, _, rest = chunk.partition("[")
        parts.append(name)
        if rest:
            parts.extend(int(i) for i in rest.rstrip("]").split("]["))

    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in parts[:-1]:
            target = target[part]
        if value is MISSING:
            del target[parts[-1]]
        elif isinstance(target, list) and parts[-1] == len(target):
            target.append(copy.deepcopy(value))
        else:
            target[parts[-1]] = copy.deepcopy(value)

    return apply


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(doc)

    return apply


def _add_node(node: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["nodes"].append(node)


def _add_edge(src: str, dst: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["edges"].append({"from_node": src, "to_node": dst})


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, list[str]]] = [
    # (id, mutation, where, fragments expected in the line)
    ("missing-name", _set("name", MISSING), "name", ['needs a "name"']),
    ("name-not-string", _set("name", 5), "name", ["must be a string", "5"]),
    ("name-bad-chars", _set("name", "my dag"), "name", ["'my dag'", "did you mean 'my_dag'?"]),
    ("unknown-top-key", _set("edgs", []), "edgs", ["unknown key 'edgs'", "did you mean 'edges'?"]),
    ("unknown-subscriber-key", _set("subscribers[0].confg", {}), "subscribers[0].confg",
     ["did you mean 'config'?"]),
    ("unknown-publisher-key", _set("publishers[0].nam", "x"), "publishers[0].nam", ["did you mean 'name'?"]),
    ("unknown-calculator-key", _set("calculators[0].typ", "x"), "calculators[0].typ",
     ["did you mean 'type'?"]),
    ("unknown-transformer-key", _set("transformers[0].confi", {}), "transformers[0].confi",
     ["did you mean 'config'?"]),
    ("unknown-node-key", _set("nodes[1].calculater", "add"), "nodes[1].calculater",
     ["did you mean 'calculator'?"]),
    ("unknown-edge-key", _set("edges[0].to_nod", "x"), "edges[0].to_nod", ["did you mean 'to_node'?"]),
    ("unknown-checkpoint-key", _set("checkpoint", {"every_epoch": 3}), "checkpoint.every_epoch",
     ["did you mean 'every_epochs'?"]),
    ("unknown-epochs-key", _set("epochs", {"max_record": 3}), "epochs.max_record",
     ["did you mean 'max_records'?"]),
    ("description-type", _set("description", 3), "description", ["must be a string"]),
    ("section-not-list", _set("edges", {"a": 1}), "edges", ["must be a list", '{"a": 1}']),
    ("entry-not-object", _set("calculators[1]", "keep"), "calculators[1]", ["must be an object", "'keep'"]),
    ("dup-subscriber", _set("subscribers[1]", {"name": "prices", "config": {"source": "mem://queue/q"}}),
     "subscribers[1].name", ["duplicate subscriber name 'prices'", "subscribers[0]"]),
    ("dup-publisher", _set("publishers[1].name", "out"), "publishers[1].name", ["duplicate publisher"]),
    ("dup-calculator", _set("calculators[1].name", "add"), "calculators[1].name", ["duplicate calculator"]),
    ("dup-transformer", lambda d: d["transformers"].append(copy.deepcopy(d["transformers"][0])),
     "transformers[1].name", ["duplicate transformer name 'rename'"]),
    ("dup-node", _set("nodes[2].name", "value"), "nodes[2].name",
     ["duplicate node name 'value'", "nodes[1]"]),
    ("missing-source", _set("subscribers[0].config", {"sorce": "mem://queue/x"}),
     "subscribers[0].config.source", ['needs a "source"', "'sorce'"]),
    ("source-at-wrong-level", _set("subscribers[0]", {"name": "prices", "source": "mem://queue/x"}),
     "subscribers[0].config", ['put it under "config"']),
    ("source-not-string", _set("subscribers[0].config.source", 7), "subscribers[0].config.source",
     ["must be a string", "7"]),
    ("missing-destination", _set("publishers[0].config", {}), "publishers[0].config.destination",
     ['needs a "destination"']),
    ("publish-timeout-text", _set("publishers[0].config.publish_timeout", "30s"),
     "publishers[0].config.publish_timeout", ["positive number of seconds", "'30s'"]),
    ("publish-timeout-zero", _set("publishers[0].config.publish_timeout", 0),
     "publishers[0].config.publish_timeout", ["positive number of seconds"]),
    ("unknown-adapter-key", _set("subscribers[0].config.max_sise", 5), "subscribers[0].config.max_sise",
     ["unknown config key for mem sources", "did you mean 'max_size'?"]),
    ("unknown-file-sink-key", _both(_set("publishers[0].config.destination", "file:///tmp/x.jsonl"),
                                    _set("publishers[0].config.fsinc", False)), "publishers[0].config.fsinc",
     ["unknown config key for file destinations", "did you mean 'fsync'?"]),
    ("unknown-edge-node", _set("edges[0].to_node", "valuer"), "edges[0].to_node",
     ["unknown node 'valuer'", "did you mean 'value'?"]),
    ("unknown-edge-from", _set("edges[1].from_node", "Value"), "edges[1].from_node",
     ["unknown node 'Value'", "did you mean 'value'?"]),
    ("missing-edge-end", _set("edges[1].to_node", MISSING), "edges[1].to_node", ['needs "to_node"']),
    ("unknown-subscriber-ref", _set("nodes[0].subscriber", "price"), "nodes[0].subscriber",
     ["unknown subscriber 'price'", "did you mean 'prices'?"]),
    ("unknown-publisher-ref", _set("nodes[2].publishers", ["outt"]), "nodes[2].publishers[0]",
     ["unknown publisher 'outt'", "did you mean 'out'?"]),
    ("publisher-twice", _set("nodes[2].publishers", ["out", "out"]), "nodes[2].publishers[1]",
     ["listed twice"]),
    ("publishers-as-string", _set("nodes[2].publishers", "out"), "nodes[2].publishers",
     ["must be a list", '["out"]']),
    ("unknown-calculator-ref", _set("nodes[1].calculator", "ad"), "nodes[1].calculator",
     ["unknown calculator 'ad'", "did you mean 'add'?"]),
    ("wrong-section-ref", _set("nodes[1].calculator", "rename"), "nodes[1].calculator",
     ["unknown calculator 'rename'", "'rename' is a transformer, not a calculator"]),
    ("unknown-transformer-ref", _set("nodes[1].input_transformers", ["renme"]),
     "nodes[1].input_transformers[0]", ["unknown transformer 'renme'", "did you mean 'rename'?"]),
    ("unknown-output-transformer", _set("nodes[1].output_transformers", ["x"]),
     "nodes[1].output_transformers[0]", ["unknown transformer 'x'"]),
    ("unknown-edge-transformer", _set("edges[0].data_transformer", "renamed"), "edges[0].data_transformer",
     ["unknown transformer 'renamed'", "did you mean 'rename'?"]),
    ("unknown-node-type", _set("nodes[1].type", "CalculatonNode"), "nodes[1].type",
     ["unknown node type 'CalculatonNode'", "did you mean 'CalculationNode'?"]),
    ("user-node-class", _set("nodes[1].type", "mypkg.MyNode"), "nodes[1].type",
     ["user node classes are not supported", "'mypkg.MyNode'", "calculator"]),
    ("unknown-calculator-type", _set("calculators[0].type", "AdditionCalculater"), "calculators[0].type",
     ["'AdditionCalculater'", "did you mean 'AdditionCalculator'?"]),
    ("unknown-transformer-type", _set("transformers[0].type", "AttributeNameChangeTransformer"),
     "transformers[0].type", ["'AttributeNameChangeTransformer'", "did you mean"]),
    ("calculator-as-transformer", _set("transformers[0].type", "NullCalculator"), "transformers[0].type",
     ["'NullCalculator'"]),
    ("bad-calculator-config", _set("calculators[1].config", {"keep_atributes": ["a"]}),
     "calculators[1].config.keep_atributes", ["did you mean 'keep_attributes'?"]),
    ("unknown-source-scheme", _set("subscribers[0].config.source", "memm://queue/prices"),
     "subscribers[0].config.source", ["'memm'", "did you mean 'mem'?"]),
    ("unknown-destination-scheme", _set("publishers[0].config.destination", "kafak://topic/x"),
     "publishers[0].config.destination", ["'kafak'", "did you mean 'kafka'?"]),
    ("unknown-dead-letter-scheme", _set("dead_letter", "mme://queue/dead"), "dead_letter",
     ["'mme'", "did you mean 'mem'?"]),
    ("subscriber-feeds-two", _add_node({"name": "src2", "type": "SubscriptionNode", "subscriber": "prices"}),
     "nodes[4].subscriber", ["already feeds node 'src'"]),
    ("subscriber-feeds-none", lambda d: d["subscribers"].append(
        {"name": "spare", "config": {"source": "mem://queue/spare"}}),
     "subscribers[1]", ["subscriber 'spare' feeds no node"]),
    ("subscription-without-subscriber", _set("nodes[0].subscriber", MISSING), "nodes[0].subscriber",
     ["a SubscriptionNode needs a subscriber", "unused subscribers: 'prices'"]),
    ("subscriber-on-calculation", _set("nodes[1].subscriber", "prices"), "nodes[1].subscriber",
     ["a CalculationNode takes no subscriber", "SubscriptionNode"]),
    ("subscriber-on-publication", _set("nodes[2].subscriber", "prices"), "nodes[2].subscriber",
     ["a PublicationNode takes no subscriber"]),
    ("edge-into-subscription", _add_edge("value", "src"), "edges[2].to_node",
     ["cannot lead into 'src'", "SubscriptionNode is a root"]),
    ("edge-into-metronome", _add_edge("value", "clock"), "edges[2].to_node", ["MetronomeNode is a root"]),
    ("unreachable", _add_node({"name": "orphan", "calculator": "add"}), "nodes[4]",
     ["'orphan' is unreachable", "incoming edge"]),
    ("publishers-on-calculation", _set("nodes[1].publishers", ["out"]), "nodes[1].publishers",
     ["a CalculationNode does not publish", 'set "type": "PublicationNode"']),
    ("publication-without-publishers", _set("nodes[2].publishers", []), "nodes[2].publishers",
     ["a PublicationNode needs at least one publisher"]),
    ("bad-propagate", _set("propagate", "chnages"), "propagate", ["'chnages'", "did you mean 'changes'?"]),
    ("bad-node-propagate", _set("nodes[1].propagate", "allways"), "nodes[1].propagate",
     ["did you mean 'always'?"]),
    ("bad-start-time", _set("start_time", "2400"), "start_time", ["HHMM", "'2400'"]),
    ("bad-start-time-format", _set("start_time", "9am"), "start_time", ["HHMM", "'9am'"]),
    ("bad-end-time", _both(_set("start_time", "0900"), _set("end_time", "1299")), "end_time", ["'1299'"]),
    ("bad-duration", _both(_set("start_time", "0900"), _set("duration", "6x")), "duration",
     ["'6x'", "6h30m"]),
    ("zero-duration", _both(_set("start_time", "0900"), _set("duration", "0m")), "duration", ["positive"]),
    ("long-duration", _both(_set("start_time", "0900"), _set("duration", "24h1m")), "duration",
     ["at most 24h"]),
    ("end-and-duration", _both(_set("start_time", "0900"), _set("end_time", "1000"), _set("duration", "1h")),
     "duration", ["not both"]),
    ("end-without-start", _set("end_time", "1000"), "end_time", ["needs a start_time"]),
    ("duration-without-start", _set("duration", "2h"), "duration", ["needs a start_time"]),
    ("empty-window", _both(_set("start_time", "0900"), _set("end_time", "0900")), "end_time",
     ["equals start_time"]),
    ("replicas-zero", _set("replicas", 0), "replicas", ["positive integer", "0"]),
    ("replicas-bool", _set("replicas", True), "replicas", ["positive integer", "true"]),
    ("replicas-string", _set("replicas", "2"), "replicas", ["positive integer", "'2'"]),
    ("replicas-unshareable", _both(_set("replicas", 2),
                                   _set("subscribers[0].config.source", "mem://topic/prices")),
     "replicas", ["subscriber 'prices'", "'mem://topic/prices'", "cannot be shared"]),
    ("worker-negative", _set("worker", -1), "worker", ["integer >= 0", "-1"]),
    ("worker-bool", _set("worker", False), "worker", ["integer >= 0", "false"]),
    ("checkpoint-zero", _set("checkpoint", {"every_epochs": 0}), "checkpoint.every_epochs",
     ["positive integer"]),
    ("checkpoint-not-object", _set("checkpoint", 5), "checkpoint", ["must be an object"]),
    ("checkpoint-idle-zero", _set("checkpoint", {"idle_seconds": 0}), "checkpoint.idle_seconds",
     ["number of seconds > 0", "0"]),
    ("checkpoint-idle-string", _set("checkpoint", {"idle_seconds": "1s"}), "checkpoint.idle_seconds",
     ["number of seconds > 0", "'1s'"]),
    ("max-records-string", _set("epochs", {"max_records": "10"}), "epochs.max_records", ["'10'"]),
    ("max-inflight-float", _set("epochs", {"max_inflight": 2.5}), "epochs.max_inflight", ["2.5"]),
    ("metronome-interval-zero", _set("nodes[3].config.interval", 0), "nodes[3].config.interval",
     ["positive number", "0"]),
    ("metronome-interval-string", _set("nodes[3].config.interval", "5s"), "nodes[3].config.interval",
     ["'5s'"]),
    ("duplicate-edge", _add_edge("src", "value"), "edges[2]", ["duplicate edge src -> value", "edges[0]"]),
    ("self-loop", _add_edge("value", "value"), "edges[2]", ["self-loop", "'value'"]),
    ("cycle", _both(_add_node({"name": "c", "calculator": "add"}), _add_edge("pub", "c"),
                    _add_edge("c", "value")),
     "edges[3]", ["cycle: value -> pub -> c -> value"]),
]


@pytest.mark.parametrize(("mutate", "where", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problem_is_reported(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], where: str, fragments: list[str]
) -> None:
    doc = base()
    mutate(doc)
    code, out, err, file = check_doc(tmp_path, doc)
    assert code == 2
    assert out == ""
    line = line_at(err, file, where)
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert "internal error" not in err
    assert "Traceback" not in err


def test_top_level_not_an_object(tmp_path: Path) -> None:
    code, _, err, file = check_doc(tmp_path, [1, 2])
    assert code == 2
    assert line_at(err, file, "top level").endswith("a DAG must be a JSON object, not a list (got [1, 2])")


def test_no_nodes(tmp_path: Path) -> None:
    doc = base()
    doc.update(nodes=[], edges=[], subscribers=[])
    code, _, err, file = check_doc(tmp_path, doc)
    assert code == 2
    assert "at least one node" in line_at(err, file, "nodes")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = base()
    doc["nmae"] = "x"
    doc["edges"][0]["to_node"] = "valuer"
    doc["calculators"][0]["type"] = "Addition"
    code, _, err, file = check_doc(tmp_path, doc)
    assert code == 2
    for where in ("nmae", "edges[0].to_node", "calculators[0].type"):
        line_at(err, file, where)


USER_MODULE = '''
class Good:
    def __init__(self, name, config):
        self.factor = config["factor"]
    def calculate(self, record):
        return record

class Fussy:
    def __init__(self, name, config):
        raise RuntimeError("factor missing")
    def calculate(self, record):
        return record

class NoMethod:
    def __init__(self, name, config):
        pass
'''


@pytest.mark.parametrize(
    ("type_suffix", "where", "fragment"),
    [
        ("Good", None, None),
        ("Fussy", "calculators[2].config", "factor missing"),
        ("NoMethod", "calculators[2].type", "calculate"),
        ("Gooood", "calculators[2].type", "did you mean"),
    ],
)
def test_user_calculator_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, type_suffix: str, where: str | None, fragment: str | None
) -> None:
    module = f"dagusers_{type_suffix.lower()}"
    (tmp_path / f"{module}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base()
    doc["calculators"].append({"name": "mine", "type": f"{module}.{type_suffix}", "config": {"factor": 2}})
    code, _, err, file = check_doc(tmp_path, doc)
    if where is None:
        assert (code, err) == (0, "")
        return
    assert code == 2
    assert fragment in line_at(err, file, where)


def test_user_module_not_found(tmp_path: Path) -> None:
    doc = base()
    doc["transformers"].append({"name": "mine", "type": "no_such_pkg_xyz.Thing"})
    code, _, err, file = check_doc(tmp_path, doc)
    assert code == 2
    assert "not found" in line_at(err, file, "transformers[1].type")


def test_replicas_on_shareable_source_is_fine(tmp_path: Path) -> None:
    doc = base()
    doc["replicas"] = 3
    assert check_doc(tmp_path, doc)[0] == 0
