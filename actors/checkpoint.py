"""Checkpoints: a DAG's node state and source positions, written atomically (SPEC §3).

One msgpack file per DAG, ``STATE_DIR/DAG.ckpt`` (per replica, when a DAG runs several:
``STATE_DIR/DAG/replica-I/DAG.ckpt``, SPEC §5), replaced by write-then-rename, and the
directory fsynced after the rename, so a crash leaves either the old or the new
checkpoint, never half of one, and a finished rename survives a power cut.

A checkpoint that cannot be read, or is not shaped like one, is logged and ignored: the
DAG starts from scratch (its sources' committed positions still hold).

Usage::

    path = checkpoint_path("var/state", "prices")
    write_checkpoint(path, {"positions": {"orders": 120}, "nodes": {...}, "ticks": {}})
    read_checkpoint(path)     # the dict, or None
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import msgpack

from graphs.private_files import make_private_dirs, open_private

log = logging.getLogger("dagserver.checkpoint")

MAP_SECTIONS = ("positions", "nodes", "ticks", "sinks")


def checkpoint_path(state_dir: str | os.PathLike[str], dag_name: str, replica: int | None = None) -> Path:
    """``STATE_DIR/DAG.ckpt``; a replica of a DAG run with ``replicas > 1``: ``STATE_DIR/DAG/replica-I/DAG.ckpt``."""
    if replica is None:
        return Path(state_dir) / f"{dag_name}.ckpt"
    return Path(state_dir) / dag_name / f"replica-{replica}" / f"{dag_name}.ckpt"


def write_checkpoint(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically and durably. Two writers of one path in this process (the
    saver of an incarnation torn down mid-write, and its successor's) take turns: they share the
    ``.tmp`` file."""
    payload = msgpack.packb(data, use_bin_type=True)
    with _lock_of(path):
        make_private_dirs(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        with open_private(tmp, "wb") as fh:  # 0600: a checkpoint holds the DAG's state and positions
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)  # the rename itself is durable only once the directory is
        finally:
            os.close(folder)


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_of(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``; None if there is none or it cannot be used (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory in its place, no permission, an I/O error
        log.error("checkpoint %s cannot be read (%s); starting without it", path, exc.strerror or exc)
        return None
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:
        log.error("checkpoint %s is unreadable (%s); starting without it", path, exc)
        return None
    problem = shape_problem(data)
    if problem:
        log.error("checkpoint %s is not a checkpoint (%s); starting without it", path, problem)
        return None
    return data


def shape_problem(data: Any) -> str | None:
    """What makes ``data`` unusable as a checkpoint, or None."""
    if not isinstance(data, dict):
        return f"a {type(data).__name__}, not a map"
    for key in MAP_SECTIONS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key!r} is a {type(data[key]).__name__}, not a map"
    for node, state in (data.get("nodes") or {}).items():
        if not isinstance(state, dict):
            return f"the state of node {node!r} is a {type(state).__name__}, not a map"
        for key in ("input", "output"):
            if state.get(key) is not None and not isinstance(state[key], dict):
                return f"the {key} of node {node!r} is a {type(state[key]).__name__}, not a map"
    return None
