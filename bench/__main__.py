"""``python -m bench [--quick] [--json] [--plot] [--kafka] [--redis] [--peers] [--state]``: throughput, latency,
scaling.

Every engine figure goes through the server's own machinery (supervisor, spawned worker
processes, actors, msgpack); the ceilings are plain Python loops doing the same work in
this process. With ``--json`` the last line of stdout is one JSON object. ``--kafka``
starts a local broker and adds ``kafka_rps_1w`` / ``kafka_raw_rps`` (see bench/kafka.py);
``--redis`` uses the local Redis and PostgreSQL and adds ``redis_rps_1w`` / ``redis_raw_rps``
and ``sql_rps_1w`` / ``sql_raw_rps`` (see bench/redis.py). ``--plot`` draws docs/bench.png
(throughput vs chain length, latency vs offered load; see bench/plot.py). ``--peers`` runs only
the comparison with Bytewax and Quix Streams (see bench/peers.py) and prints its table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ceiling import ceiling_msgpack_rps, ceiling_rps
from bench.kafka import Broker, kafka_figures
from bench.peers import peers_rows
from bench.plot import plot_figures
from bench.redis import redis_figures
from bench.scrape import scrape_figures
from bench.serving import running
from bench.state import aggregate_ceiling_rps, aggregate_dag, checkpoint_figures, held_state_dag
from bench.tap import tap_figures
from bench.workloads import chain_dag, idle_dag, pipeline_dag
from supervision.config import ServerConfig
from supervisor import Supervisor

REPEATS = 3  # the figures the targets are set on (throughputs, latencies): the median of this many runs


def median_of(repeats: int, measure: Callable[..., float], *args: Any) -> float:
    """The median of ``repeats`` runs of ``measure(*args)``: one slow first run (a cold start, the
    machine busy elsewhere) does not decide a ratio."""
    return statistics.median(measure(*args) for _ in range(repeats))


def run_server(dags: list[dict[str, Any]], workers: int, results: list[Path], timeout: float = 120.0) -> list[dict]:
    """Start a supervisor with ``dags`` on ``workers`` processes; wait for every result file."""
    with running(dags, workers):
        deadline = time.monotonic() + timeout
        while not all(p.exists() for p in results):
            if time.monotonic() > deadline:
                raise SystemExit(f"bench run timed out after {timeout:g}s")
            time.sleep(0.05)
        return [json.loads(p.read_text()) for p in results]


def engine_rps(count: int, workers: int, tmp: Path, diamond: bool = False) -> float:
    results = [tmp / f"r{w}-{diamond}-{time.monotonic_ns()}.json" for w in range(workers)]
    dags = [pipeline_dag(f"bench{w}", count, str(results[w]), worker=w, diamond=diamond) for w in range(workers)]
    out = run_server(dags, workers, results)
    return sum(r["count"] for r in out) / max(r["seconds"] for r in out)


def latency(rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    result = tmp / f"lat-{int(rate)}-{time.monotonic_ns()}.json"
    dag = pipeline_dag("latency", int(rate * seconds), str(result), rate=rate, worker=0)
    return run_server([dag], 1, [result])[0]["latency_ms"]


def median_latency(repeats: int, rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    """Of ``repeats`` latency runs at ``rate``, the one with the median p99 (its p50, p99 and max): a p99
    from one 5-second run on a shared 2-core machine moves by 2x from one run to the next."""
    runs = sorted((latency(rate, seconds, tmp) for _ in range(repeats)), key=lambda run: run["p99_ms"])
    return runs[len(runs) // 2]


def aggregate_rps(count: int, tmp: Path) -> float:
    """Records/s through a keyed 1-minute tumbling sum over 10,000 keys (bench/state.py), one worker."""
    result = tmp / f"aggregate-{time.monotonic_ns()}.json"
    out = run_server([aggregate_dag("aggregate", count, str(result))], 1, [result])[0]
    return float(out["count"] / out["seconds"])


def state_latency(rate: float, seconds: float, groups: int, tmp: Path) -> dict[str, float]:
    """Latency at ``rate`` through the pipeline with a node whose state of ``groups`` entries every
    checkpoint snapshots (bench/state.py), and how many snapshots were taken while the records flowed."""
    result = tmp / f"held-{groups}-{time.monotonic_ns()}.json"
    dag = held_state_dag("held", int(rate * seconds), str(result), rate, groups)
    out = run_server([dag], 1, [result])[0]
    return {**out["latency_ms"], "snapshots": float(out.get("snapshots", 0))}


def state_latency_pairs(repeats: int, rate: float, seconds: float, groups: int, tmp: Path) -> dict[str, Any]:
    """``repeats`` pairs of latency runs, without state then with ``groups`` entries, one pair after the
    other: per state size the run with the median p99, and the median of the pairs' p99 ratios."""
    pairs = [(state_latency(rate, seconds, 0, tmp), state_latency(rate, seconds, groups, tmp)) for _ in range(repeats)]
    ratios = sorted(held["p99_ms"] / empty["p99_ms"] for empty, held in pairs)
    middle = len(pairs) // 2
    return {"runs": {str(size): sorted((pair[i] for pair in pairs), key=lambda run: run["p99_ms"])[middle]
                     for i, size in enumerate((0, groups))},
            "p99_ratio": ratios[middle], "p99_ratios": ratios}


def state_figures(count: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """The state figures (bench/state.py): the aggregate against its plain loop, a checkpoint of 100,000
    groups, and the latency with and without a large state."""
    # the engine and its plain loop in turns: a machine busy elsewhere moves both of a pair alike
    pairs = [(aggregate_rps(count // 2, tmp), aggregate_ceiling_rps(count // 2)) for _ in range(REPEATS)]
    ratios = sorted(engine / ceiling for engine, ceiling in pairs)
    latency_pairs = state_latency_pairs(REPEATS, 5000, seconds, 100_000, tmp)
    return {"aggregate_rps_1w": statistics.median(engine for engine, _ in pairs),
            "aggregate_ceiling_rps": statistics.median(ceiling for _, ceiling in pairs),
            "aggregate_ratio": ratios[len(ratios) // 2], "aggregate_ratios": ratios,
            "checkpoint_100k_groups": checkpoint_figures(100_000),
            "latency_with_state": latency_pairs["runs"],
            "latency_with_state_p99_ratio": latency_pairs["p99_ratio"],
            "latency_with_state_p99_ratios": latency_pairs["p99_ratios"]}


def state_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The printed rows of :func:`state_figures`."""
    return [
        ("keyed 1-min tumbling sum, 10k keys, 1 worker",
         f"{figures['aggregate_rps_1w']:,.0f} rec/s ({figures['aggregate_ratio']:.2f} x a plain dict loop, "
         f"median of pairs: {', '.join(f'{r:.2f}' for r in figures['aggregate_ratios'])}; "
         f"loop {figures['aggregate_ceiling_rps']:,.0f} rec/s)"),
        ("checkpoint of 100k groups", "snapshot {snapshot_ms:.0f} ms, write {write_ms:.0f} ms, {bytes:,.0f} bytes"
         .format(**figures["checkpoint_100k_groups"])),
        *[(f"latency at 5000 rec/s, node state of {groups} entries",
           "p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms, max {max_ms:.2f} ms, {snapshots:.0f} snapshots".format(**lat))
          for groups, lat in figures["latency_with_state"].items()],
        ("p99 with state / without (median of pairs)", "{:.2f} x (pairs: {})".format(
            figures["latency_with_state_p99_ratio"],
            ", ".join(f"{r:.2f}" for r in figures["latency_with_state_p99_ratios"]))),
    ]


def chain_rps(count: int, tmp: Path, lengths: tuple[int, ...] = (3, 10, 30)) -> dict[str, float]:
    """Records/s through a chain of n PassthruCalculator nodes (one worker), keyed by ``str(n)``."""
    figures = {}
    for n in lengths:
        result = tmp / f"chain{n}-{time.monotonic_ns()}.json"
        out = run_server([chain_dag(f"chain{n}", count, str(result), n)], 1, [result])[0]
        figures[str(n)] = out["count"] / out["seconds"]
    return figures


def chain_cost_us(rps: dict[str, float]) -> dict[str, float]:
    """Least-squares fit of 1/rps = a + b·n over the chain lengths n: ``{"a", "b"}`` in µs per record.

    ``a`` is the fixed cost of a record (source, sink, process hops), ``b`` what each node adds.
    """
    slope, intercept = statistics.linear_regression([float(n) for n in rps], [1e6 / v for v in rps.values()])
    return {"a": intercept, "b": slope}


def start_idle(folder: Path, count: int, workers: int) -> tuple[Any, float]:
    """A supervisor running ``count`` idle DAGs spread over ``workers``, once all are running,
    and the seconds from ``Supervisor.start()`` until they all were."""
    folder.mkdir()
    for i in range(count):
        (folder / f"idle{i}.json").write_text(json.dumps(idle_dag(f"idle{i}", i % workers)))
    supervisor = Supervisor(ServerConfig(workers=workers, dags=(str(folder),), state_dir=str(folder / "s")),
                            "WARNING")
    supervisor.load()
    started = time.perf_counter()
    supervisor.start()
    deadline = time.monotonic() + 120
    while sum(1 for w in supervisor.workers for d in w.details.values() if d.get("state") == "running") < count:
        if time.monotonic() > deadline:
            supervisor.shutdown()
            raise SystemExit("idle DAGs did not start")
        time.sleep(0.02)
    return supervisor, time.perf_counter() - started


def startup_s(count: int, tmp: Path, workers: int = 2) -> float:
    """Seconds from ``Supervisor.start()`` until ``count`` idle DAGs on ``workers`` are all running."""
    supervisor, seconds = start_idle(tmp / f"startup{count}", count, workers)
    supervisor.shutdown()
    return seconds


def scrape_ms(count: int, tmp: Path) -> float:
    """Median time to render /metrics for ``count`` DAGs (the supervisor's side of a scrape)."""
    supervisor, _ = start_idle(tmp / f"scrape{count}", count, 2)
    try:
        times = []
        for _ in range(11):
            start = time.perf_counter()
            supervisor.metrics_text()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2] * 1000
    finally:
        supervisor.shutdown()


def rss_mb_per_dag(extra: int, tmp: Path) -> float:
    """Resident memory a worker gains per additional (idle) DAG."""
    sizes = []
    for n in (1, 1 + extra):
        supervisor, _ = start_idle(tmp / f"rss{n}", n, 1)
        try:
            time.sleep(0.5)  # let the actors settle before reading the resident size
            status = Path(f"/proc/{supervisor.workers[0].pid}/status").read_text()
            sizes.append(int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]))
        finally:
            supervisor.shutdown()
    return (sizes[1] - sizes[0]) / extra / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller runs, under 90 s on 2 cores")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of all figures")
    parser.add_argument("--kafka", action="store_true",
                        help="also Kafka: topic -> DAG -> topic against a plain kafka-python loop, on a local broker")
    parser.add_argument("--redis", action="store_true",
                        help="also Redis and SQL: stream -> DAG -> stream / PostgreSQL against plain loops")
    parser.add_argument("--plot", action="store_true", help="also draw docs/bench.png (see bench/plot.py)")
    parser.add_argument("--state", action="store_true",
                        help="only the state figures (aggregate, checkpoint, latency with state; see bench/state.py)")
    parser.add_argument("--peers", action="store_true",
                        help="only the comparison with Bytewax / Quix Streams when installed (see bench/peers.py)")
    args = parser.parse_args(argv)
    if args.peers:
        with tempfile.TemporaryDirectory(prefix="dagserver-bench-") as tmpdir:
            print("\n".join(peers_rows(50_000 if args.quick else 200_000,
                                       lambda rate, seconds: latency(rate, seconds, Path(tmpdir)))))
        return 0
    count = 100_000 if args.quick else 400_000
    seconds = 2.0 if args.quick else 5.0
    if args.state:
        with tempfile.TemporaryDirectory(prefix="dagserver-bench-") as tmpdir:
            figures = state_figures(count, seconds, Path(tmpdir))
        for name, value in state_rows(figures):
            print(f"  {name:<46}  {value}")
        if args.json:
            print(json.dumps(figures))
        return 0
    idle = 40 if args.quick else 200
    with tempfile.TemporaryDirectory(prefix="dagserver-bench-") as tmpdir:
        tmp = Path(tmpdir)
        figures: dict[str, Any] = {
            "ceiling_rps": median_of(REPEATS, ceiling_rps, count),
            "ceiling_msgpack_rps": ceiling_msgpack_rps(count),
            "engine_rps_1w": median_of(REPEATS, engine_rps, count, 1, tmp),
            "engine_rps_2w": median_of(REPEATS, engine_rps, count, 2, tmp),
            "diamond_rps_1w": engine_rps(count, 1, tmp, diamond=True),
            "chain_rps": chain_rps(30_000 if args.quick else 150_000, tmp),
            **state_figures(count, seconds, tmp),
            "latency": {str(rate): median_latency(REPEATS, rate, seconds, tmp) for rate in (1000, 5000, 20000)},
            "rss_mb_per_dag": rss_mb_per_dag(idle, tmp),
            "rss_idle_dags": idle,
            "startup_s_200_dags": startup_s(200, tmp),
            "scrape_ms_100_dags": scrape_ms(100, tmp),
            **scrape_figures(100, 50_000),
            **tap_figures(50_000 if args.quick else 100_000, 5 if args.quick else 7),
            "python": platform.python_version(),
            "cpu": cpu_name(),
        }
        if args.kafka:
            with Broker() as broker:
                figures.update(kafka_figures(broker.bootstrap, 20_000 if args.quick else 100_000))
        if args.redis:
            figures.update(redis_figures(20_000 if args.quick else 100_000))
    figures["chain_cost_us"] = chain_cost_us(figures["chain_rps"])
    rows = [
        ("plain loop ceiling", f"{figures['ceiling_rps']:,.0f} rec/s"),
        ("plain loop + msgpack/100", f"{figures['ceiling_msgpack_rps']:,.0f} rec/s"),
        ("engine, 1 worker", f"{figures['engine_rps_1w']:,.0f} rec/s "
                             f"({figures['engine_rps_1w'] / figures['ceiling_rps']:.2f} x ceiling)"),
        ("engine, 2 workers", f"{figures['engine_rps_2w']:,.0f} rec/s "
                              f"({figures['engine_rps_2w'] / figures['engine_rps_1w']:.2f} x 1 worker)"),
        ("diamond, 1 worker", f"{figures['diamond_rps_1w']:,.0f} rec/s"),
        *[(f"chain of {n} passthru nodes, 1 worker", f"{rps:,.0f} rec/s") for n, rps in figures["chain_rps"].items()],
        *state_rows(figures),
        ("chain fit 1/rps = a + b*nodes", "a {a:.2f} us, b {b:.2f} us per node".format(**figures["chain_cost_us"])),
        *[(f"latency at {rate} rec/s", "p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms, max {max_ms:.2f} ms".format(**lat))
          for rate, lat in figures["latency"].items()],
        (f"memory per idle DAG ({idle} DAGs)", f"{figures['rss_mb_per_dag']:.2f} MB"),
        ("startup of 200 idle DAGs, 2 workers", f"{figures['startup_s_200_dags']:.2f} s"),
        ("/metrics with 100 DAGs", f"{figures['scrape_ms_100_dags']:.1f} ms"),
        ("/metrics, 100 DAGs of 50 KB records", f"{figures['metrics_render_ms_100_dags_50kb']:.1f} ms"),
        ("tap: none open vs feature removed (CPU)", f"{figures['tap_closed_rps']:,.0f} vs "
                                                    f"{figures['tap_none_rps']:,.0f} rec/s "
                                                    f"({figures['tap_closed_ratio']:.3f} x)"),
        ("tap: one open vs none open (CPU)", f"{figures['tap_open_rps']:,.0f} rec/s "
                                             f"({figures['tap_open_ratio']:.3f} x)"),
        ("heartbeat, 100 DAGs of 50 KB records", f"{figures['heartbeat_ms_100_dags_50kb']:.1f} ms, "
                                                 f"{figures['heartbeat_bytes_100_dags_50kb'] / 1e6:.2f} MB"),
    ]
    if args.kafka:
        engine, raw = figures["kafka_rps_1w"], figures["kafka_raw_rps"]
        rows.append(("kafka: engine vs plain loop", f"{engine:,.0f} vs {raw:,.0f} rec/s ({engine / raw:.2f} x)"))
    if args.redis:
        for label, engine, raw in (("redis stream", figures["redis_rps_1w"], figures["redis_raw_rps"]),
                                   ("stream -> postgres", figures["sql_rps_1w"], figures["sql_raw_rps"])):
            rows.append((f"{label}: engine vs plain loop", f"{engine:,.0f} vs {raw:,.0f} rec/s ({engine / raw:.2f} x)"))
    width = max(len(name) for name, _ in rows)
    print(f"dagserver bench ({'quick' if args.quick else 'full'}): Python {figures['python']}, {figures['cpu']}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.plot:
        print(f"  plot written to {plot_figures(figures)}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
