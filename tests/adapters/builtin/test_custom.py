"""custom:// user adapters, and the registry: URI checks, suggestions, lazy loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters import registry
from adapters.base import Adapter, Sink, Source, parse_uri
from adapters.builtin.custom import CustomSink, CustomSource
from adapters.registry import (
    AdapterNotAvailable,
    check_uri,
    is_shareable,
    open_sink,
    open_source,
    register_sink,
    register_source,
)
from tests.support import useradapters

ROOT = Path(__file__).resolve().parents[3]  # the project root


@pytest.fixture(autouse=True)
def _clean_collector():
    useradapters.CollectingSink.collected.clear()
    useradapters.CollectingSink.flushes.clear()


# --- custom:// -----------------------------------------------------------------------------


def test_custom_source_delegates_to_the_user_class():
    src = open_source("custom://tests.support.useradapters.ListSource", {"records": [{"a": 1}, {"a": 2}, {"a": 3}]})
    assert isinstance(src, CustomSource)
    assert src.status == "closed"
    src.open(1)
    assert src.status == "connected"
    assert src.read_batch(10, timeout=0) == [{"a": 2}, {"a": 3}]
    assert src.position() == 3
    src.commit(3)
    assert src.user.committed == 3
    src.close()
    assert src.status == "closed"
    assert not is_shareable("custom://tests.support.useradapters.ListSource")


def test_missing_optional_methods_are_no_ops_and_batches_are_capped():
    src = open_source("custom://tests.support.useradapters:GreedySource", {"records": [{"n": i} for i in range(5)]})
    src.open(None)
    assert src.status == "connected"
    assert src.read_batch(2, timeout=0) == [{"n": 0}, {"n": 1}]
    assert src.read_batch(2, timeout=0) == [{"n": 2}, {"n": 3}]
    assert src.position() is None
    assert src.read_batch(2, timeout=0) == [{"n": 4}]
    assert src.read_batch(2, timeout=0) == []
    src.commit(None)
    src.close()
    assert is_shareable("custom://tests.support.useradapters.GreedySource")


def test_custom_sink_collects_and_flushes():
    sink = open_sink("custom://tests.support.useradapters.CollectingSink", {"key": "out"})
    assert isinstance(sink, CustomSink)
    sink.open()
    sink.write_batch([{"x": 1}])
    sink.write_batch([{"x": 2}])
    sink.flush()
    sink.close()
    assert useradapters.CollectingSink.collected["out"] == [{"x": 1}, {"x": 2}]
    assert useradapters.CollectingSink.flushes["out"] == 1
    assert sink.status == "closed"


def test_custom_errors_are_clear():
    with pytest.raises(TypeError, match="cannot be a source"):
        open_source("custom://tests.support.useradapters.CollectingSink", {})
    with pytest.raises(TypeError, match="cannot be a sink"):
        open_sink("custom://tests.support.useradapters.ListSource", {})
    with pytest.raises(ValueError, match="has no 'Nope'"):
        open_source("custom://tests.support.useradapters.Nope", {})
    with pytest.raises(ValueError, match="cannot import"):
        open_source("custom://no_such_pkg_here.Mod", {})
    assert not is_shareable("custom://no_such_pkg_here.Mod")


# --- registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "role", "expected"),
    [
        ("mem://queue/in", "source", None),
        ("mem://topic/out", "destination", None),
        ("file:///tmp/x.jsonl", "destination", None),
        ("metronome://?interval=2", "source", None),
        ("kafka://topic/trades", "source", None),
        ("activemq://queue/orders", "destination", None),
        ("sql://warehouse", "destination", None),
        ("aerospike://test/prices", "destination", None),
        ("redis://localhost/stream/events", "source", None),
        ("custom://pkg.mod.Class", "source", None),
        ("memm://queue/x", "source", "unknown URI scheme 'memm' (did you mean 'mem'?)"),
        ("kafak://topic/x", "source", "did you mean 'kafka'?"),
        ("zzzz://x", "source", "unknown URI scheme 'zzzz' (known: "),
        ("mem://bucket/x", "source", "mem://queue/NAME or mem://topic/NAME"),
        ("mem://queue/x?max_size=0", "source", "'max_size'"),
        ("mem:queue/x", "source", "malformed URI"),
        ("", "source", "empty URI"),
        ("file://", "destination", "has no path"),
        ("metronome", "destination", "can only be a source"),
        ("metronome://x", "source", "takes no path"),
        ("kafka://trades", "source", "kafka://topic/NAME"),
        ("activemq://topic/a/b", "source", "activemq://queue/NAME or activemq://topic/NAME"),
        ("aerospike://test", "destination", "aerospike://NAMESPACE/SET"),
        ("sql://", "destination", "connection label"),
        ("custom://Thing", "source", "custom://package.module.Class"),
    ],
)
def test_check_uri(uri, role, expected):
    problem = check_uri(uri, role)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem
        assert "\n" not in problem


def test_check_uri_rejects_non_strings_and_bad_roles():
    assert "must be a string" in (check_uri(42, "source") or "")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        check_uri("mem://queue/x", "publisher")


def test_later_schemes_are_known_but_say_they_are_not_available(monkeypatch):
    monkeypatch.setattr(registry, "_adapters", dict(registry._adapters))
    registry.register(Adapter("soon", lambda u: None, extra="soon"))  # declared, no classes yet
    with pytest.raises(NotImplementedError, match="'soon'"):
        open_sink("soon://x", {})
    with pytest.raises(AdapterNotAvailable, match=r"dagserver\[soon\]"):
        open_sink("soon://x", {})
    monkeypatch.setitem(registry.MODULES, "later", "adapters._not_written_yet")
    with pytest.raises(AdapterNotAvailable, match="'later'"):
        open_source("later://x", {})
    with pytest.raises(ValueError, match="did you mean 'mem'"):
        open_source("mme://queue/x", {})


def test_third_party_registration(monkeypatch):
    class Echo(Source):
        shareable = True

        def open(self, position):
            self.status = "connected"

        def read_batch(self, max_records, timeout):
            return [{"uri": self.uri}][:max_records]

        def position(self):
            return 0

        def close(self):
            self.status = "closed"

    class Nowhere(Sink):
        def open(self):
            pass

        def write_batch(self, records):
            pass

        def close(self):
            pass

    monkeypatch.setattr(registry, "_adapters", dict(registry._adapters))
    register_source("echo", Echo)
    register_sink("void", Nowhere)
    src = open_source("echo://anything", {})
    src.open(None)
    assert src.read_batch(5, 0) == [{"uri": "echo://anything"}]
    assert check_uri("echo://x", "source") is None
    assert "can only be a source" in (check_uri("echo://x", "destination") or "")
    assert is_shareable("echo://x")
    assert isinstance(open_sink("void://x", {}), Nowhere)


def test_parse_uri():
    u = parse_uri("mem://queue/a%20b?max_size=5&x=")
    assert (u.scheme, u.parts, u.params) == ("mem", ("queue", "a b"), {"max_size": "5", "x": ""})
    assert u.part(5, "none") == "none"
    assert parse_uri("METRONOME").scheme == "metronome"


def test_importing_the_registry_loads_no_adapter_or_client():
    code = (
        "import sys, adapters, adapters.registry\n"
        "bad = [m for m in sys.modules if m.startswith(('kafka', 'redis', 'stomp', 'pymysql', "
        "'psycopg', 'aerospike', 'adapters.builtin', 'adapters.kafka', 'adapters.redis', 'adapters.sql', "
        "'adapters.activemq', 'adapters.aerospike', 'adapters.formats'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=30)
