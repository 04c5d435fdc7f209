"""The restart budget of ``actors/restart.py`` (SPEC §4): backoff values, jitter bounds, the budget window, ``total``.

``RestartPolicy.next_delay(now)`` records a failure at ``now`` and answers the delay before
restarting: ``base_delay * 2**(n-1)`` for the n-th failure inside the window, capped at
``max_delay``, then scaled by ``1 + uniform(-jitter, jitter)``; or None once ``max_restarts``
failures already fall within ``within_seconds``. Times are plain numbers here, no clock runs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest

from actors.restart import RestartPolicy


@pytest.fixture(autouse=True)
def _keep_global_random_state() -> Iterator[None]:
    """These tests seed ``random``; give the rest of the session its state back."""
    state = random.getstate()
    yield
    random.setstate(state)


def delays(policy: RestartPolicy, count: int, start: float = 1000.0, step: float = 0.001) -> list[float | None]:
    """``count`` failures ``step`` seconds apart, all well inside the window."""
    return [policy.next_delay(start + i * step) for i in range(count)]


# -- exact values without jitter ---------------------------------------------------------------------
def test_without_jitter_the_delay_doubles_from_base_delay() -> None:
    policy = RestartPolicy(max_restarts=6, within_seconds=60, base_delay=0.1, max_delay=100.0, jitter=0)
    assert delays(policy, 6) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2], rel=1e-12)


def test_without_jitter_the_delay_is_capped_at_max_delay() -> None:
    policy = RestartPolicy(max_restarts=8, within_seconds=60, base_delay=0.5, max_delay=3.0, jitter=0)
    # 0.5, 1, 2, then 4, 8, 16, ... are all capped to 3.
    assert delays(policy, 8) == pytest.approx([0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0], rel=1e-12)


def test_the_defaults_match_the_documented_budget() -> None:
    policy = RestartPolicy(jitter=0)
    assert (policy.max_restarts, policy.within_seconds) == (5, 60.0)
    assert delays(policy, 5) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6], rel=1e-12)
    assert policy.next_delay(1001.0) is None


def test_the_exponent_counts_failures_inside_the_window_only() -> None:
    """Once old failures are forgotten the backoff starts again from ``base_delay``."""
    policy = RestartPolicy(max_restarts=10, within_seconds=10, base_delay=1.0, max_delay=100.0, jitter=0)
    assert [policy.next_delay(t) for t in (0.0, 1.0, 2.0)] == [1.0, 2.0, 4.0]
    assert policy.next_delay(11.5) == 2.0  # the failures at 0 and 1 left the window; 2 and 11.5 remain
    assert policy.next_delay(100.0) == 1.0  # everything before is forgotten


# -- jitter --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jitter", [0.05, 0.2, 0.5])
def test_every_jittered_delay_is_within_jitter_of_nominal(jitter: float) -> None:
    random.seed(1234)
    for _round in range(200):
        policy = RestartPolicy(max_restarts=7, within_seconds=60, base_delay=0.1, max_delay=2.0, jitter=jitter)
        for n, delay in enumerate(delays(policy, 7), start=1):
            nominal = min(2.0, 0.1 * 2 ** (n - 1))
            assert delay is not None
            assert nominal * (1 - jitter) - 1e-12 <= delay <= nominal * (1 + jitter) + 1e-12, (n, nominal, delay)


def test_jittered_delays_are_reproducible_with_a_fixed_seed() -> None:
    def run(seed: int) -> list[float | None]:
        random.seed(seed)
        return delays(RestartPolicy(max_restarts=5, within_seconds=60, jitter=0.3), 5)

    first, again, other = run(42), run(42), run(43)
    assert first == again  # exactly equal, not approximately
    assert first != other
    # And the value is the documented formula applied to the seeded draw.
    random.seed(42)
    draw = random.uniform(-0.3, 0.3)
    assert first[0] == pytest.approx(0.1 * (1 + draw), rel=1e-12)


def test_jitter_falls_on_both_sides_of_nominal() -> None:
    random.seed(7)
    ratios = []
    for _round in range(500):
        policy = RestartPolicy(max_restarts=1, within_seconds=60, base_delay=1.0, jitter=0.2)
        delay = policy.next_delay(0.0)
        assert delay is not None
        ratios.append(delay / 1.0)
    below = sum(r < 1.0 for r in ratios)
    above = sum(r > 1.0 for r in ratios)
    # A fair spread: with 500 draws a one-sided or badly skewed jitter cannot pass.
    assert below > 150 and above > 150, (below, above)
    assert min(ratios) < 0.9 and max(ratios) > 1.1  # it uses most of its range, not a sliver of it


def test_jitter_applies_to_the_capped_delay_too() -> None:
    random.seed(99)
    seen = []
    for _round in range(300):
        policy = RestartPolicy(max_restarts=6, within_seconds=60, base_delay=1.0, max_delay=4.0, jitter=0.25)
        last = delays(policy, 6)[-1]  # nominal 32 -> capped at 4
        assert last is not None
        assert 3.0 - 1e-12 <= last <= 5.0 + 1e-12
        seen.append(last)
    assert min(seen) < 4.0 < max(seen)


# -- the budget ----------------------------------------------------------------------------------------
def test_over_budget_is_none_and_is_not_recorded() -> None:
    policy = RestartPolicy(max_restarts=3, within_seconds=60, jitter=0)
    assert all(d is not None for d in delays(policy, 3))
    assert policy.next_delay(1001.0) is None
    assert policy.next_delay(1002.0) is None
    assert len(policy.history) == 3  # refused failures do not extend the window
    assert policy.total == 3


def test_failures_older_than_the_window_are_forgotten_and_the_budget_refills() -> None:
    policy = RestartPolicy(max_restarts=3, within_seconds=10, base_delay=1.0, jitter=0)
    assert [policy.next_delay(t) for t in (0.0, 1.0, 2.0)] == [1.0, 2.0, 4.0]
    assert policy.next_delay(9.5) is None  # all three still inside the window
    assert policy.next_delay(10.5) == 4.0  # the failure at 0 is 10.5 s old: one slot free again
    assert policy.next_delay(10.9) is None  # 1, 2 and 10.5 fill it again
    # At 12.5 the failures at 1 and 2 are both older than 10 s: only 10.5 remains, this is the second.
    assert policy.next_delay(12.5) == 2.0
    assert list(policy.history) == [10.5, 12.5]
    assert [policy.next_delay(t) for t in (100.0, 100.1, 100.2, 100.3)] == [1.0, 2.0, 4.0, None]  # a full refill


def test_a_failure_just_inside_the_window_still_counts() -> None:
    policy = RestartPolicy(max_restarts=1, within_seconds=5, jitter=0)
    assert policy.next_delay(0.0) is not None
    assert policy.next_delay(4.999) is None
    assert policy.next_delay(5.001) is not None


# -- total ------------------------------------------------------------------------------------------------
def test_total_counts_every_granted_restart_across_windows() -> None:
    policy = RestartPolicy(max_restarts=2, within_seconds=10, jitter=0)
    assert policy.total == 0
    granted = [policy.next_delay(t) for t in (0.0, 1.0, 2.0, 3.0)]  # two granted, two refused
    assert [d is not None for d in granted] == [True, True, False, False]
    assert policy.total == 2
    assert policy.next_delay(20.0) is not None  # a new window: granted again, total keeps counting
    assert policy.next_delay(21.0) is not None
    assert policy.next_delay(22.0) is None
    assert policy.total == 4


def test_clearing_history_gives_a_fresh_budget_but_keeps_total() -> None:
    """What an operator's start does (``runtime.start``, ``Supervisor._revive``): budget refilled, total kept."""
    policy = RestartPolicy(max_restarts=2, within_seconds=60, base_delay=1.0, jitter=0)
    assert delays(policy, 3) == [1.0, 2.0, None]
    policy.history.clear()
    assert policy.next_delay(1000.5) == 1.0  # backoff from the start again
    assert policy.total == 3


def test_zero_restarts_allowed_refuses_the_first_failure() -> None:
    policy = RestartPolicy(max_restarts=0, within_seconds=60)
    assert policy.next_delay(0.0) is None
    assert policy.total == 0


def test_delays_stay_capped_and_finite_over_a_long_crash_loop() -> None:
    random.seed(5)
    policy = RestartPolicy(max_restarts=1000, within_seconds=1e9, base_delay=0.1, max_delay=10.0, jitter=0.2)
    values = delays(policy, 1000)
    assert all(v is not None and math.isfinite(v) and 8.0 <= v <= 12.0 for v in values[100:])
    assert policy.total == 1000


def test_the_cap_holds_past_1024_failures_in_the_window() -> None:
    """An operator's "practically unlimited" budget (say 100000 restarts a day) must not crash the caller."""
    policy = RestartPolicy(max_restarts=100_000, within_seconds=86_400, base_delay=0.1, max_delay=10.0, jitter=0)
    values = delays(policy, 1025)
    assert values[-1] == 10.0
