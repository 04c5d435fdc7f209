"""Shared test setup.

* the project root is importable, so ``tests.support.userclasses.X`` resolves;
* Hypothesis keeps no example database, and its caches only in a temporary folder;
* tests never write into the checkout: the run fails when it left a file there that was not
  there before (``git status``, ignored files included; skipped outside a git checkout).
  ``make screenshots`` may write ``docs/screenshots/`` (``DAGSERVER_SCREENSHOTS``).
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support.checkout import left_behind, tree_entries  # noqa: E402  (needs ROOT on sys.path)

settings.register_profile("dagserver", database=None)
settings.load_profile("dagserver")
SCREENSHOTS_ENV = "DAGSERVER_SCREENSHOTS"
_TREE: dict[str, set[str] | None] = {}
_HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="dagserver-hypothesis-")  # removed when the run ends


def pytest_configure(config: pytest.Config) -> None:
    set_hypothesis_home_dir(_HYPOTHESIS_HOME.name)  # not .hypothesis/ in the checkout


def pytest_sessionstart(session: pytest.Session) -> None:
    _TREE["before"] = tree_entries(Path(ROOT))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    allowed = []
    if os.environ.get(SCREENSHOTS_ENV):
        shots = Path(os.environ[SCREENSHOTS_ENV]).resolve()
        if shots.is_relative_to(ROOT):
            allowed.append(f"{shots.relative_to(ROOT)}/")
    left = left_behind(_TREE.get("before"), tree_entries(Path(ROOT)), allowed)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = ("\nthe tests wrote into the checkout (tests must write only to tmp_path):\n  " + "\n  ".join(left))
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
