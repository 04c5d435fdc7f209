"""Shared helpers for DAG validation: the problem collector, the URI rules it is given, JSON paths, type checks."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, Protocol

from graphs.errors import MISSING, Problem
from graphs.suggest import mean_phrase

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class UriRules(Protocol):
    """What validation asks of the adapters about a URI (``adapters.registry`` is one).

    Validation never imports adapters itself: whoever validates passes the rules in. Rules may
    also have ``check_user_class(target, kind) -> str | None`` (asked before a ``module.Class``
    is imported), ``imports_user_code = False`` (user classes are then checked by name only,
    never imported: the server's supervisor, :mod:`supervision.security`) and
    ``check_values(uri, config, role) -> [(key, message)]`` (config values the rules refuse, such
    as a file outside the server's ``file_roots``).
    """

    def check_uri(self, uri: str, role: str) -> str | None:
        """One line saying what is wrong with ``uri`` as a ``source``/``destination``, or None."""

    def config_keys(self, uri: str, role: str) -> tuple[str, ...] | None:
        """The config keys an endpoint of this URI accepts (None: any)."""

    def is_shareable(self, uri: str) -> bool:
        """Whether replicas of a DAG may share a source reading ``uri``."""

    def check_config(self, uri: str, config: dict[str, Any], role: str, dag_settings: dict[str, int]) -> list[Any]:
        """Problems of an endpoint's config in its DAG (``dag_settings``: "checkpoint.every_epochs",
        "epochs.max_records", "epochs.max_inflight", defaults applied), each with ``key``, ``message``
        and ``suggestion``. Optional: rules without it check nothing more."""


class AnyUri:
    """Rules that accept every well-formed URI: validation of the DAG alone, without adapters."""

    def check_uri(self, uri: str, role: str) -> str | None:
        return None

    def config_keys(self, uri: str, role: str) -> tuple[str, ...] | None:
        return None

    def is_shareable(self, uri: str) -> bool:
        return True

    def check_config(self, uri: str, config: dict[str, Any], role: str, dag_settings: dict[str, int]) -> list[Any]:
        return []


class Collector:
    """Accumulates :class:`Problem` objects for one file, checking URIs with ``uris``."""

    def __init__(self, file: str, uris: UriRules | None = None) -> None:
        self.file = file
        self.uris: UriRules = uris if uris is not None else AnyUri()
        self.problems: list[Problem] = []

    def add(self, where: str, message: str, value: Any = MISSING, suggestion: str | None = None) -> None:
        """Record one problem at JSON path ``where``."""
        self.problems.append(Problem(self.file, where or "top level", value, message, suggestion))


def key_path(path: str, key: Any) -> str:
    """``path.key`` (``key`` alone at the top); odd keys are quoted as ``path["a b"]``."""
    text = str(key)
    if not _PLAIN_KEY.fullmatch(text):
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'{path}["{quoted}"]'
    return f"{path}.{text}" if path else text


def item_path(path: str, index: int) -> str:
    """``path[index]``."""
    return f"{path}[{index}]"


def kind_of(value: Any) -> str:
    """How a JSON value reads in a message: ``a string``, ``an object``, ``null`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def a(word: str) -> str:
    """``word`` with its indefinite article: ``a node``, ``an edge``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def check_keys(col: Collector, obj: dict[Any, Any], path: str, allowed: Iterable[str], what: str) -> None:
    """Report every key of ``obj`` that is not in ``allowed``, with a did-you-mean."""
    allowed = tuple(allowed)
    for key in obj:
        if key not in allowed:
            col.add(
                key_path(path, key),
                f"unknown key {key!r} in {what}",
                suggestion=mean_phrase(key, allowed) or f"allowed keys: {', '.join(allowed)}",
            )


def expect_object(col: Collector, value: Any, path: str, what: str) -> bool:
    """True when ``value`` is a JSON object; otherwise report it."""
    if isinstance(value, dict):
        return True
    col.add(path, f"{what} must be an object, not {kind_of(value)}", value)
    return False


def expect_string(col: Collector, value: Any, path: str, what: str) -> bool:
    """True when ``value`` is a non-empty string; otherwise report it."""
    if isinstance(value, str) and value.strip():
        return True
    if isinstance(value, str):
        col.add(path, f"{what} must not be empty", value)
    else:
        col.add(path, f"{what} must be a string, not {kind_of(value)}", value)
    return False


def expect_positive_int(col: Collector, value: Any, path: str, what: str, minimum: int = 1) -> bool:
    """True when ``value`` is an int >= ``minimum`` (bools are not ints)."""
    if is_int(value) and value >= minimum:
        return True
    bound = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    col.add(path, f"{what} must be {bound}", value)
    return False


def optional(obj: dict[Any, Any], key: str) -> Any:
    """``obj[key]``, treating an explicit null like an absent key (both give None)."""
    return obj.get(key)


def name_list(col: Collector, value: Any, path: str, what: str) -> list[tuple[int, str]]:
    """The string items of a list of names, as ``(index, name)``; reports everything else.

    ``None`` (absent or null) is an empty list; a single string is reported with a hint.
    """
    if value is None:
        return []
    if isinstance(value, str):
        col.add(path, f"{what} must be a list of names, not a string", value, f'write ["{value}"]')
        return []
    if not isinstance(value, list | tuple):
        col.add(path, f"{what} must be a list of names, not {kind_of(value)}", value)
        return []
    names: list[tuple[int, str]] = []
    for index, item in enumerate(value):
        if expect_string(col, item, item_path(path, index), f"an entry of {what}"):
            names.append((index, item))
    return names
