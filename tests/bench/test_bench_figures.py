"""The issue-15 figures of ``python -m bench`` at tiny sizes: they run through the real server and come out sane.

Each figure goes through a real supervisor and spawned worker, as in the full benchmark; the
sizes are small enough that the file stays a few seconds. No speed is asserted, only shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.__main__ as bench_main
import bench.tap as bench_tap
from actors.nodelogic import NodeLogic
from bench.__main__ import chain_cost_us, chain_rps, median_latency, median_of, startup_s
from bench.plot import plot_figures
from bench.state import aggregate_ceiling_rps, checkpoint_figures, held_state_dag
from bench.tap import feature_removed, tap_figures
from bench.workloads import chain_dag
from graphs.loader import load_dag_dict


def test_chain_dag_is_a_valid_line_of_n_calculation_nodes() -> None:
    dag = load_dag_dict(chain_dag("chain4", 10, "/nowhere.json", 4))
    assert len(dag.nodes) == 4 + 2  # ingest and publish around the n hops
    assert [(e.from_node, e.to_node) for e in dag.edges][:2] == [("ingest", "hop1"), ("hop1", "hop2")]


def test_chain_cost_fit_recovers_a_and_b_from_exact_points() -> None:
    rps = {str(n): 1e6 / (4.0 + 0.5 * n) for n in (3, 10, 30)}  # 1/rps = 4 µs + 0.5 µs per node
    fit = chain_cost_us(rps)
    assert fit["a"] == pytest.approx(4.0)
    assert fit["b"] == pytest.approx(0.5)


def test_chain_rps_runs_every_length_through_a_worker(tmp_path: Path) -> None:
    rps = chain_rps(2000, tmp_path, lengths=(1, 3))
    assert set(rps) == {"1", "3"}
    assert all(v > 0 for v in rps.values())


def test_startup_counts_seconds_until_all_idle_dags_run(tmp_path: Path) -> None:
    seconds = startup_s(6, tmp_path)
    assert 0 < seconds < 120


def test_plot_writes_a_png_with_both_panels(tmp_path: Path) -> None:
    figures = {
        "chain_rps": {"3": 120_000.0, "10": 60_000.0, "30": 25_000.0},
        "chain_cost_us": {"a": 4.0, "b": 1.2},
        "latency": {str(r): {"p50_ms": 0.3, "p99_ms": 0.8, "max_ms": 3.0} for r in (1000, 5000, 20000)},
        "python": "3.11", "cpu": "test",
    }
    path = plot_figures(figures, tmp_path / "docs" / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_a_throughput_figure_is_the_median_of_its_runs() -> None:
    runs = iter([50.0, 200.0, 180.0])  # a slow first run does not decide the figure
    assert median_of(3, lambda factor: next(runs) * factor, 2) == 360.0


def test_a_latency_figure_is_the_run_with_the_median_p99(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runs = iter([{"p50_ms": 0.5, "p99_ms": 9.0, "max_ms": 12.0}, {"p50_ms": 0.4, "p99_ms": 1.0, "max_ms": 2.0},
                 {"p50_ms": 0.6, "p99_ms": 1.5, "max_ms": 3.0}])
    monkeypatch.setattr(bench_main, "latency", lambda rate, seconds, tmp: next(runs))
    assert median_latency(3, 5000, 1.0, tmp_path) == {"p50_ms": 0.6, "p99_ms": 1.5, "max_ms": 3.0}


def test_the_aggregate_figures_run_through_a_worker_and_a_checkpoint(tmp_path: Path) -> None:
    """aggregate_rps_1w (a keyed tumbling sum in a real worker), its plain-loop ceiling, and the
    snapshot + write of a checkpoint holding many groups: shapes only."""
    assert bench_main.aggregate_rps(3000, tmp_path) > 0
    assert aggregate_ceiling_rps(3000) > 0
    figures = checkpoint_figures(2000)
    assert figures["groups"] == 2000 and figures["bytes"] > 2000 * 8
    assert figures["snapshot_ms"] > 0 and figures["write_ms"] > 0


def test_latency_with_a_held_state_runs_through_a_worker(tmp_path: Path) -> None:
    dag = load_dag_dict(held_state_dag("held", 10, "/nowhere.json", 1000.0, 5))
    assert [(e.from_node, e.to_node) for e in dag.edges][-2:] == [("value", "held"), ("held", "publish")]
    latency = bench_main.state_latency(1000.0, 0.3, 1000, tmp_path)
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
def test_tap_figures_compare_the_feature_removed_closed_and_open() -> None:
    figures = tap_figures(3000, repeats=1)
    assert set(figures) == {"tap_none_rps", "tap_closed_rps", "tap_open_rps", "tap_closed_ratio", "tap_open_ratio"}
    assert all(value > 0 for value in figures.values())
    public = NodeLogic.run_root
    with feature_removed():
        assert NodeLogic.run_root is NodeLogic._run_root
    assert NodeLogic.run_root is public


def test_tap_bench_runs_one_engine_once_for_an_instruction_count(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["bench.tap", "--once", "open", "--count", "500"])
    bench_tap.main()
    assert capsys.readouterr().out.startswith("open: ")
