"""A clock source: ``metronome`` or ``metronome://?interval=SECONDS``.

Emits ``{"message": ..., "current_timestamp": "YYYYmmddHHMMSS", "tick": n}`` every
``interval`` seconds (config ``interval`` overrides the URI, default 1.0), the first one
an interval after ``open``. Config ``message`` defaults to ``"tick"``. The position is the
number of ticks emitted; opening with it continues the count. Ticks missed while nobody
read are all delivered (up to ``max_records`` per batch), stamped with their due time.

The clock and sleep functions can be injected so tests need no real time::

    now = [0.0]
    src = MetronomeSource("metronome://?interval=2", {}, clock=lambda: now[0],
                          sleep=lambda s: now.__setitem__(0, now[0] + s))
    src.open(None)
    src.read_batch(10, timeout=5)        # sleeps 2 fake seconds -> [{'tick': 1, ...}]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from adapters.base import CLOSED, CONNECTED, SOURCE, Adapter, ParsedUri, Source, positive_param, setting
from graphs.ticks import tick_record

DEFAULT_INTERVAL = 1.0
DEFAULT_MESSAGE = "tick"


def check_metronome_uri(parsed: ParsedUri) -> str | None:
    if parsed.body:
        return f"metronome URI {parsed.raw!r} takes no path (use metronome://?interval=SECONDS)"
    return positive_param(parsed, "interval")


class MetronomeSource(Source):
    """Ticks every ``interval`` seconds; position = ticks emitted so far."""

    def __init__(
        self,
        uri: str,
        config: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(uri, config)
        self.interval = setting(self.config, self.parsed, "interval", DEFAULT_INTERVAL, float)
        if not self.interval > 0:
            raise ValueError(f"metronome interval must be positive, got {self.interval}")
        self.message = str(setting(self.config, self.parsed, "message", DEFAULT_MESSAGE))
        self._clock = clock
        self._sleep = sleep
        self._ticks = 0
        self._next_due = 0.0

    def open(self, position: Any | None) -> None:
        self._ticks = position if isinstance(position, int) and position >= 0 else 0
        self._next_due = self._clock() + self.interval
        self.status = CONNECTED

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self.status == CLOSED:
            raise RuntimeError(f"{self!r} is not open")
        now = self._clock()
        wait = self._next_due - now
        if wait > 0:
            if wait > timeout:
                if timeout > 0:
                    self._sleep(timeout)
                return []
            self._sleep(wait)
            now = max(self._clock(), self._next_due)
        out: list[Any] = []
        while len(out) < max_records and self._next_due <= now:
            self._ticks += 1
            out.append(tick_record(self.message, self._ticks, self._next_due))
            self._next_due += self.interval
        return out

    def position(self) -> int:
        return self._ticks

    def close(self) -> None:
        self.status = CLOSED


ADAPTER = Adapter("metronome", check_metronome_uri, source=MetronomeSource, roles=(SOURCE,),
                  source_keys=("interval", "message"))
