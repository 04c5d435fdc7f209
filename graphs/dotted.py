"""Loading user code named by a dotted path: ``package.module.Class`` (or ``package.module:Class``).

The one place that imports user code by name, for component types (:mod:`graphs.catalog`)
and ``custom://`` adapters alike. Every failure is a :class:`DottedPathError` whose
``reason`` says what went wrong in one line.

Usage::

    cls = load_dotted("tests.support.userclasses.RaisingCalculator")
    load_dotted("tests.support.userclasses.Nope")   # DottedPathError: module 'tests.support.userclasses' has no 'Nope'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class DottedPathError(ImportError):
    """``target`` names nothing loadable; ``module`` is set when only the attribute was missing."""

    def __init__(self, target: str, reason: str, module: ModuleType | None = None) -> None:
        super().__init__(reason)
        self.target = target
        self.reason = reason
        self.module = module


def split_dotted(target: str) -> tuple[str, str] | None:
    """``(module, attribute)`` of ``pkg.mod.Attr`` or ``pkg.mod:Attr``; None when it is not such a path."""
    module, sep, attr = target.rpartition(":") if ":" in target else target.rpartition(".")
    if not sep or not module or not attr or "" in module.split("."):
        return None
    return module, attr


def load_dotted(target: str) -> Any:
    """The object ``target`` names, importing its module; raises :class:`DottedPathError`."""
    parts = split_dotted(target)
    if parts is None:
        raise DottedPathError(target, f"{target!r} is not a 'module.Class' path")
    module_name, attr = parts
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise DottedPathError(target, f"module {module_name!r} not found") from exc
        raise DottedPathError(target, f"importing module {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # user code may fail to import in any way
        raise DottedPathError(target, f"importing module {module_name!r} failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise DottedPathError(target, f"module {module_name!r} has no {attr!r}", module) from None


def public_classes(module: ModuleType) -> list[str]:
    """The names of the classes a module defines or imports publicly (for suggestions)."""
    return [name for name, value in vars(module).items() if isinstance(value, type) and not name.startswith("_")]
