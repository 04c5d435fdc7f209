"""AggregateCalculator (SPEC §11): edges of windows, sessions, lateness, eviction, config, state.

The property tests hold the calculator to a brute-force model that keeps every accepted
record in a list per group (or per session) and computes each aggregate from the list.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs.aggregate import AggregateCalculator
from graphs.aggregate_ops import event_time
from graphs.components import ComponentConfigError
from graphs.state import LateRecord

ALL_OPS = {"n": {"op": "count"}, "total": {"op": "sum", "of": "v"}, "low": {"op": "min", "of": "v"},
           "high": {"op": "max", "of": "v"}, "mean": {"op": "avg", "of": "v"}, "first": {"op": "first", "of": "v"},
           "last": {"op": "last", "of": "v"}, "kinds": {"op": "count_distinct", "of": "v"}}


def calc(**config: Any) -> AggregateCalculator:
    return AggregateCalculator("agg", {"aggregates": ALL_OPS, **config})


# -- running aggregates, no window ---------------------------------------------------------------------
def test_running_aggregates_per_key_skip_what_is_not_a_number() -> None:
    c = calc(key=["k"])
    assert c.calculate({"k": "a", "v": 2}) == {"k": "a", "n": 1, "total": 2.0, "low": 2.0, "high": 2.0,
                                               "mean": 2.0, "first": 2, "last": 2, "kinds": 1}
    assert c.calculate({"k": "b", "v": "10"})["total"] == 10.0
    out = c.calculate({"k": "a", "v": "x"})  # not a number: counted, skipped by sum/min/max/avg
    assert out == {"k": "a", "n": 2, "total": 2.0, "low": 2.0, "high": 2.0, "mean": 2.0, "first": 2,
                   "last": "x", "kinds": 2}
    out = c.calculate({"k": "a"})  # no value: counted only
    assert (out["n"], out["last"], out["kinds"]) == (3, "x", 2)
    assert c.calculate({"k": "a", "v": -1.5})["low"] == -1.5


def test_without_a_key_there_is_one_group_and_nothing_counted_yet_is_null() -> None:
    c = calc()
    assert c.calculate({"other": 1}) == {"n": 1, "total": 0.0, "low": None, "high": None, "mean": None,
                                         "first": None, "last": None, "kinds": 0}
    assert c.calculate({"v": 4})["n"] == 2


def test_count_with_of_counts_records_that_have_it() -> None:
    c = AggregateCalculator("agg", {"aggregates": {"n": {"op": "count", "of": "v"}}})
    assert [c.calculate(r)["n"] for r in ({"v": 1}, {}, {"v": None}, {"v": 0})] == [1, 1, 1, 2]


def test_a_key_that_is_a_list_is_an_error_of_the_node() -> None:
    with pytest.raises(ValueError, match="key attribute 'k' holds"):
        calc(key=["k"]).calculate({"k": [1]})


# -- tumbling windows ----------------------------------------------------------------------------------
def test_tumbling_windows_are_half_open_a_record_at_the_end_starts_the_next() -> None:
    c = AggregateCalculator("agg", {"key": ["k"], "aggregates": {"n": {"op": "count"}},
                                    "window": {"tumbling": 60, "time": "ts"}})
    first = c.calculate({"k": "a", "ts": 1_704_067_200})
    assert first == {"k": "a", "window_start": "2024-01-01T00:00:00Z", "window_end": "2024-01-01T00:01:00Z", "n": 1}
    assert c.calculate({"k": "a", "ts": "2024-01-01T00:00:59.5Z"})["n"] == 2
    edge = c.calculate({"k": "a", "ts": "2024-01-01T00:01:00Z"})  # exactly the end: the next window
    assert (edge["window_start"], edge["n"]) == ("2024-01-01T00:01:00Z", 1)


def test_a_record_for_a_closed_window_is_late_and_changes_nothing() -> None:
    c = AggregateCalculator("agg", {"aggregates": {"n": {"op": "count"}},
                                    "window": {"tumbling": 10, "time": "ts"}, "lateness": 5})
    c.calculate({"ts": 3})
    assert c.calculate({"ts": 14})["n"] == 1  # watermark 9: [0, 10) still open
    assert c.calculate({"ts": 9})["n"] == 2
    c.calculate({"ts": 15})  # watermark 10: [0, 10) closes (its end is at the watermark)
    with pytest.raises(LateRecord, match="late record"):
        c.calculate({"ts": 9})
    assert c.state_figures()["groups"] == 1
    assert c.calculate({"ts": 16})["n"] == 3


def test_a_record_without_a_usable_time_is_an_error() -> None:
    c = AggregateCalculator("agg", {"aggregates": {"n": {"op": "count"}}, "window": {"tumbling": 10, "time": "ts"}})
    for bad, text in (({}, "no time attribute 'ts'"), ({"ts": "soon"}, "neither epoch seconds nor an ISO-8601"),
                      ({"ts": True}, "neither"), ({"ts": float("nan")}, "outside")):
        with pytest.raises(ValueError, match=text):
            c.calculate(bad)
    assert c.state_figures()["groups"] == 0 and c.max_time is None


# -- sessions ---------------------------------------------------------------------------------------
def session_calc(gap: float = 10, **more: Any) -> AggregateCalculator:
    aggregates = {"n": {"op": "count"}, "s": {"op": "sum", "of": "v"}}
    return AggregateCalculator("agg", {"key": ["k"], "aggregates": aggregates,
                                       "window": {"session": gap, "time": "ts"}, **more})


def test_a_session_holds_records_less_than_the_gap_apart() -> None:
    c = session_calc(lateness=100)
    out = c.calculate({"k": "a", "ts": 0, "v": 1})
    assert (out["window_start"], out["window_end"]) == ("1970-01-01T00:00:00Z", "1970-01-01T00:00:10Z")
    out = c.calculate({"k": "a", "ts": 9.5, "v": 1})
    assert (out["n"], out["window_end"]) == (2, "1970-01-01T00:00:19.500000Z")
    out = c.calculate({"k": "a", "ts": 29.5, "v": 1})  # exactly the gap after the last: a new session
    assert (out["n"], out["window_start"]) == (1, "1970-01-01T00:00:29.500000Z")
    assert c.calculate({"k": "b", "ts": 5, "v": 1})["n"] == 1  # keys have sessions of their own


def test_a_record_bridging_two_sessions_merges_them() -> None:
    c = session_calc(lateness=100)
    c.calculate({"k": "a", "ts": 0, "v": 1})
    c.calculate({"k": "a", "ts": 18, "v": 2})
    out = c.calculate({"k": "a", "ts": 9, "v": 4})  # 9 from each: one session [0, 28)
    assert out == {"k": "a", "window_start": "1970-01-01T00:00:00Z", "window_end": "1970-01-01T00:00:28Z",
                   "n": 3, "s": 7.0}
    assert c.state_figures()["groups"] == 1


def test_a_merged_session_closes_at_its_merged_end() -> None:
    c = session_calc(lateness=5)
    c.calculate({"k": "a", "ts": 5, "v": 1})  # [5, 15)
    c.calculate({"k": "a", "ts": 18, "v": 1})  # [18, 28); watermark 13
    assert c.calculate({"k": "a", "ts": 9, "v": 1})["n"] == 3  # one session [5, 28), its end from the later one
    c.calculate({"k": "b", "ts": 33})  # watermark 28: [5, 28) closes
    assert c.state_figures()["groups"] == 1
    assert c.calculate({"k": "a", "ts": 24})["n"] == 1  # a new session, not the closed one


def test_a_long_session_keeps_its_closing_heap_small() -> None:
    c = session_calc(lateness=10**6)  # nothing ever closes: the heap's stale ends must not pile up
    for t in range(10_000):
        c.calculate({"k": "a", "ts": t})
    assert c.state_figures()["groups"] == 1 and len(c.closing) < 100


def test_a_session_closes_once_the_watermark_passes_its_end() -> None:
    c = session_calc()
    c.calculate({"k": "a", "ts": 0, "v": 1})
    c.calculate({"k": "b", "ts": 10})  # watermark 10: a's [0, 10) closes
    assert c.state_figures()["groups"] == 1
    with pytest.raises(LateRecord):
        c.calculate({"k": "a", "ts": -1})
    assert c.calculate({"k": "a", "ts": 5})["n"] == 1  # [5, 15) is still open: a new session


# -- max_keys -----------------------------------------------------------------------------------------
def test_max_keys_evicts_the_least_recently_updated_group() -> None:
    c = AggregateCalculator("agg", {"key": ["k"], "aggregates": {"n": {"op": "count"}}, "max_keys": 2})
    for k in "abab":
        c.calculate({"k": k})
    c.calculate({"k": "a"})
    c.calculate({"k": "c"})  # b went longest without a record
    assert c.state_figures() == {"groups": 2, "evictions": 1}
    assert c.calculate({"k": "b"})["n"] == 1 and c.calculate({"k": "a"})["n"] == 1  # b evicted a in turn
    assert c.state_figures()["evictions"] == 3


# -- config -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "key", "text", "suggestion"), [
    ({}, "aggregates", "non-empty map", None),
    ({"aggregates": {"x": {"op": "summ", "of": "v"}}}, "aggregates.x.op", "op must be one of", "sum"),
    ({"aggregates": {"x": {"op": "sum"}}}, "aggregates.x.of", 'needs "of"', None),
    ({"aggregates": {"x": {"op": "sum", "off": "v"}}}, "aggregates.x.off", "unknown key", "of"),
    ({"aggregates": {"k": {"op": "count"}}, "key": ["k"]}, "aggregates.k", "also a key attribute", None),
    ({"aggregates": {"n": {"op": "count"}}, "key": "k"}, "key", "list of attribute names", '["k"]'),
    ({"aggregates": {"n": {"op": "count"}}, "window": {"tumbling": 0, "time": "t"}}, "window.tumbling",
     "more than zero", None),
    ({"aggregates": {"n": {"op": "count"}}, "window": {"tumbling": 5}}, "window.time", 'needs "time"', None),
    ({"aggregates": {"n": {"op": "count"}}, "window": {"tumbling": 5, "session": 5, "time": "t"}}, "window",
     "exactly one", None),
    ({"aggregates": {"n": {"op": "count"}}, "window": {"sesion": 5, "time": "t"}}, "window.sesion", "unknown key",
     "session"),
    ({"aggregates": {"n": {"op": "count"}}, "lateness": 5}, "lateness", "windows only", "window"),
    ({"aggregates": {"n": {"op": "count"}}, "window": {"session": 5, "time": "t"}, "lateness": -1}, "lateness",
     "zero or more", None),
    ({"aggregates": {"n": {"op": "count"}}, "max_keys": 0}, "max_keys", "positive integer", None),
    ({"aggregates": {"n": {"op": "count"}}, "keys": ["k"]}, "keys", "unknown config key", "key"),
])
def test_config_problems_name_the_key_and_suggest(config: dict, key: str, text: str, suggestion: str | None) -> None:
    with pytest.raises(ComponentConfigError) as info:
        AggregateCalculator("agg", config)
    assert info.value.key == key
    assert text in info.value.message
    assert info.value.suggestion == suggestion


# -- the brute-force model -------------------------------------------------------------------------------
class Model:
    """Every accepted record kept in a list per group: aggregates computed from the lists."""

    def __init__(self, window: str | None, size: float, lateness: float) -> None:
        self.window, self.size, self.lateness = window, size, lateness
        self.groups: list[dict[str, Any]] = []  # {"key", "start", "end", "records": [(arrival, record)]}
        self.max_time: float | None = None
        self.arrivals = 0

    def feed(self, record: dict) -> dict | str:
        key = record.get("k")
        if self.window is None:
            group = next((g for g in self.groups if g["key"] == key), None)
            if group is None:
                group = {"key": key, "start": None, "end": None, "records": []}
                self.groups.append(group)
        else:
            t = float(record["ts"])
            self.max_time = t if self.max_time is None else max(self.max_time, t)
            mark = self.max_time - self.lateness
            self.groups = [g for g in self.groups if g["end"] > mark]  # closed windows are dropped
            mine = [g for g in self.groups if g["key"] == key]
            if self.window == "tumbling":
                start = math.floor(t / self.size) * self.size
                group = next((g for g in mine if g["start"] == start), None)
                if group is None:
                    if start + self.size <= mark:
                        return "late"
                    group = {"key": key, "start": start, "end": start + self.size, "records": []}
                    self.groups.append(group)
            else:
                near = [g for g in mine if any(abs(t - r["ts"]) < self.size for _, r in g["records"])]
                if not near:
                    if t + self.size <= mark:
                        return "late"
                    near = [{"key": key, "records": []}]
                    self.groups.append(near[0])
                group = near[0]
                for other in near[1:]:
                    group["records"] += other["records"]
                    self.groups.remove(other)
        self.arrivals += 1
        group["records"].append((self.arrivals, record))
        if self.window == "session":
            times = [r["ts"] for _, r in group["records"]]
            group["start"], group["end"] = min(times), max(times) + self.size
        return self.value(group)

    def value(self, group: dict) -> dict:
        ordered = [r for _, r in sorted(group["records"], key=lambda pair: pair[0])]
        vs = [r["v"] for r in ordered if r.get("v") is not None]
        nums = [float(v) for v in vs if not isinstance(v, str) or v.lstrip("-").isdigit()]
        return {"n": len(ordered), "total": sum(nums), "low": min(nums, default=None),
                "high": max(nums, default=None), "mean": sum(nums) / len(nums) if nums else None,
                "first": vs[0] if vs else None, "last": vs[-1] if vs else None, "kinds": len(set(vs)),
                "start": group["start"], "end": group["end"]}


def aggregate_records(max_time: int = 60) -> st.SearchStrategy[list[dict]]:
    value = st.sampled_from((None, 0, 1, 2, -3, 4, "5", "x", 1.5))
    rec = st.fixed_dictionaries({"k": st.sampled_from(("a", "b", "c")), "ts": st.integers(0, max_time)},
                                optional={"v": value})
    return st.lists(rec, max_size=60)


def seen(out: dict, window: str | None) -> dict:
    """The calculator's output in the model's terms."""
    got = {k: out[k] for k in ("n", "total", "low", "high", "mean", "first", "last", "kinds")}
    got["start"] = got["end"] = None
    if window:
        got["start"] = _epoch(out["window_start"])
        got["end"] = _epoch(out["window_end"])
    return got


def _epoch(text: str) -> float:
    return event_time(text)


@settings(max_examples=600, deadline=None)
@given(records=aggregate_records(), window=st.sampled_from((None, "tumbling", "session", "session")),
       size=st.sampled_from((1, 5, 10, 30)), lateness=st.sampled_from((0, 3, 20)))
def test_the_calculator_agrees_with_the_brute_force_model(records: list[dict], window: str | None, size: int,
                                                          lateness: int) -> None:
    config: dict[str, Any] = {"key": ["k"], "aggregates": ALL_OPS}
    if window:
        config["window"] = {window: size, "time": "ts"}
        config["lateness"] = lateness
    c = AggregateCalculator("agg", config)
    model = Model(window, size, lateness)
    for record in records:
        want = model.feed(record)
        try:
            got: dict | str = seen(c.calculate(record), window)
        except LateRecord:
            got = "late"
        assert got == want, record
    assert c.state_figures()["groups"] == len(model.groups)


@settings(max_examples=300, deadline=None)
@given(records=aggregate_records(), window=st.sampled_from((None, "tumbling", "session")),
       cut=st.integers(0, 60), lateness=st.sampled_from((0, 20)), max_keys=st.sampled_from((2, 100)))
def test_snapshot_then_restore_continues_as_the_uninterrupted_run(records: list[dict], window: str | None, cut: int,
                                                                  lateness: int, max_keys: int) -> None:
    config: dict[str, Any] = {"key": ["k"], "aggregates": ALL_OPS, "max_keys": max_keys}
    if window:
        config.update(window={window: 10, "time": "ts"}, lateness=lateness)

    def run(c: AggregateCalculator, part: list[dict]) -> list[Any]:
        outs: list[Any] = []
        for record in part:
            try:
                outs.append(c.calculate(record))
            except LateRecord:
                outs.append("late")
        return outs

    whole = AggregateCalculator("agg", config)
    expected = run(whole, records)
    first = AggregateCalculator("agg", config)
    got = run(first, records[:cut])
    blob = msgpack.packb(first.snapshot(), use_bin_type=True)
    second = AggregateCalculator("agg", config)
    second.restore(msgpack.unpackb(blob, raw=False))
    got += run(second, records[cut:])
    assert got == expected
    assert second.state_figures()["groups"] == whole.state_figures()["groups"]


def test_a_snapshot_of_another_config_is_not_restored() -> None:
    c = calc(key=["k"])
    c.calculate({"k": "a", "v": 1})
    other = calc(key=["j"])
    other.restore(c.snapshot())  # logged, and nothing restored
    assert other.state_figures()["groups"] == 0
    with pytest.raises(ValueError, match="not a snapshot"):
        other.restore([1, 2])


def outcome(out: Any) -> Any:
    """An output, or what an exception says (type and message)."""
    return (type(out).__name__, str(out)) if isinstance(out, BaseException) else out


@settings(max_examples=300, deadline=None)
@given(records=st.lists(st.fixed_dictionaries(
           {"k": st.sampled_from(("a", "b", 1, 2.5, True, None, ["l"])),
            "ts": st.one_of(st.integers(0, 60), st.sampled_from((None, "x", "1970-01-01T00:00:30", 1e300, 7.5)))},
           optional={"v": st.sampled_from((None, 1, 2.5, "3", "x")), "j": st.sampled_from(("p", "q"))}),
           max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=5), window=st.sampled_from((None, "tumbling", "session")),
       key=st.sampled_from((["k"], ["k", "j"], [])), max_keys=st.sampled_from((2, 100)))
def test_calculate_many_ends_as_calculate_record_by_record(records: list[dict], cuts: list[int], window: str | None,
                                                           key: list[str], max_keys: int) -> None:
    """Runs of any length give what calculate() gives record by record, errors and late records included."""
    config: dict[str, Any] = {"key": key, "aggregates": ALL_OPS, "max_keys": max_keys}
    if window:
        config.update(window={window: 10, "time": "ts"}, lateness=3)
    one, many = AggregateCalculator("agg", config), AggregateCalculator("agg", config)
    want = []
    for record in records:
        try:
            want.append(outcome(one.calculate(dict(record))))
        except Exception as exc:
            want.append(outcome(exc))
    got = []
    bounds = sorted({0, len(records), *(c for c in cuts if c <= len(records))})
    for start, end in pairwise(bounds):
        got += [outcome(out) for out in many.calculate_many([dict(r) for r in records[start:end]])]
    assert got == want
    assert msgpack.packb(many.snapshot()) == msgpack.packb(one.snapshot())
