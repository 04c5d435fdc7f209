"""Built-in data transformers (SPEC §2): reshape a record on its way into or out of a node.

Transformers run as a node's ``input_transformers`` / ``output_transformers`` and as an
edge's ``data_transformer``. One is built as ``Cls(name=..., config=...)`` and called as
``transform(record)``; returning None emits nothing. The built-ins are the calculators
of the same name under transformer names: each one *is* that calculator (same config
keys, same code), with ``transform`` as its entry point. None mutates its input, and
:class:`PassthruDataTransformer` returns the record itself.

Writing your own: subclass :class:`DataTransformer` (optional) and refer to it as
``"type": "mymodule.MyTransformer"``::

    class Lowercase(DataTransformer):
        def transform(self, record: dict) -> dict | None:
            return {k.lower(): v for k, v in record.items()}
"""

from __future__ import annotations

from graphs.calculators import (
    ApplyDefaultsCalculator,
    AttributeFilterAwayCalculator,
    AttributeFilterCalculator,
    AttributeNameChangeCalculator,
    NullCalculator,
    PassthruCalculator,
)
from graphs.components import Component


class DataTransformer(Component):
    """Base class of transformers: ``transform(record)`` returns a new record, or None to drop it.

    Subclasses get ``self.name`` and ``self.config`` (a dict). Declare ``CONFIG_KEYS``
    (key -> description) to have unknown config keys rejected at construction.
    """

    def transform(self, record: dict) -> dict | None:
        """Transform ``record``; must not mutate it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement transform()")


class NullDataTransformer(NullCalculator, DataTransformer):
    """Returns a deep copy of the record. No config keys.

    Example: ``{"name": "copy", "type": "NullDataTransformer"}``.
    """

    transform = NullCalculator.calculate


class PassthruDataTransformer(PassthruCalculator, DataTransformer):
    """Returns the record itself (no copy). No config keys.

    Example: ``{"name": "same", "type": "PassthruDataTransformer"}``.
    """

    transform = PassthruCalculator.calculate


class AttributeFilterAwayDataTransformer(AttributeFilterAwayCalculator, DataTransformer):
    """Drops the listed attributes, keeps all the others.

    Config: ``filter_attributes`` (required) — list of attribute names to drop. Example:
    ``{"filter_attributes": ["debug"]}`` turns ``{"v": 1, "debug": true}`` into ``{"v": 1}``.
    """

    transform = AttributeFilterAwayCalculator.calculate


class AttributeFilterDataTransformer(AttributeFilterCalculator, DataTransformer):
    """Keeps only the listed attributes (those present), in the record's order.

    Config: ``keep_attributes`` (required) — list of attribute names to keep. Example:
    ``{"keep_attributes": ["v"]}`` turns ``{"v": 1, "w": 2}`` into ``{"v": 1}``.
    """

    transform = AttributeFilterCalculator.calculate


class ApplyDefaultsDataTransformer(ApplyDefaultsCalculator, DataTransformer):
    """Sets each default whose attribute is missing or None; other attributes are unchanged.

    Config: ``defaults`` (required) — map of attribute -> default value. Example:
    ``{"defaults": {"unit": "EUR"}}`` turns ``{"v": 1}`` into ``{"v": 1, "unit": "EUR"}``.
    """

    transform = ApplyDefaultsCalculator.calculate


class AttributeNameChangeDataTransformer(AttributeNameChangeCalculator, DataTransformer):
    """Renames attributes ``old -> new``, keeping their position; absent ones are ignored.

    Config: ``name_mapping`` (required) — map of old name -> new name (no two old names may
    map to the same new name; a renamed value replaces an attribute already bearing the new
    name). Example: ``{"name_mapping": {"v": "value"}}`` turns ``{"v": 1}`` into
    ``{"value": 1}``.
    """

    transform = AttributeNameChangeCalculator.calculate


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
