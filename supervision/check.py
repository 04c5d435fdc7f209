"""``dagserver check FILE...``: validate DAG files and report every problem.

Each problem is one line on stderr (file, where, value, suggestion); each valid file gets
a one-line summary on stdout. The exit code is 0 when every file is valid, 2 otherwise.
A directory stands for the ``*.json`` files directly inside it. DAG names must be unique
across the checked files, as they must be on one server.

Usage::

    sys.exit(run_check(["examples/dags", "extra.json"]))
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from adapters import registry
from graphs.errors import MISSING, Problem
from graphs.loader import check_dag_file
from graphs.model import DagModel
from graphs.state_warnings import stateful_warnings

EXIT_OK = 0
EXIT_INVALID = 2


def expand_paths(paths: list[str]) -> tuple[list[str], list[Problem]]:
    """The files to check (directories expanded to their ``*.json``), and path problems."""
    files: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(path, n) for n in os.listdir(path)
                if n.endswith(".json") and os.path.isfile(os.path.join(path, n))
            )
            if not found:
                problems.append(Problem(path, "file", MISSING, "directory holds no *.json file"))
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            problems.append(Problem(path, "file", MISSING, "no such file or directory"))
    return files, problems


def _summary(path: str, dag: DagModel) -> str:
    count = len(dag.nodes)
    return f"ok: {path} (dag {dag.name!r}, {count} node{'s' if count != 1 else ''})"


def _check_one(path: str) -> tuple[DagModel | None, list[Problem]]:
    try:
        return check_dag_file(path, uris=registry)
    except Exception as exc:  # never a traceback: a failure here is a bug, reported as a problem
        return None, [Problem(path, "file", MISSING,
                              f"internal error while validating: {type(exc).__name__}: {exc}")]


def run_check(paths: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate every DAG file in ``paths``; print problems to ``err``, summaries to ``out``.

    Returns 0 when every file is valid, 2 otherwise (also when there is nothing to check).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if not paths:
        print("check: no DAG file given", file=err)
        return EXIT_INVALID
    files, problems = expand_paths([os.fspath(p) for p in paths])
    for problem in problems:
        print(problem, file=err)
    failed = bool(problems)
    names: dict[str, str] = {}
    for path in files:
        dag, found = _check_one(path)
        if dag is not None and dag.name in names:
            found = [Problem(path, "name", dag.name,
                             f"DAG name {dag.name!r} is already used by {names[dag.name]}",
                             "DAG names must be unique per server")]
        for problem in found:
            print(problem, file=err)
        if dag is None or found:
            failed = True
            continue
        names[dag.name] = path
        for warning in stateful_warnings(dag):  # legal, but probably not meant (SPEC §11)
            print(f"warning: {warning}", file=err)
        print(_summary(path, dag), file=out)
    return EXIT_INVALID if failed else EXIT_OK
