"""Built-in data transformers (SPEC §2): reshape a record on its way into or out of a node.

Transformers run as a node's ``input_transformers`` / ``output_transformers`` and as an
edge's ``data_transformer``. One is built as ``Cls(name=..., config=...)`` and called as
``transform(record)``; returning None emits nothing. The built-ins are the calculators'
record operations under transformer names, with the same config keys and the same code
(:mod:`graphs.components`); none mutates its input, and
:class:`PassthruDataTransformer` returns the record itself.

Writing your own: subclass :class:`DataTransformer` (optional) and refer to it as
``"type": "mymodule.MyTransformer"``::

    class Lowercase(DataTransformer):
        def transform(self, record: dict) -> dict | None:
            return {k.lower(): v for k, v in record.items()}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphs.calculators import DEFAULTS_KEYS, FILTER_AWAY_KEYS, FILTER_KEYS, NAME_CHANGE_KEYS
from graphs.components import (
    Component,
    apply_defaults,
    copy_record,
    drop_attributes,
    keep_attributes,
    mapping_value,
    rename_attributes,
    rename_mapping,
    string_list,
)


class DataTransformer(Component):
    """Base class of transformers: ``transform(record)`` returns a new record, or None to drop it.

    Subclasses get ``self.name`` and ``self.config`` (a dict). Declare ``CONFIG_KEYS``
    (key -> description) to have unknown config keys rejected at construction.
    """

    def transform(self, record: dict) -> dict | None:
        """Transform ``record``; must not mutate it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement transform()")


class NullDataTransformer(DataTransformer):
    """Returns a deep copy of the record. No config keys.

    Example: ``{"name": "copy", "type": "NullDataTransformer"}``.
    """

    CONFIG_KEYS: dict[str, str] = {}

    def transform(self, record: dict) -> dict | None:
        return copy_record(record)


class PassthruDataTransformer(DataTransformer):
    """Returns the record itself (no copy). No config keys.

    Example: ``{"name": "same", "type": "PassthruDataTransformer"}``.
    """

    CONFIG_KEYS: dict[str, str] = {}

    def transform(self, record: dict) -> dict | None:
        return record


class AttributeFilterAwayDataTransformer(DataTransformer):
    """Drops the listed attributes, keeps all the others.

    Config: ``filter_attributes`` (required) — list of attribute names to drop. Example:
    ``{"filter_attributes": ["debug"]}`` turns ``{"v": 1, "debug": true}`` into ``{"v": 1}``.
    """

    CONFIG_KEYS = FILTER_AWAY_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.filter_attributes = frozenset(string_list(self.config, "filter_attributes"))

    def transform(self, record: dict) -> dict | None:
        return drop_attributes(record, self.filter_attributes)


class AttributeFilterDataTransformer(DataTransformer):
    """Keeps only the listed attributes (those present), in the record's order.

    Config: ``keep_attributes`` (required) — list of attribute names to keep. Example:
    ``{"keep_attributes": ["v"]}`` turns ``{"v": 1, "w": 2}`` into ``{"v": 1}``.
    """

    CONFIG_KEYS = FILTER_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.keep_attributes = frozenset(string_list(self.config, "keep_attributes"))

    def transform(self, record: dict) -> dict | None:
        return keep_attributes(record, self.keep_attributes)


class ApplyDefaultsDataTransformer(DataTransformer):
    """Sets each default whose attribute is missing or None; other attributes are unchanged.

    Config: ``defaults`` (required) — map of attribute -> default value. Example:
    ``{"defaults": {"unit": "EUR"}}`` turns ``{"v": 1}`` into ``{"v": 1, "unit": "EUR"}``.
    """

    CONFIG_KEYS = DEFAULTS_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.defaults = mapping_value(self.config, "defaults")

    def transform(self, record: dict) -> dict | None:
        return apply_defaults(record, self.defaults)


class AttributeNameChangeDataTransformer(DataTransformer):
    """Renames attributes ``old -> new``, keeping their position; absent ones are ignored.

    Config: ``name_mapping`` (required) — map of old name -> new name (no two old names may
    map to the same new name; a renamed value replaces an attribute already bearing the new
    name). Example: ``{"name_mapping": {"v": "value"}}`` turns ``{"v": 1}`` into
    ``{"value": 1}``.
    """

    CONFIG_KEYS = NAME_CHANGE_KEYS

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.name_mapping = rename_mapping(self.config, "name_mapping")

    def transform(self, record: dict) -> dict | None:
        return rename_attributes(record, self.name_mapping)


TRANSFORMER_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        NullDataTransformer,
        PassthruDataTransformer,
        AttributeFilterAwayDataTransformer,
        AttributeFilterDataTransformer,
        ApplyDefaultsDataTransformer,
        AttributeNameChangeDataTransformer,
    )
}
"""Built-in transformers by type name."""

__all__ = [
    "TRANSFORMER_TYPES",
    "ApplyDefaultsDataTransformer",
    "AttributeFilterAwayDataTransformer",
    "AttributeFilterDataTransformer",
    "AttributeNameChangeDataTransformer",
    "DataTransformer",
    "NullDataTransformer",
    "PassthruDataTransformer",
]
