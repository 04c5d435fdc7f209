"""User calculators the example DAGs use (a user class is named by its dotted path, SPEC §2).

The server imports them from the project root (the folder holding ``examples/``), which is
where ``dagserver`` runs from in the examples: ``"type": "examples.calculators.RatioCalculator"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphs.calculators import Calculator


class RatioCalculator(Calculator):
    """The record with ``output_attribute`` = ``numerator`` / ``denominator`` (null when either is missing,
    not a number, or the denominator is 0). Example: a VWAP from summed notional and volume::

        {"type": "examples.calculators.RatioCalculator",
         "config": {"numerator": "notional", "denominator": "volume", "output_attribute": "vwap"}}
    """

    CONFIG_KEYS = {"numerator": "attribute divided", "denominator": "attribute dividing",
                   "output_attribute": "where the ratio goes (default 'ratio')"}

    def __init__(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, config)
        for key in ("numerator", "denominator"):
            if not isinstance(self.config.get(key), str):
                raise ValueError(f"{key} must name an attribute")
        self.output = str(self.config.get("output_attribute", "ratio"))

    def calculate(self, record: dict) -> dict | None:
        try:
            top, bottom = float(record[self.config["numerator"]]), float(record[self.config["denominator"]])
            ratio = top / bottom if bottom else None
        except (KeyError, TypeError, ValueError, OverflowError):
            ratio = None
        return {**record, self.output: ratio}
