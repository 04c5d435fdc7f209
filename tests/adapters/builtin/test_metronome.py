"""metronome: tick records on a fake clock, interval settings, resume."""

from __future__ import annotations

import time

import pytest

from adapters.builtin.metronome import MetronomeSource
from adapters.registry import check_uri, is_shareable, open_source
from graphs.ticks import tick_record


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _metronome(uri: str = "metronome", config=None, clock=None, position=None) -> MetronomeSource:
    clock = clock or FakeClock()
    src = MetronomeSource(uri, config or {}, clock=clock, sleep=clock.sleep)
    src.open(position)
    return src


def test_tick_record_shape():
    now = 1_700_000_000.0
    rec = tick_record("hello", 7, now)
    assert rec == {
        "message": "hello",
        "current_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(now)),
        "tick": 7,
    }
    assert len(rec["current_timestamp"]) == 14


def test_ticks_every_interval_on_a_fake_clock():
    clock = FakeClock()
    src = _metronome("metronome://?interval=2", clock=clock)
    assert src.status == "connected"
    assert src.read_batch(10, timeout=0) == []
    assert src.read_batch(10, timeout=1) == []  # waited the whole timeout, tick not due yet
    assert clock.slept == [1]
    batch = src.read_batch(10, timeout=5)  # sleeps only until the tick is due
    assert clock.slept == [1, 1]
    assert [r["tick"] for r in batch] == [1]
    assert batch[0]["message"] == "tick"
    assert src.position() == 1


def test_all_due_ticks_are_returned_up_to_max_records():
    clock = FakeClock(0.0)
    src = _metronome(config={"interval": 0.5, "message": "beat"}, clock=clock)
    clock.now += 3.0
    first = src.read_batch(4, timeout=0)
    rest = src.read_batch(10, timeout=0)
    assert [r["tick"] for r in first + rest] == [1, 2, 3, 4, 5, 6]
    assert all(r["message"] == "beat" for r in first)
    assert first[1] == tick_record("beat", 2, 1.0)  # stamped with the due time
    assert src.position() == 6
    assert clock.slept == []


def test_config_overrides_uri_and_defaults():
    assert _metronome("metronome://?interval=5", {"interval": 0.25}).interval == 0.25
    assert _metronome("metronome").interval == 1.0
    assert _metronome("metronome?interval=3").interval == 3.0
    with pytest.raises(ValueError, match="positive"):
        MetronomeSource("metronome", {"interval": 0})
    with pytest.raises(ValueError, match="interval"):
        MetronomeSource("metronome://?interval=soon", {})


def test_resume_continues_the_tick_count():
    clock = FakeClock(0.0)
    src = _metronome(clock=clock, position=41)
    clock.now += 1.0
    assert src.read_batch(10, timeout=0)[0]["tick"] == 42
    src.close()
    assert src.status == "closed"
    with pytest.raises(RuntimeError):
        src.read_batch(1, timeout=0)


def test_registry_knows_metronome():
    src = open_source("metronome://?interval=0.1", {})
    assert isinstance(src, MetronomeSource) and src.interval == 0.1
    assert not is_shareable("metronome")
    assert check_uri("metronome", "source") is None
    assert "only be a source" in (check_uri("metronome", "destination") or "")
    assert "positive" in (check_uri("metronome://?interval=-1", "source") or "")
