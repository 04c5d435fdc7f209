"""The record a tick carries (SPEC §2 rule 3), the same for a MetronomeNode and a metronome source.

Usage::

    tick_record("tick", 3, time.time())
    # {"message": "tick", "current_timestamp": "20261127190000", "tick": 3}
"""

from __future__ import annotations

import time
from typing import Any


def tick_record(message: str, n: int, now: float) -> dict[str, Any]:
    """The record for tick ``n`` happening at ``now`` (epoch seconds, local time stamp).

    >>> tick_record("tick", 3, 0.0)["tick"]
    3
    """
    return {
        "message": message,
        "current_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(now)),
        "tick": n,
    }
