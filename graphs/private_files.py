"""Files only the server's account may read (SPEC §7): mode 0600, in folders 0700.

DAG files the API adds and checkpoints are written through here; the folders the server
creates for them are 0700 (folders that exist already keep their mode: they are the
operator's).

Usage::

    make_private_dirs(Path("var/state/prices/replica-0"))   # each missing level: 0700
    with open_private(Path("var/state/x.ckpt.tmp"), "wb") as fh:   # 0600, even when it existed
        fh.write(payload)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each with mode 0700 (the umask may only narrow it)."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made meanwhile by another writer
            continue


def open_private(path: Path, mode: str = "wb", encoding: str | None = None) -> IO[Any]:
    """Open ``path`` for writing (truncated) with mode 0600, also when it existed with another mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode, encoding=encoding)
