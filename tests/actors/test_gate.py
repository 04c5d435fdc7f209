"""The ingress gate (``actors/gate.py``): what bounds the records and bytes between sources and sinks.

Covered: record slots are handed out up to the capacity and come back with ``give_back``
and ``release``; the bytes bound lets the batch that crosses ``max_bytes`` through (its size
is only known once read) and then stops reads until a release; ``charge``/``release``
accounting behind ``backlog`` and ``bytes_in_flight``; a waiting ``acquire`` is woken by a
release or by ``close()`` (which makes it, and every later call, answer 0), and otherwise
waits no longer than its timeout. Waiting is done by a thread and events, never sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from actors.gate import IngressGate

SETTLE = 0.1  # how long a waiter is given to show it is (still) blocked
PROMPT = 5.0  # how long a woken waiter may take to answer


@dataclass
class Waiter:
    """``gate.acquire(n, timeout)`` running in its own thread."""

    gate: IngressGate
    n: int
    timeout: float
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: int | None = None
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(PROMPT)

    def _run(self) -> None:
        self.started.set()
        begun = time.monotonic()
        self.result = self.gate.acquire(self.n, self.timeout)
        self.elapsed = time.monotonic() - begun
        self.done.set()


@pytest.fixture
def waiters() -> Iterator[list[Waiter]]:
    made: list[Waiter] = []
    yield made
    for waiter in made:  # never leave a thread behind, whatever the test did
        waiter.gate.close()
        waiter.thread.join(PROMPT)
        assert not waiter.thread.is_alive()


def test_record_slots_are_handed_out_up_to_the_capacity() -> None:
    gate = IngressGate(records=5, max_bytes=1000)
    assert gate.acquire(3, timeout=0) == 3
    assert gate.acquire(3, timeout=0) == 2  # what is left, not what was asked
    assert gate.acquire(1, timeout=0) == 0
    assert gate.backlog == 0  # slots held by readers are not records in flight


def test_give_back_returns_unused_slots() -> None:
    gate = IngressGate(records=5, max_bytes=1000)
    assert gate.acquire(5, timeout=0) == 5
    gate.give_back(0)
    assert gate.acquire(1, timeout=0) == 0
    gate.give_back(2)
    assert gate.acquire(5, timeout=0) == 2
    assert (gate.backlog, gate.bytes_in_flight) == (0, 0)


def test_charge_and_release_account_records_and_bytes() -> None:
    gate = IngressGate(records=10, max_bytes=1000)
    assert gate.acquire(4, timeout=0) == 4
    gate.charge(3, 120)
    gate.give_back(1)
    assert (gate.backlog, gate.bytes_in_flight) == (3, 120)
    assert gate.acquire(10, timeout=0) == 7  # the 3 records in flight still hold their slots
    gate.charge(7, 80)
    assert (gate.backlog, gate.bytes_in_flight) == (10, 200)
    gate.release(3, 120)
    assert (gate.backlog, gate.bytes_in_flight) == (7, 80)
    assert gate.acquire(10, timeout=0) == 3  # released records free their slots
    gate.release(0, 0)
    assert (gate.backlog, gate.bytes_in_flight) == (7, 80)


def test_the_batch_that_crosses_max_bytes_is_allowed_then_reads_stop_until_a_release() -> None:
    gate = IngressGate(records=100, max_bytes=100)
    assert gate.acquire(10, timeout=0) == 10
    gate.charge(10, 60)  # under the bound: room left
    assert gate.acquire(10, timeout=0) == 10
    gate.charge(10, 60)  # this read crosses the bound; it was allowed, it is in flight
    assert gate.bytes_in_flight == 120
    assert gate.acquire(10, timeout=0) == 0  # 80 slots free, but no bytes
    gate.release(10, 60)
    assert gate.bytes_in_flight == 60
    assert gate.acquire(10, timeout=0) == 10


def test_reaching_max_bytes_exactly_stops_reads() -> None:
    gate = IngressGate(records=100, max_bytes=100)
    assert gate.acquire(1, timeout=0) == 1
    gate.charge(1, 100)
    assert gate.acquire(1, timeout=0) == 0
    gate.release(1, 1)
    assert gate.acquire(1, timeout=0) == 1


def test_acquire_waits_at_most_its_timeout_on_a_full_gate(waiters: list[Waiter]) -> None:
    gate = IngressGate(records=1, max_bytes=1000)
    assert gate.acquire(1, timeout=0) == 1
    waiter = Waiter(gate, 1, timeout=0.5)
    waiters.append(waiter)
    assert waiter.done.wait(PROMPT)
    assert waiter.result == 0
    assert 0.5 <= waiter.elapsed < 0.9  # the timeout, plus scheduling slack


def test_a_release_wakes_a_waiter_with_its_slots(waiters: list[Waiter]) -> None:
    gate = IngressGate(records=4, max_bytes=1000)
    assert gate.acquire(4, timeout=0) == 4
    gate.charge(4, 10)
    waiter = Waiter(gate, 3, timeout=60)
    waiters.append(waiter)
    assert not waiter.done.wait(SETTLE)  # still blocked: the gate is full
    gate.release(2, 5)
    assert waiter.done.wait(PROMPT)
    assert waiter.result == 2
    assert waiter.elapsed < 60


def test_give_back_wakes_a_waiter(waiters: list[Waiter]) -> None:
    gate = IngressGate(records=2, max_bytes=1000)
    assert gate.acquire(2, timeout=0) == 2
    waiter = Waiter(gate, 5, timeout=60)
    waiters.append(waiter)
    assert not waiter.done.wait(SETTLE)
    gate.give_back(1)
    assert waiter.done.wait(PROMPT)
    assert waiter.result == 1


def test_releasing_bytes_wakes_a_waiter_held_by_the_bytes_bound(waiters: list[Waiter]) -> None:
    gate = IngressGate(records=10, max_bytes=50)
    assert gate.acquire(1, timeout=0) == 1
    gate.charge(1, 50)
    waiter = Waiter(gate, 4, timeout=60)
    waiters.append(waiter)
    assert not waiter.done.wait(SETTLE)
    gate.release(1, 50)
    assert waiter.done.wait(PROMPT)
    assert waiter.result == 4


def test_close_wakes_a_waiter_which_gets_nothing(waiters: list[Waiter]) -> None:
    gate = IngressGate(records=1, max_bytes=1000)
    assert gate.acquire(1, timeout=0) == 1
    waiter = Waiter(gate, 1, timeout=60)
    waiters.append(waiter)
    assert not waiter.done.wait(SETTLE)
    gate.close()
    assert waiter.done.wait(PROMPT)
    assert waiter.result == 0
    assert waiter.elapsed < 60


def test_a_closed_gate_hands_out_nothing_even_with_room() -> None:
    gate = IngressGate(records=10, max_bytes=1000)
    gate.close()
    begun = time.monotonic()
    assert gate.acquire(5, timeout=30) == 0
    assert time.monotonic() - begun < PROMPT  # answered at once, not after the timeout
    gate.release(0, 0)
    gate.give_back(3)
    assert gate.acquire(1, timeout=0) == 0
