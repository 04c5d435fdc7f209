"""Restart budgets: at most ``max_restarts`` within ``within_seconds``, backing off.

Used for a DAG's actors inside a worker and for worker processes in the supervisor
(SPEC §4).

Usage::

    policy = RestartPolicy(max_restarts=5, within_seconds=60)
    delay = policy.next_delay(now)   # None: over budget, give up
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    max_restarts: int = 5
    within_seconds: float = 60.0
    base_delay: float = 0.1
    max_delay: float = 10.0
    jitter: float = 0.2
    history: deque[float] = field(default_factory=deque)
    total: int = 0

    def next_delay(self, now: float) -> float | None:
        """Record a failure at ``now``; the delay before restarting, or None when over budget."""
        while self.history and now - self.history[0] > self.within_seconds:
            self.history.popleft()
        if len(self.history) >= self.max_restarts:
            return None
        self.history.append(now)
        self.total += 1
        doublings = min(len(self.history) - 1, 64)  # past 64 the cap has long won; 2**1024 would overflow
        delay = min(self.max_delay, self.base_delay * 2**doublings)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))
