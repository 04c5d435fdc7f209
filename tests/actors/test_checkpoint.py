"""Checkpoint files on their own (``actors/checkpoint.py``, SPEC §3): no runtime, just the file.

Covered: ``checkpoint_path``; a write reads back whole (and replaces the previous one);
atomicity: a crash between writing the ``.tmp`` and the rename leaves the old checkpoint
readable, and the next write goes through; the file is fsynced before the rename and the
directory after it; no file is no checkpoint (and no error); an unreadable file, or one not
shaped like a checkpoint, reads as None and is logged. Restoring a runtime from a
checkpoint is in ``test_checkpoint_restore.py``.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors import checkpoint as checkpoint_module
from actors.checkpoint import checkpoint_path, read_checkpoint, shape_problem, write_checkpoint

NAME = "restore"
LOGGER = "dagserver.checkpoint"
CHECKPOINT: dict[str, Any] = {
    "dag": NAME,
    "written_at": 1_700_000_000.5,
    "positions": {"in": 120, "orders": {"partition": 0, "offset": 7}},
    "nodes": {"ingest": {"input": {"v": 1}, "output": {"v": 1}, "latest": None},
              "clock": {"input": {}, "output": {}, "latest": {"price": 2.5}}},
    "ticks": {"clock": 4},
}


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_the_path_is_the_dag_name_in_the_state_dir(tmp_path: Path) -> None:
    assert checkpoint_path(tmp_path, "prices") == tmp_path / "prices.ckpt"
    assert checkpoint_path(str(tmp_path), "prices") == tmp_path / "prices.ckpt"
    # each replica of a DAG run as several keeps its own (SPEC §5)
    assert checkpoint_path(tmp_path, "prices", 1) == tmp_path / "prices" / "replica-1" / "prices.ckpt"
    assert checkpoint_path(tmp_path, "prices", 0) != checkpoint_path(tmp_path, "prices")


def test_a_written_checkpoint_reads_back_whole(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path / "state" / "nested", NAME)  # missing folders are made
    write_checkpoint(path, CHECKPOINT)
    assert read_checkpoint(path) == CHECKPOINT
    assert msgpack.unpackb(path.read_bytes()) == CHECKPOINT  # plain msgpack on disk
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{NAME}.ckpt"]  # no .tmp left behind


def test_a_new_write_replaces_the_old_checkpoint(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path, NAME)
    write_checkpoint(path, CHECKPOINT)
    newer = {**CHECKPOINT, "positions": {"in": 240}}
    write_checkpoint(path, newer)
    assert read_checkpoint(path) == newer


def test_no_file_is_no_checkpoint_and_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert read_checkpoint(checkpoint_path(tmp_path, NAME)) is None
    assert logged(caplog) == []


def test_a_write_that_fails_before_its_rename_leaves_the_old_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = checkpoint_path(tmp_path / "state", NAME)
    old = {"dag": NAME, "positions": {"in": 1}, "nodes": {}, "ticks": {}}
    write_checkpoint(path, old)
    assert read_checkpoint(path) == old
    assert not path.with_name(path.name + ".tmp").exists()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("power went out")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power went out"):
        write_checkpoint(path, {**old, "positions": {"in": 2}})
    monkeypatch.undo()
    assert read_checkpoint(path) == old  # never half of one: the old checkpoint, whole
    assert path.with_name(path.name + ".tmp").exists()

    new = {**old, "positions": {"in": 3}}
    write_checkpoint(path, new)  # the next write simply replaces the leftover
    assert read_checkpoint(path) == new
    assert not path.with_name(path.name + ".tmp").exists()


def test_the_tmp_file_is_complete_and_fsynced_before_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = checkpoint_path(tmp_path, NAME)
    seen: list[Any] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        seen.append(read_checkpoint(Path(src)))  # what is about to become the checkpoint
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    write_checkpoint(path, CHECKPOINT)
    assert seen == [CHECKPOINT]


def test_the_checkpoint_directory_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "fsync", fsync)
    monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    path = checkpoint_module.checkpoint_path(tmp_path / "state", "d")
    checkpoint_module.write_checkpoint(path, {"positions": {}, "nodes": {}})
    assert events == ["fsync file", "rename", "fsync dir"]
    assert checkpoint_module.read_checkpoint(path) == {"positions": {}, "nodes": {}}


def test_the_directory_is_closed_even_when_its_fsync_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    closed: list[int] = []
    real_open, real_close, real_fsync = os.open, os.close, os.fsync

    def track_open(path: Any, flags: int, *args: Any) -> int:
        fd = real_open(path, flags, *args)
        if flags & os.O_DIRECTORY:  # the folder's descriptor (the file's is closed by its file object)
            opened.append(fd)
        return fd

    def track_close(fd: int) -> None:
        if fd in opened:
            closed.append(fd)
        real_close(fd)

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError("no fsync on this folder")
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_module.os, "open", track_open)
    monkeypatch.setattr(checkpoint_module.os, "close", track_close)
    monkeypatch.setattr(checkpoint_module.os, "fsync", fsync)
    path = checkpoint_path(tmp_path, NAME)
    with pytest.raises(OSError, match="no fsync"):
        write_checkpoint(path, CHECKPOINT)
    assert opened and opened == closed
    monkeypatch.undo()
    assert read_checkpoint(path) == CHECKPOINT  # the rename itself had happened


UNREADABLE: dict[str, bytes] = {
    "empty file": b"",
    "truncated": msgpack.packb(CHECKPOINT)[:25],
    "trailing bytes": msgpack.packb(CHECKPOINT) + b"\x00junk",
    "not msgpack": b"\xc1\xc1\xc1",
    "text": b'{"positions": {}}',
}


@pytest.mark.parametrize("raw", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_file_is_no_checkpoint_and_is_logged(
        tmp_path: Path, raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    path = checkpoint_path(tmp_path, NAME)
    path.write_bytes(raw)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert read_checkpoint(path) is None
    messages = logged(caplog)
    assert len(messages) == 1, messages
    assert str(path) in messages[0] and "unreadable" in messages[0]


WRONG_SHAPE: dict[str, tuple[Any, str]] = {
    "a list": ([1, 2, 3], "a list, not a map"),
    "a string": ("checkpoint", "a str, not a map"),
    "positions not a map": ({"positions": "garbage", "nodes": {}}, "'positions' is a str"),
    "nodes not a map": ({"positions": {}, "nodes": 5}, "'nodes' is a int"),
    "ticks not a map": ({"positions": {}, "nodes": {}, "ticks": [1]}, "'ticks' is a list"),
    "node state not a map": ({"nodes": {"ingest": [1, 2]}}, "the state of node 'ingest' is a list"),
    "node input not a map": ({"nodes": {"ingest": {"input": [1], "output": {}}}}, "the input of node 'ingest'"),
    "node output not a map": ({"nodes": {"ingest": {"input": {}, "output": "x"}}}, "the output of node 'ingest'"),
}


@pytest.mark.parametrize(("data", "problem"), WRONG_SHAPE.values(), ids=WRONG_SHAPE.keys())
def test_a_file_not_shaped_like_a_checkpoint_is_no_checkpoint_and_is_logged(
        tmp_path: Path, data: Any, problem: str, caplog: pytest.LogCaptureFixture) -> None:
    path = checkpoint_path(tmp_path, NAME)
    path.write_bytes(msgpack.packb(data))
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert read_checkpoint(path) is None
    messages = logged(caplog)
    assert len(messages) == 1, messages
    assert str(path) in messages[0] and "not a checkpoint" in messages[0] and problem in messages[0]


@pytest.mark.parametrize("data", [
    {}, {"positions": None, "nodes": None, "ticks": None}, {"nodes": {"n": {}}},
    {"nodes": {"n": {"input": None, "output": None, "latest": [1]}}}, CHECKPOINT,
], ids=["empty", "null sections", "empty node state", "null input and output", "full"])
def test_what_counts_as_a_checkpoint(data: dict[str, Any]) -> None:
    assert shape_problem(data) is None


def test_two_writers_of_one_checkpoint_take_turns(tmp_path: Path) -> None:
    """A saver torn down mid-write may still be writing when its successor writes the same file: they
    share the ``.tmp`` file, so they must not interleave (a rename would find it gone)."""
    path = checkpoint_path(tmp_path, NAME)
    failures: list[BaseException] = []

    def write(tag: int) -> None:
        try:
            for i in range(25):
                write_checkpoint(path, {**CHECKPOINT, "ticks": {"writer": tag, "n": i}})
        except BaseException as exc:
            failures.append(exc)

    writers = [threading.Thread(target=write, args=(tag,)) for tag in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
    assert failures == []
    assert read_checkpoint(path)["ticks"]["n"] == 24  # whole, and the last write of one of them
