"""Calculators and transformers as components: errors, config checks, shared operations.

A component is built from a :class:`~graphs.model.ComponentSpec` as
``Cls(name=spec.name, config=spec.config)``. ``spec.type`` is either a built-in name
(``AdditionCalculator``, ``NullDataTransformer``...) or a dotted ``module.Class`` path to a
user class, which need not subclass :class:`Component`; it only has to offer
``calculate(record)`` (calculators) or ``transform(record)`` (transformers).

This module holds what calculators and transformers share:

* the errors: :class:`ComponentConfigError` (a bad config, raised at construction time)
  and :class:`UnknownComponentType` (a type name that resolves to nothing usable);
* :class:`Component`, the common base that stores ``name`` and ``config`` and rejects
  config keys a built-in does not declare in ``CONFIG_KEYS``;
* the config readers (:func:`string_list`, :func:`mapping_value`...);
* the record operations, one function each, used by both families (:func:`drop_attributes`...).

Finding and building a component by its ``type`` is :mod:`graphs.catalog`'s job.

Operations never mutate their input record: records are shared between nodes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from graphs.suggest import did_you_mean

_MAX_REPR = 80


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a length fit for a one-line message."""
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when none is close (see :mod:`graphs.suggest`)."""
    return did_you_mean(word, candidates)


# -- errors -------------------------------------------------------------------------------------
class ComponentConfigError(ValueError):
    """A calculator or transformer config is invalid.

    ``key`` is where the problem is, relative to the component's ``config`` (``"arguments"``,
    ``"arguments[1]"``, ``"name_mapping.old"``; ``""`` for the component as a whole),
    ``value`` the offending value, ``suggestion`` a close valid alternative if there is one.
    """

    def __init__(self, key: str, value: Any, message: str, suggestion: str | None = None) -> None:
        self.key = key
        self.value = value
        self.message = message
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}" if self.key else self.message
        return f"{text}; did you mean {self.suggestion!r}?" if self.suggestion else text

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.key, self.value, self.message, self.suggestion)


class UnknownComponentType(KeyError):
    """A component ``type`` that names no usable class (a :class:`KeyError`, with a clear text).

    ``reason`` says what went wrong (unknown built-in, module not found, no such class, not a
    class, missing method); ``suggestion`` is a close valid name when there is one.
    """

    def __init__(
        self, type_name: str, kind: str, suggestion: str | None = None, reason: str | None = None
    ) -> None:
        self.type_name = type_name
        self.kind = kind
        self.suggestion = suggestion
        self.reason = reason or f"unknown {kind} type {type_name!r}"
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.reason}; did you mean {self.suggestion!r}?" if self.suggestion else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.type_name, self.kind, self.suggestion, self.reason)


# -- the common base ----------------------------------------------------------------------------
def check_known_keys(owner: str, config: Mapping[str, Any], known: Mapping[str, str]) -> None:
    """Raise :class:`ComponentConfigError` for the first key of ``config`` not in ``known``."""
    for key, value in config.items():
        if key in known:
            continue
        accepted = f"accepted: {', '.join(map(repr, known))}" if known else f"{owner} takes no config"
        raise ComponentConfigError(
            str(key), value, f"unknown config key for {owner} ({accepted})", closest(str(key), known)
        )


class Component:
    """Base of calculators and transformers: a ``name``, a ``config`` and declared keys.

    A subclass that sets ``CONFIG_KEYS`` (key -> one-line description) gets unknown keys
    rejected at construction; ``None`` (the default, for user classes) accepts any key.
    ``self.config`` is the subclass's own shallow copy of the given mapping.
    """

    CONFIG_KEYS: ClassVar[dict[str, str] | None] = None

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise ComponentConfigError("", config, f"config must be a map, not {type(config).__name__}")
        self.name = name
        self.config: dict[str, Any] = dict(config)
        if self.CONFIG_KEYS is not None:
            check_known_keys(type(self).__name__, self.config, self.CONFIG_KEYS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, config={self.config!r})"


# -- config readers -----------------------------------------------------------------------------
_MISSING = object()


def _required(config: Mapping[str, Any], key: str, what: str) -> Any:
    value = config.get(key, _MISSING)
    if value is _MISSING:
        raise ComponentConfigError(key, None, f"missing required key (expected {what})")
    return value


def string_list(config: Mapping[str, Any], key: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    """The required list of strings ``config[key]``, as a tuple."""
    value = _required(config, key, "a list of attribute names")
    if not isinstance(value, list | tuple):
        raise ComponentConfigError(
            key, value, f"must be a list of attribute names, not {type(value).__name__} {short_repr(value)}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ComponentConfigError(
                f"{key}[{i}]", item, f"must be an attribute name (a string), not {short_repr(item)}"
            )
    if not value and not allow_empty:
        raise ComponentConfigError(key, value, "must name at least one attribute")
    return tuple(value)


def string_value(config: Mapping[str, Any], key: str, default: str) -> str:
    """The optional non-empty string ``config[key]`` (``default`` when absent)."""
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise ComponentConfigError(key, value, f"must be a non-empty string, not {short_repr(value)}")
    return value


def mapping_value(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The required map ``config[key]``, as a new dict."""
    value = _required(config, key, "a map")
    if not isinstance(value, Mapping):
        kind = type(value).__name__
        raise ComponentConfigError(key, value, f"must be a map, not {kind} {short_repr(value)}")
    for name in value:
        if not isinstance(name, str):
            raise ComponentConfigError(key, value, f"keys must be strings, not {short_repr(name)}")
    return dict(value)


def rename_mapping(config: Mapping[str, Any], key: str) -> dict[str, str]:
    """The required ``old -> new`` map ``config[key]``: non-empty string targets, no two alike."""
    mapping = mapping_value(config, key)
    seen: dict[str, str] = {}
    for old, new in mapping.items():
        if not isinstance(new, str) or not new:
            raise ComponentConfigError(
                f"{key}.{old}", new, f"the new name must be a non-empty string, not {short_repr(new)}"
            )
        if new in seen:
            raise ComponentConfigError(
                f"{key}.{old}", new, f"{seen[new]!r} and {old!r} are both renamed to {new!r}"
            )
        seen[new] = old
    return mapping


# -- record operations (shared by calculators and transformers) ----------------------------------
_IMMUTABLE = (str, int, float, bool, bytes, type(None))


def deep_copy_value(value: Any) -> Any:
    """A deep copy of a record value: fast for maps, lists and scalars, ``copy.deepcopy`` else."""
    if isinstance(value, _IMMUTABLE):
        return value
    if type(value) is dict:
        return {k: deep_copy_value(v) for k, v in value.items()}
    if type(value) is list:
        return [deep_copy_value(v) for v in value]
    return copy.deepcopy(value)


def copy_record(record: dict) -> dict:
    """A deep copy of ``record`` (Null calculator and transformer)."""
    copied: dict = deep_copy_value(record)
    return copied


def drop_attributes(record: dict, names: frozenset[str]) -> dict:
    """A new record without the keys in ``names``."""
    return {k: v for k, v in record.items() if k not in names}


def keep_attributes(record: dict, names: frozenset[str]) -> dict:
    """A new record with only the keys in ``names`` (in the record's order)."""
    return {k: v for k, v in record.items() if k in names}


def apply_defaults(record: dict, defaults: Mapping[str, Any]) -> dict:
    """A new record where each default is set when its key is missing or None.

    Default values are copied, so a downstream change to a record never alters the config.
    """
    out = dict(record)
    for key, value in defaults.items():
        if out.get(key) is None:
            out[key] = deep_copy_value(value)
    return out


def rename_attributes(record: dict, mapping: Mapping[str, str]) -> dict:
    """A new record with keys renamed ``old -> new``, in place (the record's order is kept).

    When a new name is already a key of the record, the renamed value wins and the old
    value under that name is dropped. Names absent from the record are ignored.
    """
    targets = {mapping[k] for k in record if k in mapping}
    out: dict = {}
    for key, value in record.items():
        if key in mapping:
            out[mapping[key]] = value
        elif key not in targets:
            out[key] = value
    return out
