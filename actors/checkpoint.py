"""Checkpoints: a DAG's node state and source positions, written atomically (SPEC §3).

One msgpack file per DAG, ``STATE_DIR/DAG.ckpt``, replaced by write-then-rename so a
crash leaves either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import msgpack

log = logging.getLogger("dagserver.checkpoint")


def checkpoint_path(state_dir: str | os.PathLike[str], dag_name: str) -> Path:
    return Path(state_dir) / f"{dag_name}.ckpt"


def write_checkpoint(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(msgpack.packb(data, use_bin_type=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``; None if there is none or it cannot be read (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:
        log.error("checkpoint %s is unreadable (%s); starting without it", path, exc)
        return None
    return data if isinstance(data, dict) else None
