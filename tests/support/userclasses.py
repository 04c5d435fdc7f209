"""User-style component classes for tests, referred to by dotted path (``tests.support.userclasses.X``).

Shared by the test suites: keep the names and behaviour stable.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from graphs.calculators import Calculator
from graphs.state import LateRecord
from graphs.transformers import DataTransformer

NOT_A_CLASS = 42


class RaisingCalculator(Calculator):
    """Copies the record; raises ValueError when ``record.get("boom")`` is truthy."""

    def calculate(self, record: dict) -> dict | None:
        if record.get("boom"):
            raise ValueError(f"boom in {self.name}")
        return dict(record)


class DropFilterCalculator:
    """A filter that does not subclass Calculator: None (emit nothing) when ``record.get("drop")``."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = dict(config)

    def calculate(self, record: dict) -> dict | None:
        return None if record.get("drop") else dict(record)


class JunkCalculator(Calculator):
    """Returns something other than a map for some records (SPEC §2 rule 4: an error).

    ``a == 1``: a list; ``a == 2``: a string; ``a == 3``: a number; otherwise a copy.
    """

    def calculate(self, record: dict) -> Any:
        return _junk_for(record)


class JunkTransformer(DataTransformer):
    """The transformer twin of :class:`JunkCalculator`, keyed on ``b`` instead of ``a``."""

    def transform(self, record: dict) -> Any:
        return _junk_for(record, key="b")


def _junk_for(record: dict, key: str = "a") -> Any:
    value = record.get(key)
    if value is True or value is False:
        return dict(record)
    if value == 1:
        return [dict(record)]
    if value == 2:
        return "not a map"
    if value == 3:
        return 3.5
    return dict(record)


class SleepyCalculator(Calculator):
    """Copies the record, sleeping ``config["seconds"]`` first when ``record.get("sleep")``."""

    CONFIG_KEYS: dict[str, str] = {"seconds": "how long a marked record takes"}

    def calculate(self, record: dict) -> dict | None:
        if record.get("sleep"):
            time.sleep(float(self.config.get("seconds", 0.01)))
        return dict(record)


class UpperNameTransformer(DataTransformer):
    """Upper-cases the ``name`` field when it is a string; other fields are unchanged."""

    def transform(self, record: dict) -> dict | None:
        name = record.get("name")
        return {**record, "name": name.upper()} if isinstance(name, str) else dict(record)


class FailingConstructorCalculator(Calculator):
    """Its constructor raises RuntimeError when ``config["fail"]`` is truthy."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(name, config)
        if self.config.get("fail"):
            raise RuntimeError("cannot start: fail requested")

    def calculate(self, record: dict) -> dict | None:
        return dict(record)


class NoMethodComponent:
    """Constructible, but has neither ``calculate`` nor ``transform``."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name


class ExitingCalculator(Calculator):
    """Ends its whole process with ``os._exit(config["code"])`` (default 3) on every record.

    Constructing it is harmless (``dagserver check`` builds it in the supervisor); only
    ``calculate`` exits, which in a server takes down the worker hosting the DAG.
    """

    CONFIG_KEYS: dict[str, str] = {"code": "the process exit code (default 3)"}

    def calculate(self, record: dict) -> dict | None:
        import os

        os._exit(int(self.config.get("code", 3)))


class SysExitCalculator(Calculator):
    """Calls ``sys.exit(3)`` on a record with ``exit``; copies the others (an error, never an exit)."""

    def calculate(self, record: dict) -> dict | None:
        if record.get("exit"):
            sys.exit(3)
        return dict(record)


class OddOutputCalculator(Calculator):
    """``a == 0``: an empty map; ``a == 9``: a number msgpack cannot carry (2**70); otherwise a copy."""

    def calculate(self, record: dict) -> dict | None:
        if record.get("a") == 0:
            return {}
        if record.get("a") == 9:
            return {"v": 2**70}
        return dict(record)


class ServerStampCalculator(Calculator):
    """Copies the record and adds ``server``: the environment variable ``config["variable"]``
    (default ``DAGSERVER_TEST_SERVER``) of the process computing it, so output tells which
    server of several wrote it."""

    CONFIG_KEYS: dict[str, str] = {"variable": "the environment variable naming the server"}

    def calculate(self, record: dict) -> dict | None:
        return {**record, "server": os.environ.get(str(self.config.get("variable", "DAGSERVER_TEST_SERVER")), "")}


class MarkingCalculator(Calculator):
    """Marks the record it is given (``seen: True``) and returns that same record: a calculator that
    changes its input in place, which must never reach what another node holds."""

    def calculate(self, record: dict) -> dict | None:
        record["seen"] = True
        return record


class CountingCalculator(Calculator):
    """Stateful (SPEC §11): counts every record and sums ``float(a)`` where it converts; keeps the count
    per ``name`` too. Output ``{"seen": n, "total": sum, "name": name, "by_name": n for that name}``.

    ``config["snapshot"]``: ``"raise"`` makes ``snapshot()`` raise, ``"junk"`` return a set (msgpack cannot
    encode it); ``config["restore"] == "raise"`` makes ``restore()`` raise.
    """

    stateful = True

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(name, config)
        self.seen = 0
        self.total = 0.0
        self.by_name: dict[str, int] = {}

    def calculate(self, record: dict) -> dict | None:
        self.seen += 1
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            self.total += float(record.get("a"))  # type: ignore[arg-type]
        name = str(record.get("name"))
        self.by_name[name] = self.by_name.get(name, 0) + 1
        return {"seen": self.seen, "total": self.total, "name": name, "by_name": self.by_name[name]}

    def snapshot(self) -> Any:
        if self.config.get("snapshot") == "raise":
            raise RuntimeError("snapshot refused")
        if self.config.get("snapshot") == "junk":
            return {"seen": {self.seen}}
        return {"seen": self.seen, "total": self.total, "by_name": self.by_name}

    def restore(self, value: Any) -> None:
        if self.config.get("restore") == "raise":
            raise RuntimeError("restore refused")
        self.seen, self.total, self.by_name = value["seen"], value["total"], dict(value["by_name"])


class LateClaimCalculator(Calculator):
    """Not stateful, yet raises graphs.state.LateRecord on a record with ``late``: an error like any other."""

    def calculate(self, record: dict) -> dict | None:
        if record.get("late"):
            raise LateRecord("late record: claimed by a calculator that keeps no state")
        return dict(record)
