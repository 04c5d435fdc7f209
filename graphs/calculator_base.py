"""The base class of calculators, on its own so every calculator module can build on it.

Usage::

    from graphs.calculators import Calculator      # the usual name for it

    class Doubler(Calculator):
        def calculate(self, record: dict) -> dict | None:
            return {"double": 2 * record["value"]} if "value" in record else None
"""

from __future__ import annotations

from graphs.components import Component


class Calculator(Component):
    """Base class of calculators: ``calculate(record)`` returns a new record, or None to emit nothing.

    Subclasses get ``self.name`` and ``self.config`` (a dict). Declare ``CONFIG_KEYS``
    (key -> description) to have unknown config keys rejected at construction.
    """

    def calculate(self, record: dict) -> dict | None:
        """Compute the output record for ``record``; must not mutate ``record``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement calculate()")
