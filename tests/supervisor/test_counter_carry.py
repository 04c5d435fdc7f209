"""How the supervisor merges what dead incarnations counted with what the next one counts (SPEC §8).

Worked by hand on one counter (a subscriber's ``rejected``): a replacement that counts from
zero gets everything carried added; one that resumed from its checkpoint's counters gets
only what was counted before those began; neither is ever shown below what was shown when
the last one died, and nothing is counted twice once the replay has caught up.
"""

from __future__ import annotations

from typing import Any

from supervision.counters import carry_forward, plus, with_carry


def details(rejected: int, restored: bool = False, computes: int = 0) -> dict[str, Any]:
    return {"counters_restored": restored, "actor_restarts": 0, "dead_letters": 0,
            "epochs": {"completed": 0, "latency_seconds": {}},
            "nodes": {"n": {"computes": computes, "errors": 0, "compute_seconds": {}}},
            "subscribers": {"in": {"records": 0, "rejected": rejected, "dropped": 0, "commit_errors": 0, "errors": 0}},
            "publishers": {}}


def rejected(shown: dict[str, Any]) -> int:
    return int(shown["subscribers"]["in"]["rejected"])


def test_a_replacement_counting_from_zero_gets_everything_carried() -> None:
    carry: dict[str, Any] = {}
    carry_forward(carry, details(5))  # died having shown 5
    assert [rejected(with_carry(details(n), carry)) for n in (0, 1, 3)] == [5, 6, 8]


def test_a_kill_before_the_heartbeat_is_made_good_by_the_checkpoint() -> None:
    # 2 rejected and committed, then killed before any heartbeat told of them: the supervisor saw 0
    carry: dict[str, Any] = {}
    carry_forward(carry, details(0))
    assert rejected(with_carry(details(2, restored=True), carry)) == 2  # resumed from the checkpoint's 2


def test_a_checkpoint_older_than_the_heartbeat_never_shows_less_nor_counts_twice() -> None:
    # the heartbeat showed 7; the checkpoint holds 4 (3 rejected after it, not committed, replayed)
    carry: dict[str, Any] = {}
    carry_forward(carry, details(7))
    shown = [rejected(with_carry(details(n, restored=True), carry)) for n in (4, 5, 6, 7, 8)]
    assert shown == [7, 7, 7, 7, 8]  # the replay of the 3 catches up with the floor, then counts on


def test_a_lineage_that_began_later_keeps_what_came_before_it() -> None:
    carry: dict[str, Any] = {}
    carry_forward(carry, details(10))  # an incarnation without checkpoint counters (an old checkpoint)
    carry_forward(carry, details(3))  # the next counted 3 from zero (13 shown) and saved them
    assert rejected(with_carry(details(3, restored=True), carry)) == 13
    assert rejected(with_carry(details(4, restored=True), carry)) == 14
    carry_forward(carry, details(4, restored=True))  # and again, resuming from its own checkpoint
    assert rejected(with_carry(details(5, restored=True), carry)) == 15


def test_the_floor_holds_for_every_kind_of_counter() -> None:
    carry: dict[str, Any] = {}
    carry_forward(carry, details(2, computes=9))
    shown = with_carry(details(0, restored=True, computes=4), carry)
    assert (rejected(shown), shown["nodes"]["n"]["computes"]) == (2, 9)


def test_replicas_are_added_whatever_their_restored_flags() -> None:
    assert rejected(plus(details(2, restored=True), details(3, restored=True))) == 5
