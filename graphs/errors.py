"""Validation problems: one located, human-readable finding per :class:`Problem`.

A problem names the file, where in it (a JSON path such as ``edges[2].to_node``, or
``line 3, column 7`` for JSON syntax errors), the offending value and, when one is close,
a suggestion. ``str(problem)`` is always exactly one line, e.g.::

    examples/dags/x.json: edges[2].to_node: unknown node 'valuer' (did you mean 'value'?)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_VALUE_CHARS = 60


class _Missing:
    """Marker for "no offending value" (e.g. a required key that is absent)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def one_line(text: str) -> str:
    """``text`` with every line break folded into a single space."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or ""


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def format_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A short, one-line rendering of a JSON-ish value.

    Strings are quoted like Python reprs (``'valuer'``); everything else is compact JSON
    (``null``, ``true``, ``[1, 2]``, ``{"a": 1}``), falling back to ``repr`` for values
    JSON cannot show. Long renderings are shortened.
    """
    try:
        if isinstance(value, str):
            text = repr(value)
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=repr)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except Exception:  # a hostile __repr__ must not break error reporting
            text = f"<{type(value).__name__}>"
    return shorten(one_line(text), limit)


@dataclass
class Problem:
    """One thing wrong with a DAG file.

    ``where`` is a JSON path (``edges[2].to_node``), ``top level``, ``file`` or a
    ``line L, column C`` position. ``value`` is the offending value (:data:`MISSING` when
    there is none). ``suggestion`` is a short phrase such as ``did you mean 'value'?``.
    """

    file: str
    where: str
    value: Any
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        text = one_line(self.message)
        if self.value is not MISSING:
            shown = format_value(self.value)
            if shown not in text:
                text = f"{text} (got {shown})"
        if self.suggestion:
            text = f"{text} ({one_line(self.suggestion)})"
        return f"{one_line(self.file)}: {one_line(self.where)}: {text}"


class DagValidationError(ValueError):
    """A DAG file (or dict) is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
