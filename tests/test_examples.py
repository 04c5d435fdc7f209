"""Every DAG file under examples/dags/ passes ``dagserver check`` (the examples are documentation that runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED_VARIABLES = {"MQ_PASSWORD": "example"}  # what the examples' descriptions say the server needs
EXAMPLES = sorted((ROOT / "examples" / "dags").rglob("*.json"))


def test_there_are_examples_for_the_brokers_and_databases() -> None:
    text = "\n".join(path.read_text() for path in EXAMPLES)
    for scheme in ("kafka://", "redis://stream/", "redischannel://", "sql://", "activemq://", "aerospike://",
                   "file://", "metronome"):
        assert scheme in text, f"no example DAG uses {scheme}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples" / "dags")))
def test_example_passes_check(path: Path) -> None:
    # the service examples take their passwords from ${VAR} templates, which check resolves (SPEC §14)
    env = {**os.environ, **DOCUMENTED_VARIABLES}
    done = subprocess.run([sys.executable, "-m", "supervisor", "check", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: "), done.stdout
