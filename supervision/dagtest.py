"""``dagserver test``: recorded input, the publications a DAG must make from it, checked (SPEC §13).

A test file is JSON::

    {"dag": "../dags/prices.json",              # paths are relative to the test file
     "events": [{"subscriber": "orders", "record": {"price": 2, "qty": 3}}],
     "expect": {"values": [{"value": 6.0}]},     # each publisher's records, in order
     "engine": "actors",                         # or "reference" (default: actors)
     "epoch_records": 100}                       # optional: at most N records per epoch

``events_file`` (a ``replay`` events file) may stand in for ``events``. The events run through
the DAG exactly as ``dagserver replay`` runs them, and each publisher's sequence is compared
with ``expect``: a publisher missing from ``expect`` must publish nothing. Usage::

    dagserver test examples/tests/               # every *.json in the folder
    dagserver test prices.json --update          # write what the DAG publishes as the expectation
    dagserver test --from-capture CAPTURE_DIR -o prices.json

Exit status: 0 when every test passes, 1 when one fails (with a diff naming the publisher, the
first record that differs and the keys that differ), 2 when a test file is invalid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from adapters import registry
from graphs.errors import DagValidationError
from graphs.loader import load_dag
from graphs.model import DagModel
from graphs.suggest import did_you_mean
from graphs.values import nan_equal
from supervision.replay import Event, EventsError, parse_events, read_events, replay_actors, replay_reference

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
TEST_KEYS = ("dag", "description", "engine", "epoch_records", "events", "events_file", "expect")
ENGINES = ("actors", "reference")
Outputs = dict[str, list[Any]]


class InvalidTestFile(ValueError):
    """A test file that cannot run; the message has one line per problem, each naming file and JSON path."""


@dataclass
class DagTest:
    """One loaded test file, ready to run."""

    path: Path
    document: dict[str, Any]
    dag: DagModel
    events: list[Event]
    expect: Outputs
    engine: str


def load_test(path: str | os.PathLike[str]) -> DagTest:
    """Read and validate a test file; raises InvalidTestFile naming every problem."""
    path = Path(path)
    where = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidTestFile(f"{where}: cannot read test file: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidTestFile(f"{where}: line {exc.lineno}, column {exc.colno}: not JSON: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise InvalidTestFile(f"{where}: a test is a JSON object, got {type(document).__name__}")
    problems = [_unknown_key(where, key) for key in document if key not in TEST_KEYS]
    engine = document.get("engine", "actors")
    if engine not in ENGINES:
        problems.append(f"{where}: engine: {engine!r} is not an engine (use 'actors' or 'reference')")
    epoch_records = document.get("epoch_records")
    if epoch_records is not None and (not isinstance(epoch_records, int) or epoch_records < 1):
        problems.append(f"{where}: epoch_records: must be a positive number of records, got {epoch_records!r}")
    if not isinstance(document.get("dag"), str):
        problems.append(f"{where}: dag: the path of the DAG file is required (relative to the test file)")
    if problems:
        raise InvalidTestFile("\n".join(problems))
    try:
        dag = load_dag(str(path.parent / document["dag"]), uris=registry)
    except DagValidationError as exc:
        raise InvalidTestFile(f"{where}: dag: {exc}") from exc
    if epoch_records is not None:
        dag = dataclasses.replace(dag, max_records=epoch_records)
    events = _events(path, document, dag)
    expect = _expect(where, document.get("expect", {}), dag)
    return DagTest(path, document, dag, events, expect, engine)


def _unknown_key(where: str, key: str) -> str:
    hint = did_you_mean(key, TEST_KEYS)
    return f"{where}: {key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else "")


def _events(path: Path, document: dict[str, Any], dag: DagModel) -> list[Event]:
    where = str(path)
    inline, named = document.get("events"), document.get("events_file")
    if (inline is None) == (named is None):
        raise InvalidTestFile(f"{where}: events: give either 'events' (a list) or 'events_file' (a path), not "
                            f"{'both' if inline is not None else 'neither'}")
    try:
        if named is not None:
            if not isinstance(named, str):
                raise InvalidTestFile(f"{where}: events_file: a path is a string, got {named!r}")
            return read_events(str(path.parent / named), dag)
        if not isinstance(inline, list):
            raise InvalidTestFile(f"{where}: events: a list of events, got {type(inline).__name__}")
        return parse_events([(f"{where}: events[{i}]", event) for i, event in enumerate(inline)], dag)
    except EventsError as exc:
        raise InvalidTestFile(str(exc)) from exc


def _expect(where: str, expect: Any, dag: DagModel) -> Outputs:
    if not isinstance(expect, dict):
        raise InvalidTestFile(f"{where}: expect: an object of publisher name -> list of records, "
                            f"got {type(expect).__name__}")
    problems = []
    for name, records in expect.items():
        if name not in dag.publishers:
            hint = did_you_mean(name, list(dag.publishers))
            problems.append(f"{where}: expect.{name}: DAG {dag.name!r} has no publisher {name!r}"
                            + (f" (did you mean {hint!r}?)" if hint else f" (its publishers: "
                               f"{', '.join(sorted(dag.publishers)) or 'none'})"))
        elif not isinstance(records, list):
            problems.append(f"{where}: expect.{name}: a list of records, got {type(records).__name__}")
    if problems:
        raise InvalidTestFile("\n".join(problems))
    return expect


def run_test(test: DagTest) -> Outputs:
    """What each publisher of the DAG publishes for the test's events, as JSON would carry it."""
    run = replay_reference if test.engine == "reference" else replay_actors
    actual: Outputs = {name: [] for name in test.dag.publishers}
    for publisher, record in run(test.dag, test.events):
        actual[publisher].append(as_json(record))
    return actual


def as_json(value: Any) -> Any:
    """``value`` as it reads after a trip through a JSON file (bytes as UTF-8 text, tuples as lists)."""
    return json.loads(json.dumps(value, default=_bytes_as_text))


def _bytes_as_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def differences(expect: Outputs, actual: Outputs) -> list[str]:
    """One readable paragraph per publisher whose sequence differs; ``[]`` when all match."""
    found = []
    for name in sorted(set(expect) | set(actual)):
        want, got = expect.get(name, []), actual.get(name, [])
        if len(want) == len(got) and all(nan_equal(a, b) for a, b in zip(want, got, strict=False)):
            continue
        found.append(_describe(name, want, got))
    return found


def _describe(name: str, want: list[Any], got: list[Any]) -> str:
    first = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if not nan_equal(a, b)), None)
    lines = [f"publisher {name!r}: expected {len(want)} records, got {len(got)}"]
    if first is not None:
        lines[0] += f"; record {first + 1} differs"
        a, b = want[first], got[first]
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b)
                          if k not in a or k not in b or not (a[k] == b[k] or nan_equal(a[k], b[k])))
            lines.append("  keys that differ: " + "; ".join(
                f"{k}: expected {_show(a, k)}, got {_show(b, k)}" for k in keys))
        lines += [f"  expected: {json.dumps(a, sort_keys=True)}", f"  actual:   {json.dumps(b, sort_keys=True)}"]
    elif len(got) > len(want):
        lines.append(f"  first record not expected: {json.dumps(got[len(want)], sort_keys=True)}")
    else:
        lines.append(f"  first record missing: {json.dumps(want[len(got)], sort_keys=True)}")
    return "\n".join(lines)


def _show(record: dict[str, Any], key: str) -> str:
    return json.dumps(record[key]) if key in record else "(missing)"


def update_test(test: DagTest, actual: Outputs) -> None:
    """Write ``actual`` as the test's expectation (publishers that published nothing are left out)."""
    document = dict(test.document)
    document["expect"] = {name: records for name, records in actual.items() if records}
    _write_json(test.path, document)


def run_tests(paths: list[str], update: bool = False, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """The CLI command over files and folders of ``*.json`` tests."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    files, status = _expand(paths, err)
    passed = failed = 0
    for path in files:
        try:
            test = load_test(path)
        except InvalidTestFile as exc:
            print(exc, file=err)
            status = EXIT_INVALID
            continue
        actual = run_test(test)
        if update:
            update_test(test, actual)
            print(f"updated: {path} ({sum(len(v) for v in actual.values())} records)", file=out)
            continue
        found = differences(test.expect, actual)
        if found:
            failed += 1
            print(f"FAIL {path}", file=out)
            for paragraph in found:
                print("  " + paragraph.replace("\n", "\n  "), file=out)
            status = max(status, EXIT_FAILED)
        else:
            passed += 1
            print(f"ok   {path}", file=out)
    if not update:
        print(f"{passed} passed, {failed} failed", file=out)
    return status


def _expand(paths: list[str], err: TextIO) -> tuple[list[str], int]:
    files: list[str] = []
    status = EXIT_PASSED
    for given in paths:
        if os.path.isdir(given):
            found = sorted(str(p) for p in Path(given).glob("*.json"))
            if not found:
                print(f"{given}: no *.json test in this folder", file=err)
                status = EXIT_INVALID
            files += found
        elif os.path.exists(given):
            files.append(given)
        else:
            print(f"{given}: no such file or folder", file=err)
            status = EXIT_INVALID
    if not paths:
        print("test: no test file given", file=err)
        status = EXIT_INVALID
    return files, status


def from_capture(capture: str, output: str, dag_path: str | None = None, err: TextIO | None = None) -> int:
    """Turn a capture folder (``events.jsonl``, ``outputs.json`` and, unless ``dag_path`` names the DAG
    file, ``dag.json``) into a test file at ``output``."""
    err = err if err is not None else sys.stderr
    folder = Path(capture)
    dag_file = Path(dag_path) if dag_path else folder / "dag.json"
    problems = [f"{p}: missing from the capture" for p in (folder / "events.jsonl", folder / "outputs.json")
                if not p.is_file()]
    if not dag_file.is_file():
        problems.append(f"{dag_file}: no DAG file (give the DAG's file with --dag)")
    if problems:
        print("\n".join(problems), file=err)
        return EXIT_INVALID
    try:
        outputs = json.loads((folder / "outputs.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        print(f"{folder / 'outputs.json'}: line {exc.lineno}: not JSON: {exc.msg}", file=err)
        return EXIT_INVALID
    home = Path(output).resolve().parent
    document = {"dag": os.path.relpath(dag_file.resolve(), home),
                "events_file": os.path.relpath((folder / "events.jsonl").resolve(), home),
                "engine": "actors", "expect": outputs}
    _write_json(Path(output), document)
    try:
        load_test(output)
    except InvalidTestFile as exc:
        print(exc, file=err)
        return EXIT_INVALID
    return EXIT_PASSED


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Write a test file readably: one line per key, per event and per expected record."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_layout(document, "") + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _layout(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, dict) and any(isinstance(v, (dict, list)) and v for v in value.values()):
        items = [f"{inner}{json.dumps(k)}: {_layout(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + json.dumps(v) for v in value) + f"\n{indent}]"
    return json.dumps(value)


def add_test_parser(sub: Any) -> None:
    """The ``dagserver test`` subcommand, on the CLI's subparsers."""
    test = sub.add_parser("test", help="run DAG tests (recorded input, expected publications); exit 0 if all pass, "
                                       "1 if one fails, 2 on an invalid test")
    test.add_argument("files", nargs="*", metavar="FILE", help="test files or folders of *.json")
    test.add_argument("--update", action="store_true", help="write what each DAG publishes as its test's expectation")
    test.add_argument("--from-capture", metavar="DIR", help="turn a capture folder into a test file (with -o)")
    test.add_argument("-o", "--output", metavar="FILE", help="the test file --from-capture writes")
    test.add_argument("--dag", metavar="DAG.json", help="with --from-capture: the DAG file (default: DIR/dag.json)")


def run_test_command(args: argparse.Namespace) -> int:
    """``dagserver test``: run test files, or (``--from-capture DIR -o FILE``) write one from a capture."""
    if args.from_capture:
        if not args.output or args.files or args.update:
            print("test --from-capture DIR needs -o FILE, and takes no test files or --update", file=sys.stderr)
            return EXIT_INVALID
        return from_capture(args.from_capture, args.output, args.dag)
    if args.output or args.dag:
        print("test: -o and --dag go with --from-capture DIR", file=sys.stderr)
        return EXIT_INVALID
    return run_tests(args.files, update=args.update)
