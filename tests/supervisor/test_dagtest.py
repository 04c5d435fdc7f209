"""``dagserver test`` (SPEC §13): DAG tests pass, fail with a readable diff, or are refused as invalid."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervision.dagtest import differences, from_capture, run_tests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TESTS = ROOT / "examples" / "tests"
PRICES_EVENTS = [
    {"subscriber": "orders", "record": {"id": 1, "price": 2.5, "qty": 4}},
    {"subscriber": "orders", "record": {"id": 2, "price": 3, "qty": 2}},
]


def run(paths: list[Path], update: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_tests([str(p) for p in paths], update=update, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    """A copy of the prices example DAG and a test of it, in a temporary folder."""
    shutil.copy(ROOT / "examples" / "dags" / "prices.json", tmp_path / "prices.json")
    test = {"dag": "prices.json", "events": PRICES_EVENTS, "expect": {"values": [{"value": 10.0}, {"value": 6.0}]}}
    (tmp_path / "prices_test.json").write_text(json.dumps(test))
    return tmp_path / "prices_test.json"


def change_calculator(dag_path: Path, output_attribute: str) -> None:
    dag = json.loads(dag_path.read_text())
    dag["calculators"][2]["config"]["output_attribute"] = output_attribute
    dag_path.write_text(json.dumps(dag))


def test_every_example_dag_has_a_test_and_they_pass() -> None:
    tested = {json.loads(p.read_text())["dag"].split("dags/", 1)[1] for p in EXAMPLE_TESTS.glob("*.json")}
    examples = {str(p.relative_to(ROOT / "examples" / "dags")) for p in (ROOT / "examples" / "dags").rglob("*.json")}
    assert examples <= tested, f"example DAGs without a test in examples/tests/: {sorted(examples - tested)}"
    env = {**os.environ, "MQ_PASSWORD": "example"}  # the ActiveMQ example reads its password from there
    done = subprocess.run([sys.executable, "-m", "supervisor", "test", str(EXAMPLE_TESTS)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(list(EXAMPLE_TESTS.glob('*.json')))} passed, 0 failed" in done.stdout


@pytest.mark.parametrize("engine", ["actors", "reference"])
def test_a_passing_test_then_a_changed_calculator_fails_with_a_diff_naming_the_field(prices: Path,
                                                                                     engine: str) -> None:
    document = json.loads(prices.read_text())
    prices.write_text(json.dumps({**document, "engine": engine}))
    assert run([prices])[0] == 0
    change_calculator(prices.parent / "prices.json", "total")
    status, out, _ = run([prices])
    assert status == 1
    assert f"FAIL {prices}" in out
    assert "publisher 'values': expected 2 records, got 2; record 1 differs" in out
    assert "keys that differ: total: expected (missing), got 10.0; value: expected 10.0, got (missing)" in out
    assert "0 passed, 1 failed" in out


def test_update_writes_what_the_dag_publishes(prices: Path) -> None:
    change_calculator(prices.parent / "prices.json", "total")
    status, out, _ = run([prices], update=True)
    assert status == 0 and "updated:" in out
    assert json.loads(prices.read_text())["expect"] == {"values": [{"total": 10.0}, {"total": 6.0}]}
    assert json.loads(prices.read_text())["events"] == PRICES_EVENTS  # the rest of the file as it was
    assert run([prices])[0] == 0


def test_only_the_keys_that_differ_are_named_not_equal_ones_beside_them() -> None:
    found = differences({"p": [{"label": "v1", "message": "m", "tick": 3, "x": float("nan")}]},
                        {"p": [{"label": "v2", "message": "m", "tick": 3, "x": float("nan")}]})
    assert found[0].splitlines()[1] == '  keys that differ: label: expected "v1", got "v2"'


def test_missing_and_extra_records_are_named() -> None:
    extra = differences({"p": [{"a": 1}]}, {"p": [{"a": 1}, {"a": 2}]})
    assert extra == ['publisher \'p\': expected 1 records, got 2\n  first record not expected: {"a": 2}']
    missing = differences({"p": [{"a": 1}], "q": []}, {"p": [], "q": []})
    assert missing == ['publisher \'p\': expected 1 records, got 0\n  first record missing: {"a": 1}']
    assert differences({"p": [{"x": float("nan")}]}, {"p": [{"x": float("nan")}]}) == []


def test_a_publisher_left_out_of_expect_must_publish_nothing(prices: Path) -> None:
    document = json.loads(prices.read_text())
    prices.write_text(json.dumps({**document, "expect": {}}))
    status, out, _ = run([prices])
    assert status == 1 and "publisher 'values': expected 0 records, got 2" in out


@pytest.mark.parametrize(("change", "message"), [
    ({"expect": {"valeus": []}}, "expect.valeus: DAG 'prices' has no publisher 'valeus' (did you mean 'values'?)"),
    ({"expcet": {}}, "expcet: unknown key (did you mean 'expect'?)"),
    ({"engine": "fast"}, "engine: 'fast' is not an engine"),
    ({"events_file": "events.jsonl"}, "events: give either 'events' (a list) or 'events_file' (a path), not both"),
    ({"events": [{"subscriber": "ordres", "record": {}}]},
     "events[0]: subscriber: unknown subscriber 'ordres' (did you mean 'orders'?)"),
    ({"dag": "missing.json"}, "dag: "),
    ({"epoch_records": 0}, "epoch_records: must be a positive number of records"),
])
def test_an_invalid_test_exits_2_naming_the_problem(prices: Path, change: dict, message: str) -> None:
    document = json.loads(prices.read_text())
    prices.write_text(json.dumps({**document, **change}))
    status, _, err = run([prices])
    assert status == 2
    assert f"{prices}: {message}" in err


def test_a_file_that_is_not_json_or_a_missing_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{\"dag\": ")
    status, _, err = run([tmp_path / "broken.json", tmp_path / "absent.json"])
    assert status == 2
    assert "broken.json: line 1, column 9: not JSON" in err and "absent.json: no such file or folder" in err


def test_from_capture_writes_a_test_that_passes_and_catches_a_change(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    (capture / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in PRICES_EVENTS))
    (capture / "outputs.json").write_text(json.dumps({"values": [{"value": 10.0}, {"value": 6.0}]}))
    dag = tmp_path / "dags" / "prices.json"
    dag.parent.mkdir()
    shutil.copy(ROOT / "examples" / "dags" / "prices.json", dag)
    out = tmp_path / "tests" / "prices.json"
    out.parent.mkdir()
    done = subprocess.run([sys.executable, "-m", "supervisor", "test", "--from-capture", str(capture), "-o",
                           str(out), "--dag", str(dag)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["dag"] == "../dags/prices.json"
    assert run([out])[0] == 0
    change_calculator(dag, "total")
    assert run([out])[0] == 1


def test_from_capture_without_outputs_or_dag_exits_2(tmp_path: Path) -> None:
    err = io.StringIO()
    assert from_capture(str(tmp_path), str(tmp_path / "t.json"), err=err) == 2
    assert "outputs.json: missing from the capture" in err.getvalue()
    assert "dag.json: no DAG file (give the DAG's file with --dag)" in err.getvalue()
