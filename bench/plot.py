"""The benchmark picture: throughput vs chain length and latency vs offered load, as one PNG.

:func:`plot_figures` takes the figures of one ``python -m bench`` run (the dict that
``--json`` prints) and draws two panels: the ``chain_rps`` points with the fitted curve
``1 / (a + b·nodes)`` from ``chain_cost_us``, and p50/p99/max of ``latency`` against the
offered rate. Only this module imports matplotlib, and only its Agg canvas (no display).

Usage::

    python -m bench --plot                          # run the bench, write docs/bench.png
    python -m bench --json > run.txt
    python -m bench.plot run.txt -o docs/bench.png  # redraw from a saved run's last line
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "bench.png"
PERCENTILES = (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max"))


def plot_figures(figures: dict[str, Any], path: Path = DEFAULT_PATH) -> Path:
    """Write the two-panel PNG for ``figures`` to ``path`` (folders made as needed); return ``path``."""
    fig = Figure(figsize=(11, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    chain, latency = fig.subplots(1, 2)

    nodes = sorted(int(n) for n in figures["chain_rps"])
    measured = [figures["chain_rps"][str(n)] / 1000 for n in nodes]
    a, b = figures["chain_cost_us"]["a"], figures["chain_cost_us"]["b"]
    xs = [1 + i * (max(nodes) * 1.1 - 1) / 200 for i in range(201)]
    chain.plot(xs, [1000 / (a + b * x) for x in xs], "-", color="tab:gray",
               label=f"fit 1 / ({a:.2f} + {b:.2f}·n) µs")
    chain.plot(nodes, measured, "o", color="tab:blue", label="measured")
    for n, value in zip(nodes, measured, strict=True):
        chain.annotate(f"{value:,.0f}k", (n, value), textcoords="offset points", xytext=(6, 6))
    chain.set_xlabel("PassthruCalculator nodes in the chain (n)")
    chain.set_ylabel("throughput, thousand records/s")
    chain.set_title("Throughput vs chain length (1 worker)")
    chain.set_ylim(bottom=0)
    chain.grid(alpha=0.3)
    chain.legend()

    rates = sorted(int(r) for r in figures["latency"])
    for key, label in PERCENTILES:
        latency.plot(rates, [figures["latency"][str(r)][key] for r in rates], "o-", label=label)
    latency.set_xscale("log")
    latency.set_yscale("log")
    latency.set_xticks(rates, [f"{r:,}" for r in rates])
    latency.xaxis.set_minor_formatter(NullFormatter())
    latency.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    latency.set_xlabel("offered load, records/s")
    latency.set_ylabel("latency, ms (source to sink)")
    latency.set_title("Latency vs offered load (1 worker)")
    latency.grid(alpha=0.3, which="both")
    latency.legend()

    if "python" in figures:
        fig.suptitle(f"dagserver bench: Python {figures['python']}, {figures.get('cpu', '')}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plot")
    parser.add_argument("figures", type=Path, help="output of 'python -m bench --json' (its last line is read)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    last = args.figures.read_text().strip().splitlines()[-1]
    print(plot_figures(json.loads(last), args.output))


if __name__ == "__main__":
    main()
