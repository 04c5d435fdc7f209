"""Whether a test run left something in the checkout (tests write only to temporary folders).

:func:`tree_entries` lists what ``git status`` reports, ignored files included (``var/users.json``
is ignored by git, and exactly what must not appear); :func:`left_behind` is what a run added.
Caches that Python and pytest keep by design (``__pycache__``, ``.pytest_cache``) and the set-up
(``.venv``, ``*.egg-info``) do not count. ``tests/conftest.py`` compares the two ends of a run::

    before = tree_entries(ROOT)          # None outside a git checkout, or without git
    ...
    left_behind(before, tree_entries(ROOT), allowed=["docs/screenshots/"])   # ["?? var/users.json"]
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

NOT_COUNTED = (".venv/", ".pytest_cache/", ".ruff_cache/")
NOT_COUNTED_PARTS = ("__pycache__", ".egg-info")


def tree_entries(root: Path) -> set[str] | None:
    """``git status --porcelain --ignored`` lines of the checkout at ``root``; None when it is not one."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        top = subprocess.run([git, "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=30)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return None
        status = subprocess.run([git, "-C", str(root), "status", "--porcelain", "--ignored", "--untracked-files=all"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(status.stdout.splitlines()) if status.returncode == 0 else None


def _counted(line: str, allowed: Iterable[str]) -> bool:
    path = line[3:].strip('"')
    if path.startswith((*NOT_COUNTED, *allowed)):
        return False
    return not any(part in path for part in NOT_COUNTED_PARTS)


def left_behind(before: set[str] | None, after: set[str] | None, allowed: Iterable[str] = ()) -> list[str]:
    """The status lines a run added (sorted), leaving out caches, the set-up and ``allowed`` path prefixes."""
    if before is None or after is None:
        return []
    allowed = tuple(allowed)
    return sorted(line for line in after - before if _counted(line, allowed))
