"""The check that a test run leaves the checkout as it found it (tests/support/checkout.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.checkout import left_behind, tree_entries


def git_checkout(folder: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / ".gitignore").write_text("var/\n__pycache__/\n")
    (folder / "kept.txt").write_text("kept\n")
    subprocess.run(["git", "-C", str(folder), "add", "."], check=True)
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "commit", "-q", "-m", "start"], check=True)
    return folder


def test_new_files_ignored_ones_included_are_left_behind(tmp_path: Path) -> None:
    root = git_checkout(tmp_path / "repo")
    before = tree_entries(root)
    (root / "var").mkdir()
    (root / "var" / "users.json").write_text("{}")
    (root / "kept.txt").write_text("changed\n")
    (root / "shots").mkdir()
    (root / "shots" / "a.png").write_bytes(b"png")
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"")
    assert left_behind(before, tree_entries(root), allowed=["shots/"]) == [" M kept.txt", "!! var/users.json"]


def test_outside_a_checkout_nothing_is_checked(tmp_path: Path) -> None:
    assert tree_entries(tmp_path) is None
    assert left_behind(None, None) == []
