"""Every DAG file under examples/dags/ passes ``dagserver check`` (the examples are documentation that runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphs.loader import load_dag
from graphs.reference import ReferenceEvaluator
from supervision.replay import read_events

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


def test_the_vwap_example_bars_trades_per_symbol_and_minute() -> None:
    """examples/dags/state/vwap.json on its events: the last bar of each symbol and minute is its final value;
    the INIT trade at 14:30:20 came after the watermark closed 14:30 (late), the ACME one without a
    time is an error; both are dead letters."""
    dag = load_dag(ROOT / "examples" / "dags" / "state" / "vwap.json")
    evaluator = ReferenceEvaluator(dag)
    bars: dict[tuple[str, str], dict] = {}
    for _, subscriber, record in read_events(str(ROOT / "examples" / "events" / "vwap.jsonl"), dag):
        for _, bar in evaluator.ingest(subscriber, record):
            bars[(bar["symbol"], bar["window_start"][11:16])] = bar
    final = {key: (bar["trades"], bar["volume"], round(bar["vwap"], 4)) for key, bar in bars.items()}
    assert final == {("ACME", "14:30"): (3, 700.0, round(7300 / 700, 4)), ("ACME", "14:31"): (2, 150.0, 10.9333),
                     ("INIT", "14:30"): (2, 40.0, 52.875)}
    assert (evaluator.state["per_minute"].late, evaluator.state["per_minute"].errors) == (1, 1)
    assert len(evaluator.dead_letters) == 2
