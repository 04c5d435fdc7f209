"""Lining up one message per input per epoch (``actors/alignment.py``, SPEC §3).

Covered: with a single input every epoch is ready as it arrives; with several inputs an
epoch is ready only once every input delivered it, whatever the order across inputs;
later epochs that arrive first are held and handed out oldest first, several at once;
items are placed by input index, not arrival order; flags are OR-ed over the inputs; empty
items count as delivered; nothing is kept once an epoch is handed out.
"""

from __future__ import annotations

from actors.alignment import EpochAligner
from actors.messages import FLAG_CHECKPOINT

EMPTY: list[list[int]] = [[], []]  # a parent's "no changes" for an epoch


def test_a_single_input_is_ready_at_once() -> None:
    aligner = EpochAligner({"a": 0})
    assert aligner.add(0, "a", 0, "a0") == [(0, 0, ["a0"])]
    assert aligner.add(1, "a", FLAG_CHECKPOINT, "a1") == [(1, FLAG_CHECKPOINT, ["a1"])]
    assert aligner.next_epoch == 2
    assert aligner.pending == {} and aligner.flags == {}


def test_a_single_input_ahead_of_itself_is_held_until_the_gap_is_filled() -> None:
    aligner = EpochAligner({"a": 0})
    assert aligner.add(1, "a", 0, "a1") == []
    assert aligner.add(0, "a", 0, "a0") == [(0, 0, ["a0"]), (1, 0, ["a1"])]


def test_an_epoch_waits_for_every_input() -> None:
    aligner = EpochAligner({"a": 0, "b": 1, "c": 2})
    assert aligner.add(0, "b", 0, "b0") == []
    assert aligner.add(0, "c", 0, "c0") == []
    assert aligner.add(0, "a", 0, "a0") == [(0, 0, ["a0", "b0", "c0"])]


def test_items_are_placed_by_input_index_not_arrival() -> None:
    aligner = EpochAligner({"late": 1, "early": 0})
    assert aligner.add(0, "late", 0, "L") == []
    assert aligner.add(0, "early", 0, "E") == [(0, 0, ["E", "L"])]


def test_epochs_out_of_order_across_inputs_come_out_in_order() -> None:
    aligner = EpochAligner({"a": 0, "b": 1})
    # b runs ahead by three epochs; a then catches up one epoch at a time
    assert aligner.add(0, "b", 0, "b0") == []
    assert aligner.add(1, "b", 0, "b1") == []
    assert aligner.add(2, "b", 0, "b2") == []
    assert aligner.add(0, "a", 0, "a0") == [(0, 0, ["a0", "b0"])]
    assert aligner.add(1, "a", 0, "a1") == [(1, 0, ["a1", "b1"])]
    assert aligner.add(2, "a", 0, "a2") == [(2, 0, ["a2", "b2"])]
    assert aligner.pending == {}


def test_several_epochs_ready_at_once_are_handed_out_oldest_first() -> None:
    aligner = EpochAligner({"a": 0, "b": 1})
    for epoch in range(4):
        assert aligner.add(epoch, "a", 0, f"a{epoch}") == []
    for epoch in (3, 1, 2):  # b delivers every epoch but 0: nothing is ready
        assert aligner.add(epoch, "b", 0, f"b{epoch}") == []
    ready = aligner.add(0, "b", 0, "b0")
    assert ready == [(e, 0, [f"a{e}", f"b{e}"]) for e in range(4)]
    assert aligner.next_epoch == 4
    assert aligner.pending == {} and aligner.flags == {}


def test_a_complete_later_epoch_waits_for_an_incomplete_earlier_one() -> None:
    aligner = EpochAligner({"a": 0, "b": 1})
    assert aligner.add(1, "a", 0, "a1") == []
    assert aligner.add(1, "b", 0, "b1") == []  # epoch 1 is whole, epoch 0 is not
    assert aligner.add(0, "a", 0, "a0") == []
    assert list(aligner.pending) == [1, 0]
    assert aligner.add(0, "b", 0, "b0") == [(0, 0, ["a0", "b0"]), (1, 0, ["a1", "b1"])]


def test_flags_are_or_ed_over_the_inputs() -> None:
    aligner = EpochAligner({"a": 0, "b": 1})
    assert aligner.add(0, "a", FLAG_CHECKPOINT, "a0") == []
    assert aligner.add(0, "b", 0, "b0") == [(0, FLAG_CHECKPOINT, ["a0", "b0"])]
    assert aligner.add(1, "a", 0, "a1") == []
    assert aligner.add(1, "b", FLAG_CHECKPOINT, "b1") == [(1, FLAG_CHECKPOINT, ["a1", "b1"])]
    assert aligner.add(2, "a", 2, "a2") == []
    assert aligner.add(2, "b", FLAG_CHECKPOINT, "b2") == [(2, 2 | FLAG_CHECKPOINT, ["a2", "b2"])]
    assert aligner.add(3, "a", 0, "a3") == []
    assert aligner.add(3, "b", 0, "b3") == [(3, 0, ["a3", "b3"])]  # a flag never leaks into the next epoch


def test_flags_of_a_held_epoch_are_kept_until_it_is_handed_out() -> None:
    aligner = EpochAligner({"a": 0, "b": 1})
    assert aligner.add(1, "b", FLAG_CHECKPOINT, "b1") == []
    assert aligner.add(0, "b", 0, "b0") == []
    assert aligner.add(0, "a", 0, "a0") == [(0, 0, ["a0", "b0"])]
    assert aligner.add(1, "a", 0, "a1") == [(1, FLAG_CHECKPOINT, ["a1", "b1"])]


def test_empty_items_count_as_delivered() -> None:
    aligner = EpochAligner({"a": 0, "b": 1})
    assert aligner.add(0, "a", 0, EMPTY) == []
    assert aligner.add(0, "b", 0, []) == [(0, 0, [EMPTY, []])]
