"""Configuration templates (SPEC §14): ``${VAR}``, ``${VAR:-default}`` and ``${file:/path}`` in strings.

Every string value of a DAG file or of the supervisor's TOML config (not the keys) is
resolved once, when the file is loaded:

* ``${NAME}``: the environment variable NAME (letters, digits and ``_``, not starting with a
  digit). Unset is an error naming it and the JSON path of the string.
* ``${NAME:-default}``: NAME when it is set and not empty, else ``default`` (which may be
  empty, and holds no ``}``).
* ``${file:/path}``: the contents of the file (a secret mounted by the platform, say), as UTF-8,
  with one trailing newline (``\\n`` or ``\\r\\n``) dropped. An unreadable file is an error.
* ``$${`` stands for a literal ``${`` (so ``$${HOME}`` is the text ``${HOME}``). Any other
  ``$`` is literal as it is (``$5``, ``$$``, ``a$b``).

A ``${`` that is none of these (``${1X}``, ``${}``, no closing ``}``) is an error, with the
escape as the suggestion. Strings that held a template are reported by JSON path, so views can
show ``***`` in their place (:func:`mask_templates`).

Usage::

    result = resolve_templates({"password": "${DB_PASSWORD}", "host": "${DB_HOST:-localhost}"})
    result.value        # {"password": "s3cret", "host": "localhost"}
    result.paths        # ["password", "host"]
    result.hide("password", "bad value s3cret")   # "bad value ***": for messages about a templated value
    result.problems     # [] (or TemplateProblem(path, message, value, suggestion) for each one)
    mask_templates({"url": "mysql://app:${DB_PASSWORD}@db/x"})   # {"url": "mysql://app:***@db/x"}
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphs.validation.base import item_path, key_path

MASK = "***"
ESCAPE = "$${"
_TOKEN = re.compile(r"\$\$\{|\$\{")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_EXPRESSION = re.compile(rf"\$\{{(?:(?P<name>{_NAME})(?::-(?P<default>[^}}]*))?|file:(?P<file>[^}}]+))\}}")
HINT = "write $${ for a literal ${"


@dataclass(frozen=True)
class TemplateProblem:
    """A template that cannot be resolved, at JSON ``path`` (as the DAG checker names paths)."""

    path: str
    message: str
    value: str
    suggestion: str | None = None


@dataclass
class Resolved:
    """What :func:`resolve_templates` found: the resolved document, the templated paths, the problems."""

    value: Any
    paths: list[str] = field(default_factory=list)
    shown: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (resolved text, masked text)

    def hide(self, path: str, text: str) -> str:
        """``text`` with the resolved value at ``path`` written masked (unchanged when ``path`` was not templated)."""
        value, masked = self.shown.get(path, ("", ""))
        return text.replace(value, masked) if value else text
    problems: list[TemplateProblem] = field(default_factory=list)


def read_secret_file(path: str) -> str:
    """The text of ``path`` without one trailing newline; OSError / UnicodeDecodeError when unreadable."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _render(text: str, path: str, resolved: Resolved, environ: Mapping[str, str],
            read_file: Callable[[str], str], mask: bool) -> tuple[str, bool]:
    """``text`` with its templates replaced (by their values, or by MASK); and whether it had any."""
    out: list[str] = []
    position, templated = 0, False
    for token in _TOKEN.finditer(text):
        if token.start() < position:
            continue  # inside an expression already taken
        out.append(text[position:token.start()])
        if token.group() == ESCAPE:
            out.append("${")
            position = token.end()
            continue
        found = _EXPRESSION.match(text, token.start())
        if found is None:
            resolved.problems.append(TemplateProblem(
                path, f"malformed template at {text[token.start():token.start() + 24]!r}: expected ${{NAME}}, "
                "${NAME:-default} or ${file:/path}", text, HINT))
            out.append(text[token.start():token.end()])
            position = token.end()
            continue
        templated, position = True, found.end()
        out.append(MASK if mask else _value(found, path, text, resolved, environ, read_file))
    out.append(text[position:])
    return "".join(out), templated


def _value(found: re.Match[str], path: str, text: str, resolved: Resolved, environ: Mapping[str, str],
           read_file: Callable[[str], str]) -> str:
    name, default, file = found.group("name"), found.group("default"), found.group("file")
    if file is not None:
        try:
            return read_file(file)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            resolved.problems.append(TemplateProblem(path, f"cannot read the secret file {file!r}: {reason}", text))
            return ""
    value = environ.get(name)
    if default is not None:
        return value if value else default
    if value is None:
        resolved.problems.append(TemplateProblem(
            path, f"the environment variable {name} is not set", text,
            f"set {name} in the server's environment, or give a default: ${{{name}:-default}}"))
        return ""
    return value


def _walk(value: Any, path: str, visit: Callable[[str, str], str]) -> Any:
    """A copy of ``value`` with ``visit(path, string)`` applied to every string value (iteratively deep)."""
    root: list[Any] = [None]
    stack: list[tuple[Any, str, Any, Any]] = [(value, path, root, 0)]
    while stack:
        item, where, parent, slot = stack.pop()
        if isinstance(item, str):
            parent[slot] = visit(where, item)
        elif isinstance(item, dict):
            copy: dict[Any, Any] = dict.fromkeys(item)
            parent[slot] = copy
            stack.extend(reversed([(v, key_path(where, k), copy, k) for k, v in item.items()]))
        elif isinstance(item, list):
            items: list[Any] = [None] * len(item)
            parent[slot] = items
            stack.extend(reversed([(v, item_path(where, i), items, i) for i, v in enumerate(item)]))
        else:
            parent[slot] = item
    return root[0]


def resolve_templates(value: Any, environ: Mapping[str, str] | None = None,
                      read_file: Callable[[str], str] = read_secret_file, path: str = "") -> Resolved:
    """Resolve every template in the strings of ``value`` (a parsed JSON or TOML document)."""
    env = os.environ if environ is None else environ
    resolved = Resolved(None)

    def visit(where: str, text: str) -> str:
        if "${" not in text:
            return text
        out, templated = _render(text, where or "top level", resolved, env, read_file, mask=False)
        if templated:
            resolved.paths.append(where or "top level")
            resolved.shown[where or "top level"] = (out, _render(text, where, Resolved(None), env, read_file,
                                                                 mask=True)[0])
        return out

    resolved.value = _walk(value, path, visit)
    return resolved


def mask_templates(value: Any) -> Any:
    """A copy of the document as written with each template shown as ``***`` (and ``$${`` as ``${``)."""
    scratch = Resolved(None)
    return _walk(value, "", lambda where, text: text if "${" not in text
                 else _render(text, where, scratch, {}, read_secret_file, mask=True)[0])


def has_templates(value: Any) -> bool:
    """Whether any string in ``value`` holds ``${``."""
    found = [False]

    def visit(where: str, text: str) -> str:
        found[0] = found[0] or "${" in text
        return text

    _walk(value, "", visit)
    return found[0]
