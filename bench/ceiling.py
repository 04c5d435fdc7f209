"""The plain-Python ceiling: the reference pipeline's three calculators in a bare loop."""

from __future__ import annotations

import time

import msgpack

from bench.workloads import throughput_record
from graphs.calculators import (
    ApplyDefaultsCalculator,
    AttributeFilterAwayCalculator,
    MultiplicationCalculator,
)


def _calculators() -> tuple:
    return (
        AttributeFilterAwayCalculator(name="drop_note", config={"filter_attributes": ["note"]}),
        ApplyDefaultsCalculator(name="default_qty", config={"defaults": {"qty": 1}}),
        MultiplicationCalculator(name="value", config={"arguments": ["price", "qty"], "output_attribute": "value"}),
    )


def ceiling_rps(count: int) -> float:
    """Records/s of ``drop_note -> default_qty -> value`` applied in a for loop."""
    drop, defaults, value = _calculators()
    records = [throughput_record(i) for i in range(count)]
    start = time.perf_counter()
    for record in records:
        value.calculate(defaults.calculate(drop.calculate(record)))
    return count / (time.perf_counter() - start)


def ceiling_msgpack_rps(count: int) -> float:
    """The same loop plus a msgpack round trip of every 100 outputs."""
    drop, defaults, value = _calculators()
    records = [throughput_record(i) for i in range(count)]
    start = time.perf_counter()
    batch = []
    for record in records:
        batch.append(value.calculate(defaults.calculate(drop.calculate(record))))
        if len(batch) == 100:
            msgpack.unpackb(msgpack.packb(batch))
            batch = []
    return count / (time.perf_counter() - start)
