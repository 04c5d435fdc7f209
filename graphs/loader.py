"""Load DAG files (or in-memory dicts) into validated :class:`graphs.model.DagModel` objects.

Every problem is reported at once: :func:`load_dag` raises :class:`DagValidationError`
listing all of them, :func:`validate_file` returns them. JSON syntax errors carry a line
and column; duplicate keys and non-finite numbers are problems too. URIs and endpoint
config keys are checked against the ``uris`` rules given (the adapters' registry in the
server and the CLI); without them, only the DAG itself is.

Usage::

    from adapters import registry
    dag = load_dag("examples/dags/prices.json", uris=registry)
    dag = load_dag_dict({"name": "t", "nodes": [...]})
    for problem in validate_file("broken.json"):
        print(problem)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from graphs.building import build_model
from graphs.errors import MISSING, DagValidationError, Problem, shorten
from graphs.model import DagModel
from graphs.templates import Resolved, has_templates, resolve_templates
from graphs.validation import UriRules, validate_dag
from graphs.validation.base import item_path, key_path

__all__ = [
    "DagValidationError",
    "Problem",
    "check_dag_dict",
    "check_dag_file",
    "load_dag",
    "load_dag_dict",
    "parse_dag_text",
    "validate_file",
]


def _syntax_problem(file: str, text: str, exc: json.JSONDecodeError) -> Problem:
    snippet = text[exc.pos : exc.pos + 30].split("\n", 1)[0]
    message = f"invalid JSON: {exc.msg}"
    if not text.strip():
        message = "invalid JSON: the file is empty"
    elif not snippet:
        message += " (at the end of the line or file)"
    where = f"line {exc.lineno}, column {exc.colno}"
    return Problem(file, where, shorten(snippet, 30) if snippet else MISSING, message)


def _walk_problems(file: str, data: Any, duplicates: dict[int, list[tuple[str, Any]]]) -> list[Problem]:
    """Duplicate keys and non-finite numbers, located by JSON path."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, later in duplicates.get(id(value), ()):
                problems.append(Problem(file, key_path(path, key) or "top level", later,
                                        f"duplicate key {key!r}: a key may appear only once in an object"))
            stack.extend((key_path(path, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((item_path(path, i), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(file, path or "top level", value,
                                    "not a finite number (NaN and Infinity are not JSON)"))
    return problems


def parse_dag_text(text: str, file: str = "<memory>") -> tuple[Any, list[Problem]]:
    """Parse JSON ``text``: the document (None on a syntax error) and the parse problems."""
    duplicates: dict[int, list[tuple[str, Any]]] = {}

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        dups: list[tuple[str, Any]] = []
        for key, value in pairs:
            if key in obj:
                dups.append((key, value))
            obj[key] = value
        if dups:
            duplicates[id(obj)] = dups
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        return None, [_syntax_problem(file, text, exc)]
    except RecursionError:
        return None, [Problem(file, "file", MISSING, "invalid JSON: nested too deeply")]
    except ValueError as exc:  # e.g. an integer with too many digits
        return None, [Problem(file, "file", MISSING, f"invalid JSON: {exc}")]
    return data, _walk_problems(file, data, duplicates)


def _read_text(path: str) -> tuple[str | None, list[Problem]]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, [Problem(path, "file", MISSING, "no such file")]
    except IsADirectoryError:
        return None, [Problem(path, "file", MISSING, "is a directory, not a DAG file")]
    except OSError as exc:
        return None, [Problem(path, "file", MISSING, f"cannot read the file: {exc.strerror or exc}")]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Problem(path, f"line {line}, column {column}", MISSING,
                              f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded")]


def check_dag_dict(data: Any, source_path: str = "<memory>",
                   uris: UriRules | None = None) -> tuple[DagModel | None, list[Problem]]:
    """Resolve the templates in ``data`` (:mod:`graphs.templates`), validate it and build its model:
    ``(model, [])`` or ``(None, problems)``. The model's ``raw`` is resolved; its ``template`` is
    ``data`` as written when it used templates.

    Never raises for bad input; an unexpected failure inside validation becomes a problem.
    """
    try:
        templated = has_templates(data)
        document, resolved = data, None
        if templated:
            resolved = resolve_templates(data)
            if resolved.problems:
                return None, [Problem(source_path, p.path, p.value, p.message, p.suggestion)
                              for p in resolved.problems]
            document = resolved.value
        problems = validate_dag(document, source_path, uris)
        if problems:
            return None, _masked(problems, resolved)
        model = build_model(document, source_path)
        return (dataclasses.replace(model, template=data) if templated else model), []
    except Exception as exc:  # a validator bug: report it rather than crash the caller
        return None, [Problem(source_path, "top level", MISSING,
                              f"internal error while validating: {type(exc).__name__}: {exc}")]


def _masked(problems: list[Problem], resolved: Resolved | None) -> list[Problem]:
    """``problems`` with values that came from templates shown masked, as views show them (SPEC §14)."""
    if resolved is None:
        return problems
    return [dataclasses.replace(p, message=resolved.hide(p.where, p.message),
                                value=resolved.hide(p.where, p.value) if isinstance(p.value, str) else p.value)
            for p in problems]


def check_dag_file(path: str | os.PathLike[str],
                   uris: UriRules | None = None) -> tuple[DagModel | None, list[Problem]]:
    """Read, parse, validate and build the DAG in ``path``; see :func:`check_dag_dict`."""
    file = os.fspath(path)
    text, problems = _read_text(file)
    if text is None:
        return None, problems
    data, problems = parse_dag_text(text, file)
    if data is None and problems:
        return None, problems
    model, more = check_dag_dict(data, file, uris)
    if problems:
        return None, problems + more
    return model, more


def load_dag(path: str | os.PathLike[str], uris: UriRules | None = None) -> DagModel:
    """The validated model of the DAG file at ``path``.

    Raises :class:`DagValidationError` listing every problem found.
    """
    model, problems = check_dag_file(path, uris)
    if model is None:
        raise DagValidationError(problems)
    return model


def load_dag_dict(data: Any, source_path: str = "<memory>", uris: UriRules | None = None) -> DagModel:
    """The validated model of an in-memory DAG document; raises :class:`DagValidationError`."""
    model, problems = check_dag_dict(data, source_path, uris)
    if model is None:
        raise DagValidationError(problems)
    return model


def validate_file(path: str | os.PathLike[str], uris: UriRules | None = None) -> list[Problem]:
    """Every problem in the DAG file at ``path`` (empty when it is valid)."""
    return check_dag_file(path, uris)[1]
