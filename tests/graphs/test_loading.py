"""Reading DAG files and the loader's API (``graphs/loader.py``, ``dagserver check`` on files).

Covered: a valid file is ok; JSON syntax errors with line and column, empty files, text
that is not UTF-8, duplicate keys and non-finite numbers; missing paths and folders of DAG
files; DAG names unique across files; ``load_dag_dict``/``load_dag``/``validate_file`` and
the model they build; how a problem is formatted; ``did_you_mean``. Problems inside a
document, case by case, are in ``test_validation_problems.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphs.errors import DagValidationError, Problem, format_value
from graphs.loader import load_dag, load_dag_dict, validate_file
from graphs.suggest import did_you_mean
from tests.support.dag_check import base, check_doc, check_paths, line_at


def test_valid_dag_is_ok(tmp_path: Path) -> None:
    code, out, err, file = check_doc(tmp_path, base())
    assert (code, err) == (0, "")
    assert out.strip() == f"ok: {file} (dag 'prices', 4 nodes)"


def test_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n  "nodes": [1,, 2]}')
    code, _, err = check_paths([str(path)])
    assert code == 2
    assert err.startswith(f"{path}: line 2, column 15: invalid JSON: Expecting value (got ', 2]}}')")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("")
    code, _, err = check_paths([str(path)])
    assert code == 2 and "the file is empty" in err


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"name":\n "caf\xe9"}')
    code, _, err = check_paths([str(path)])
    assert code == 2
    assert f"{path}: line 2, column 6: not UTF-8 text" in err


def test_duplicate_json_keys(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    text = json.dumps(base()).replace('"name": "src",', '"name": "src", "name": "src",', 1)
    path.write_text(text)
    code, _, err = check_paths([str(path)])
    assert code == 2
    assert "duplicate key 'name'" in line_at(err, str(path), "nodes[0].name")


def test_non_finite_number(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(base()).replace('"interval": 5', '"interval": NaN'))
    code, _, err = check_paths([str(path)])
    assert code == 2
    assert "not a finite number" in line_at(err, str(path), "nodes[3].config.interval")


def test_missing_path_and_directories(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = check_paths([str(missing)])
    assert code == 2 and f"{missing}: file: no such file" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = check_paths([str(empty)])
    assert code == 2 and "no *.json file" in err
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(base()))
    other = base()
    other["name"] = "other"
    (folder / "b.json").write_text(json.dumps(other))
    (folder / "notes.txt").write_text("not a dag")
    code, out, err = check_paths([str(folder)])
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"ok: {folder / 'a.json'} (dag 'prices', 4 nodes)",
                                f"ok: {folder / 'b.json'} (dag 'other', 4 nodes)"]
    assert check_paths([])[0] == 2


def test_dag_names_unique_across_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(base()))
    second.write_text(json.dumps(base()))
    code, out, err = check_paths([str(first), str(second)])
    assert code == 2
    assert out.count("ok:") == 1
    assert f"already used by {first}" in line_at(err, str(second), "name")


def test_load_dag_dict_builds_the_model(tmp_path: Path) -> None:
    doc = base()
    doc.update(propagate="always", start_time="2300", duration="6h30m", checkpoint={"every_epochs": 7},
               epochs={"max_records": 50}, worker=0, dead_letter="mem://queue/dead")
    doc["nodes"][1]["propagate"] = "changes"
    dag = load_dag_dict(doc, "mem.json")
    assert dag.topo_order == ("src", "value", "pub", "clock")
    assert dag.roots == ("src", "clock")
    assert dag.nodes["value"].propagate == "changes" and dag.nodes["pub"].always
    assert dag.duration_seconds == 6 * 3600 + 1800
    assert (dag.checkpoint_every, dag.max_records, dag.max_inflight) == (7, 50, 4)
    assert dag.worker == 0 and dag.dead_letter == "mem://queue/dead"
    assert dag.calculators["add"].config["arguments"] == ["a", "b"]
    assert dag.raw is doc
    assert dag.edges[0].data_transformer == "rename"
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc))
    assert load_dag(path).name == "prices" and validate_file(path) == []


def test_load_dag_raises_with_every_problem() -> None:
    doc = base()
    doc["edges"][0]["to_node"] = "valuer"
    doc["replicas"] = 0
    with pytest.raises(DagValidationError) as info:
        load_dag_dict(doc, "x.json")
    assert len(info.value.problems) == 2
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]
    assert "x.json: edges[0].to_node: unknown node 'valuer' (did you mean 'value'?)" in str(info.value)


def test_problem_formatting() -> None:
    problem = Problem("x.json", "edges[2].to_node", "valuer", "unknown node 'valuer'",
                      "did you mean 'value'?")
    assert str(problem) == "x.json: edges[2].to_node: unknown node 'valuer' (did you mean 'value'?)"
    long = Problem("f", "w", {"k": "v" * 500}, "bad\nvalue")
    assert "\n" not in str(long) and len(str(long)) < 100 and "(got {" in str(long)
    assert format_value(None) == "null" and format_value([1, True]) == "[1, true]"


def test_did_you_mean() -> None:
    assert did_you_mean("valuer", ["value", "src"]) == "value"
    assert did_you_mean("SRC", ["value", "src"]) == "src"
    assert did_you_mean("zzz", ["value", "src"]) is None
    assert did_you_mean(3, ["value"]) is None
