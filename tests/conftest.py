"""Shared test setup: make the project root importable, so ``tests.support.userclasses.X`` resolves."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
