"""The charts' series (SPEC §13): per-second rates and p99 from the DAGs' counters, 15 minutes kept."""

from __future__ import annotations

from typing import Any

from supervision.series import SeriesRecorder, quantile

BOUNDS = [0.001, 0.01, 0.1]


def figures(records_in: int, records_out: int, errors: int, latency: list[int]) -> dict[str, Any]:
    return {"subscribers": {"in": {"records": records_in, "errors": 0}},
            "publishers": {"out": {"records": records_out, "errors": errors}},
            "nodes": {"n": {"errors": 0}},
            "epochs": {"latency_seconds": {"buckets": BOUNDS, "counts": latency}}}


def test_points_are_rates_per_second_and_the_p99_of_that_second() -> None:
    series = SeriesRecorder()
    series.sample({"a": figures(0, 0, 0, [0, 0, 0, 0])}, now=100.0)
    assert series.points("a")["points"] == []  # a rate needs two samples
    series.sample({"a": figures(10, 8, 1, [0, 99, 1, 0])}, now=101.0)
    series.sample({"a": figures(30, 28, 1, [0, 99, 1, 0]), "b": figures(5, 5, 0, [1, 0, 0, 0])}, now=103.0)
    assert series.points("a")["points"] == [[101.0, 10.0, 8.0, 1.0, 0.01], [103.0, 10.0, 10.0, 0.0, None]]
    assert series.points(None)["points"] == [[101.0, 10.0, 8.0, 1.0, 0.01], [103.0, 10.0, 10.0, 0.0, None]]


def test_a_counter_that_went_down_is_a_fresh_start_and_a_deleted_dag_is_forgotten() -> None:
    series = SeriesRecorder(window=2)
    series.sample({"a": figures(50, 50, 0, [5, 0, 0, 0])}, now=1.0)
    series.sample({"a": figures(3, 3, 0, [1, 0, 0, 0])}, now=2.0)  # reloaded: counts began again
    assert series.points("a")["points"] == [[2.0, 0.0, 0.0, 0.0, None]]
    for now in (3.0, 4.0, 5.0):
        series.sample({"a": figures(3 + int(now), 3, 0, [1, 0, 0, 0])}, now=now)
    assert [p[0] for p in series.points("a")["points"]] == [4.0, 5.0]  # the ring keeps the window
    series.sample({}, now=6.0)
    assert series.points("a")["points"] == []


def test_the_p99_is_the_bound_of_the_bucket_that_holds_it() -> None:
    assert quantile([0, 0, 0, 0], BOUNDS) is None
    assert quantile([100, 0, 0, 0], BOUNDS) == 0.001
    assert quantile([0, 98, 1, 1], BOUNDS) == 0.1
    assert quantile([0, 0, 0, 3], BOUNDS) == 0.1  # past the last bound: that bound
