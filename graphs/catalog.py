"""Finding and building calculators and transformers by their ``type`` (SPEC §2).

A ``type`` without a dot is a built-in (``AdditionCalculator``, ``NullDataTransformer``...);
``module.Class`` is a user class, loaded with :mod:`graphs.dotted`. Either is built as
``Cls(name=..., config=...)`` and called through :func:`callable_of`.

Usage::

    from graphs.catalog import build_component, callable_of
    from graphs.model import ComponentSpec

    spec = ComponentSpec("total", "AdditionCalculator", {"arguments": ["a", "b"]})
    calc = callable_of(build_component(spec, "calculator"), "calculator")
    calc({"a": 1, "b": "2"})          # {'result': 3.0}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from graphs.calculators import CALCULATOR_TYPES
from graphs.components import ComponentConfigError, UnknownComponentType, closest, deep_copy_value
from graphs.dotted import DottedPathError, load_dotted, public_classes
from graphs.model import ComponentSpec
from graphs.transformers import TRANSFORMER_TYPES

Kind = Literal["calculator", "transformer"]
METHOD_OF_KIND: dict[str, str] = {"calculator": "calculate", "transformer": "transform"}
BUILTINS: dict[str, dict[str, type]] = {"calculator": CALCULATOR_TYPES, "transformer": TRANSFORMER_TYPES}

__all__ = ["BUILTINS", "CALCULATOR_TYPES", "METHOD_OF_KIND", "TRANSFORMER_TYPES", "Kind", "build_component",
           "builtin_types", "callable_of", "resolve_component_class"]


def _method(kind: str) -> str:
    if kind not in METHOD_OF_KIND:
        raise ValueError(f"kind must be 'calculator' or 'transformer', not {kind!r}")
    return METHOD_OF_KIND[kind]


def builtin_types(kind: Kind) -> dict[str, type]:
    """The built-ins of ``kind`` by type name (``CALCULATOR_TYPES`` or ``TRANSFORMER_TYPES``)."""
    _method(kind)
    return BUILTINS[kind]


def _resolve_builtin(type_name: str, kind: Kind) -> type:
    registry = BUILTINS[kind]
    if type_name in registry:
        return registry[type_name]
    other_kind: Kind = "transformer" if kind == "calculator" else "calculator"
    if type_name in BUILTINS[other_kind]:
        reason = f"{type_name!r} is a built-in {other_kind}, not a {kind}"
    else:
        reason = f"unknown {kind} type {type_name!r} (a user class is given as 'module.Class')"
    suffix = "Calculator" if kind == "calculator" else "DataTransformer"
    stems = {name.removesuffix(suffix): name for name in registry}  # 'Adition' ~ 'Addition'
    suggestion = closest(type_name, registry) or stems.get(type_name) or stems.get(closest(type_name, stems) or "")
    raise UnknownComponentType(type_name, kind, suggestion, reason)


def _resolve_dotted(type_name: str, kind: Kind) -> type:
    try:
        found = load_dotted(type_name)
    except DottedPathError as exc:
        if exc.module is None:
            reason = exc.reason if "module.Class" in exc.reason else f"{kind} type {type_name!r}: {exc.reason}"
            raise UnknownComponentType(type_name, kind, reason=reason) from exc
        module_name, _, class_name = type_name.rpartition(".")
        suggestion = closest(class_name, public_classes(exc.module))
        raise UnknownComponentType(
            type_name, kind, f"{module_name}.{suggestion}" if suggestion else None,
            f"{kind} type {type_name!r}: module {module_name!r} has no class {class_name!r}",
        ) from exc
    if not isinstance(found, type):
        raise UnknownComponentType(type_name, kind,
                                   reason=f"{kind} type {type_name!r} is a {type(found).__name__}, not a class")
    return found


def resolve_component_class(type_name: str, kind: Kind) -> type:
    """The class a component ``type`` names.

    A name without a dot is a built-in of ``kind``; ``module.Class`` is imported. The class
    must have the method of its kind (``calculate`` / ``transform``). Raises
    :class:`UnknownComponentType` (with a suggestion when a name is close) otherwise.
    """
    method = _method(kind)
    if not isinstance(type_name, str) or not type_name:
        raise UnknownComponentType(str(type_name), kind, reason=f"{kind} type must be a non-empty string")
    if "." not in type_name:
        return _resolve_builtin(type_name, kind)
    cls = _resolve_dotted(type_name, kind)
    if not callable(getattr(cls, method, None)):
        raise UnknownComponentType(type_name, kind, reason=f"{kind} type {type_name!r} has no {method}(record) method")
    return cls


def build_component(spec: ComponentSpec, kind: Kind) -> object:
    """Build ``Cls(name=spec.name, config=...)`` for ``spec`` (config: a private deep copy).

    Raises :class:`UnknownComponentType` when the type resolves to nothing, and
    :class:`ComponentConfigError` when the constructor rejects the config; any other
    exception from a (user) constructor is wrapped in a ComponentConfigError with ``key=""``.
    """
    cls = resolve_component_class(spec.type, kind)
    config = deep_copy_value(dict(spec.config))
    try:
        return cls(name=spec.name, config=config)
    except ComponentConfigError:
        raise
    except (Exception, SystemExit) as exc:  # a user constructor may fail in any way
        raise ComponentConfigError(
            "", spec.type, f"{kind} {spec.name!r} ({spec.type}) failed to build: {type(exc).__name__}: {exc}"
        ) from exc


def callable_of(component: object, kind: Kind) -> Callable[[dict], dict | None]:
    """The bound ``calculate`` (calculators) or ``transform`` (transformers) of ``component``."""
    method = _method(kind)
    bound = getattr(component, method, None)
    if not callable(bound):
        cls = type(component)
        raise UnknownComponentType(f"{cls.__module__}.{cls.__qualname__}", kind,
                                   reason=f"{kind} {cls.__qualname__!r} has no {method}(record) method")
    return bound
