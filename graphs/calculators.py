"""Built-in calculators (SPEC §2): one record in, one record (or None: emit nothing) out.

A calculator is built as ``Cls(name=..., config=...)`` and called as ``calculate(record)``.
Built-ins check their config when constructed and raise
:class:`~graphs.components.ComponentConfigError` on a bad one (unknown key, wrong type...).
None of them mutates its input: records are shared between nodes, so every calculator
returns a new dict, except :class:`PassthruCalculator`, which returns the record itself.

Writing your own: subclass :class:`Calculator` (optional; any class with that constructor
and a ``calculate`` method will do) and refer to it as ``"type": "mymodule.MyCalculator"``::

    class Doubler(Calculator):
        def calculate(self, record: dict) -> dict | None:
            return {"double": 2 * record["value"]} if "value" in record else None
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from graphs.aggregate import AggregateCalculator
from graphs.calculator_base import Calculator
from graphs.components import (
    apply_defaults,
    copy_record,
    drop_attributes,
    keep_attributes,
    mapping_value,
    rename_attributes,
    rename_mapping,
    short_repr,
    string_list,
    string_value,
)

log = logging.getLogger(__name__)

# Config keys of the operations both families share (key -> short description).
FILTER_AWAY_KEYS: dict[str, str] = {"filter_attributes": "list of attribute names to drop"}
FILTER_KEYS: dict[str, str] = {"keep_attributes": "list of attribute names to keep (all others dropped)"}
DEFAULTS_KEYS: dict[str, str] = {"defaults": "map of attribute -> value, set when missing or None"}
NAME_CHANGE_KEYS: dict[str, str] = {"name_mapping": "map of old attribute name -> new name"}
ARITHMETIC_KEYS: dict[str, str] = {
    "arguments": "non-empty list of attribute names to combine",
    "output_attribute": "name of the single output attribute (default 'result')",
}
DEFAULT_OUTPUT_ATTRIBUTE = "result"


class NullCalculator(Calculator):
    """Returns a deep copy of the record. No config keys.

    Example: ``{"name": "copy", "type": "NullCalculator"}``.
    """

    CONFIG_KEYS: dict[str, str] = {}

    def calculate(self, record: dict) -> dict | None:
        return copy_record(record)


class PassthruCalculator(Calculator):
    """Returns the record itself (no copy: the cheapest calculator). No config keys.

    Example: ``{"name": "same", "type": "PassthruCalculator"}``.
    """

    CONFIG_KEYS: dict[str, str] = {}

    def calculate(self, record: dict) -> dict | None:
        return record


class AttributeFilterAwayCalculator(Calculator):
    """Drops the listed attributes, keeps all the others.

    Config: ``filter_attributes`` (required) — list of attribute names to drop. Example:
    ``{"filter_attributes": ["password"]}`` turns ``{"user": "a", "password": "x"}`` into
    ``{"user": "a"}``.
    """

    CONFIG_KEYS = FILTER_AWAY_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.filter_attributes = frozenset(string_list(self.config, "filter_attributes"))

    def calculate(self, record: dict) -> dict | None:
        return drop_attributes(record, self.filter_attributes)


class AttributeFilterCalculator(Calculator):
    """Keeps only the listed attributes (those present), in the record's order.

    Config: ``keep_attributes`` (required) — list of attribute names to keep. Example:
    ``{"keep_attributes": ["price"]}`` turns ``{"price": 2, "qty": 3}`` into ``{"price": 2}``.
    """

    CONFIG_KEYS = FILTER_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.keep_attributes = frozenset(string_list(self.config, "keep_attributes"))

    def calculate(self, record: dict) -> dict | None:
        return keep_attributes(record, self.keep_attributes)


class ApplyDefaultsCalculator(Calculator):
    """Sets each default whose attribute is missing or None; other attributes are unchanged.

    Config: ``defaults`` (required) — map of attribute -> default value. Example:
    ``{"defaults": {"qty": 1}}`` turns ``{"price": 2, "qty": null}`` into
    ``{"price": 2, "qty": 1}``.
    """

    CONFIG_KEYS = DEFAULTS_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.defaults = mapping_value(self.config, "defaults")

    def calculate(self, record: dict) -> dict | None:
        return apply_defaults(record, self.defaults)


class AttributeNameChangeCalculator(Calculator):
    """Renames attributes ``old -> new``, keeping their position; absent ones are ignored.

    Config: ``name_mapping`` (required) — map of old name -> new name (no two old names may
    map to the same new name). If a new name is already an attribute, the renamed value
    replaces it. Example: ``{"name_mapping": {"px": "price"}}`` turns ``{"px": 2}`` into
    ``{"price": 2}``.
    """

    CONFIG_KEYS = NAME_CHANGE_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.name_mapping = rename_mapping(self.config, "name_mapping")

    def calculate(self, record: dict) -> dict | None:
        return rename_attributes(record, self.name_mapping)


class _ArithmeticCalculator(Calculator):
    """Combines numeric ``arguments`` into one ``output_attribute`` (see the two subclasses)."""

    CONFIG_KEYS = ARITHMETIC_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.arguments = string_list(self.config, "arguments", allow_empty=False)
        self.output_attribute = string_value(self.config, "output_attribute", DEFAULT_OUTPUT_ATTRIBUTE)

    def numbers(self, record: dict) -> list[float]:
        """``float()`` of each argument present (and not None); unconvertible ones are skipped."""
        values: list[float] = []
        for argument in self.arguments:
            raw = record.get(argument)
            if raw is None:
                continue
            try:
                values.append(float(raw))
            except (TypeError, ValueError, OverflowError):
                log.warning(
                    "%s %r: skipping argument %r: %s is not a number",
                    type(self).__name__, self.name, argument, short_repr(raw),
                )
        return values


class AdditionCalculator(_ArithmeticCalculator):
    """Sums the numeric arguments into ``{output_attribute: float}`` (and nothing else).

    Config: ``arguments`` (required, non-empty) — attribute names to add; ``output_attribute``
    (default ``"result"``). Each argument present and not None goes through ``float()``;
    missing or None ones are ignored, unconvertible ones skipped with a logged warning. With
    no usable argument the result is the empty sum, ``0.0``. Example:
    ``{"arguments": ["a", "b"], "output_attribute": "total"}`` turns
    ``{"a": 1, "b": "2.5", "c": 9}`` into ``{"total": 3.5}``.
    """

    def calculate(self, record: dict) -> dict | None:
        values = self.numbers(record)
        try:
            total = math.fsum(values)  # exact rounding, independent of order
        except (ValueError, OverflowError):  # inf - inf, or an overflow: IEEE result instead
            total = sum(values, 0.0)
        return {self.output_attribute: total}


class MultiplicationCalculator(_ArithmeticCalculator):
    """Multiplies the numeric arguments into ``{output_attribute: float}`` (and nothing else).

    Config and argument handling as :class:`AdditionCalculator`. With no usable argument
    the result is the empty product, ``1.0``. Example: ``{"arguments": ["price", "qty"]}``
    turns ``{"price": 2, "qty": "3"}`` into ``{"result": 6.0}``.
    """

    def calculate(self, record: dict) -> dict | None:
        return {self.output_attribute: math.prod(self.numbers(record), start=1.0)}


CALCULATOR_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        NullCalculator,
        PassthruCalculator,
        AttributeFilterAwayCalculator,
        AttributeFilterCalculator,
        ApplyDefaultsCalculator,
        AdditionCalculator,
        MultiplicationCalculator,
        AttributeNameChangeCalculator,
        AggregateCalculator,
    )
}
"""Built-in calculators by type name."""

__all__ = [
    "CALCULATOR_TYPES",
    "AdditionCalculator",
    "AggregateCalculator",
    "ApplyDefaultsCalculator",
    "AttributeFilterAwayCalculator",
    "AttributeFilterCalculator",
    "AttributeNameChangeCalculator",
    "Calculator",
    "MultiplicationCalculator",
    "NullCalculator",
    "PassthruCalculator",
]
