"""Histograms of per-DAG figures (``actors/stats.py``, SPEC §8): every observation in its bucket.

``observe_each`` buckets a whole epoch's compute times at once (sorting them, one bisect per
bucket); it must count exactly as one ``observe`` per value does, bounds included (a value equal
to a bound belongs to that bound's bucket, as Prometheus' ``le`` has it).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.stats import COMPUTE_BUCKETS, Histogram

VALUES = st.lists(st.one_of(st.sampled_from([0.0, *COMPUTE_BUCKETS, 11.0]),
                            st.floats(min_value=0.0, max_value=20.0)), max_size=60)


@given(VALUES)
def test_observing_an_epoch_at_once_counts_as_observing_each_value(values: list[float]) -> None:
    one_by_one, at_once = Histogram(COMPUTE_BUCKETS), Histogram(COMPUTE_BUCKETS)
    for value in values:
        one_by_one.observe(value)
    at_once.observe_each(list(values))
    assert at_once.counts == one_by_one.counts
    assert at_once.count == len(values)
    assert abs(at_once.sum - one_by_one.sum) <= 1e-9 * max(1.0, one_by_one.sum)


def test_a_value_on_a_bound_is_in_that_bounds_bucket() -> None:
    h = Histogram((1.0, 2.0))
    h.observe_each([1.0] * 5 + [2.0] * 4 + [2.5] * 3)
    assert h.counts == [5, 4, 3]
