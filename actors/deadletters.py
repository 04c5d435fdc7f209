"""A DAG's dead letters: failed computations and rejected records (SPEC §2 rule 4, §3).

Every dead letter is counted (``dead_letters_total``), whether or not the DAG names a
``dead_letter`` destination. With one, letters are buffered and written in one batch when
:meth:`DeadLetterBox.flush` runs, which the coordinator calls before it writes a
checkpoint: no source position is committed before the dead letters of the records it
covers are durable, so a crash loses none (they are produced again by the replay).

Every letter is one envelope (SPEC §13) with the keys of :data:`ENVELOPE`: ``node`` is the node
that failed (None for a rejected or refused record), ``input`` what it was given,
``subscriber`` and ``record`` the ingress record that led to it (what a redrive injects again;
None when unknown, e.g. a MetronomeNode tick), ``time`` when it happened (epoch seconds). A
sink's refusal also names its ``publisher``.

Usage::

    box = DeadLetterBox(stats, sink)        # sink None: count only
    box.put({"dag": "d", "node": "n", "error": "...", "input": {...}, "subscriber": "s", "record": {...}})
    box.flush()                             # write + flush the sink
    box.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from actors.stats import DagStats
from adapters.base import Sink

MAX_RECENT = 20
ENVELOPE = ("dag", "node", "error", "input", "subscriber", "record", "time")

log = logging.getLogger(__name__)


class DeadLetterBox:
    def __init__(self, stats: DagStats, sink: Sink | None = None) -> None:
        self.stats = stats
        self.sink = sink
        self.recent: deque[dict[str, Any]] = deque(maxlen=MAX_RECENT)
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def put(self, letter: dict[str, Any]) -> None:
        """Count ``letter`` and keep it for the next flush (called from any actor thread); the keys of
        :data:`ENVELOPE` it lacks are added (None; ``time``: now)."""
        letter = {**dict.fromkeys(ENVELOPE), "time": time.time(), **letter}
        with self._lock:
            self.stats.dead_letters += 1
            self.recent.append(letter)
            if self.sink is not None:
                self._pending.append(letter)

    def flush(self) -> None:
        """Write what is pending and make it durable; raises when the sink fails (the DAG restarts).

        The coordinator calls it and is marked busy meanwhile, so a dead-letter sink that
        hangs counts as a hung sink (``publish_timeout``) like any other.
        """
        with self._lock:
            letters, self._pending = self._pending, []
            sink = self.sink
        if sink is None:
            return
        if letters and (refused := sink.write_batch(letters)):
            log.error("dead-letter sink %s refused %d letter(s), which are lost: %s", sink.uri, len(refused),
                      refused[0].reason)
        sink.flush()

    def close(self) -> None:
        """Flush and close the sink, once (errors are the caller's to log)."""
        try:
            self.flush()
        finally:
            with self._lock:
                sink, self.sink = self.sink, None
            if sink is not None:
                sink.close()
