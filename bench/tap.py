"""``python -m bench.tap``: what a node's tap costs (SPEC §13), in the in-process pipeline.

Three engines over the same 4-node pipeline (:mod:`bench.inprocess`), run in turns so a busy
moment on the machine spreads over all three, each figure the best of its runs (other work on
the machine only ever slows a run down). Records per second of the process's CPU time, not
of the wall clock: on a machine shared with other work, wall-clock runs of the same engine
differ by 20 %, far more than the 3 % this measures.

* ``tap_none_rps``: the feature removed: ``NodeLogic.run_root``/``run_merge`` replaced by their
  untapped bodies, so not even the once-per-epoch look at the tap's flag is left;
* ``tap_closed_rps``: the engine as it ships, nobody reading a tap;
* ``tap_open_rps``: one tap open (node ``value``), read every second as the DAG page does.

``tap_closed_ratio`` (closed / none) should be 1 within a few percent, ``tap_open_ratio``
(open / closed) at least 0.9.

On a busy machine even CPU-time runs of one engine can differ by a fifth. ``--once MODE``
runs one engine once, for counting its instructions, which other work does not change::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.tap --once open --count 24000

(per record: the difference to a run of 4,000, over 20,000; under valgrind a run lasts about
fifty times longer, so the open tap's once-a-second reads weigh that much more than at full speed).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from actors.nodelogic import NodeLogic
from actors.runtime import DagRuntime
from bench.inprocess import inprocess_rps

TAPPED_NODE = "value"
READ_EVERY = 1.0  # seconds: how often the open tap is read (the page polls once a second)


@contextmanager
def feature_removed() -> Iterator[None]:
    """NodeLogic without the tap's per-epoch check (its untapped bodies in place of the public methods)."""
    root, merge = NodeLogic.run_root, NodeLogic.run_merge
    NodeLogic.run_root, NodeLogic.run_merge = NodeLogic._run_root, NodeLogic._run_merge  # type: ignore[method-assign]
    try:
        yield
    finally:
        NodeLogic.run_root, NodeLogic.run_merge = root, merge  # type: ignore[method-assign]


def _none(count: int) -> float:
    with feature_removed():
        return inprocess_rps(count, cpu=True)


def _closed(count: int) -> float:
    return inprocess_rps(count, cpu=True)


def _open(count: int) -> float:
    done = threading.Event()

    def keep_reading(runtime: DagRuntime) -> None:
        tap = runtime.stats.nodes[TAPPED_NODE].tap
        tap.read()

        def reader() -> None:
            after = 0
            while not done.wait(READ_EVERY):
                after = tap.read(after)["newest"]
        threading.Thread(target=reader, daemon=True, name="tap-reader").start()

    try:
        return inprocess_rps(count, prepare=keep_reading, cpu=True)
    finally:
        done.set()


MODES: dict[str, Callable[[int], float]] = {"none": _none, "closed": _closed, "open": _open}


def tap_figures(count: int, repeats: int = 5) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"none": [], "closed": [], "open": []}
    _closed(count // 4)  # warm up: imports, first allocations
    for _ in range(repeats):
        for mode, measure in MODES.items():
            runs[mode].append(measure(count))
    rps = {mode: max(values) for mode, values in runs.items()}
    return {"tap_none_rps": rps["none"], "tap_closed_rps": rps["closed"], "tap_open_rps": rps["open"],
            "tap_closed_ratio": rps["closed"] / rps["none"], "tap_open_ratio": rps["open"] / rps["closed"]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tap")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--once", choices=sorted(MODES), help="run this engine once (to count its instructions)")
    args = parser.parse_args()
    if args.once:
        print(f"{args.once}: {MODES[args.once](args.count):,.0f} rec/s")
        return
    figures = tap_figures(args.count, args.repeats)
    print(f"without the feature: {figures['tap_none_rps']:,.0f} rec/s; no tap open: {figures['tap_closed_rps']:,.0f}"
          f" ({figures['tap_closed_ratio']:.3f} x); one tap open: {figures['tap_open_rps']:,.0f}"
          f" ({figures['tap_open_ratio']:.3f} x)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
