from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from collector.export.decode import Row
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.hashset import HashSet, _merge


def rows() -> list[Row]:
    return [
        Row("Sign Up", "a", 1.0, "i1"),
        Row("Sign Up", "a", 1.0, "i1"),  # a true duplicate
        Row("Sign Up", "b", 2.0, "i2"),
        Row("Purchase", "a", 3.0, "i3"),
        Row("Purchase", "c", 4.0, None),  # no $insert_id: counts as it comes
        Row("Purchase", "c", 4.0, None),
    ]


def test_hashset_counts_distinct_members_across_compactions() -> None:
    hs = HashSet()
    for start in range(0, 300_000, 1000):
        hs.update(range(start, start + 1500))  # overlapping batches
    assert len(hs) == 300_500
    other = HashSet()
    other.update([1, 2, 10**12])
    hs.merge(other)
    assert len(hs) == 300_501
    assert hs.nbytes <= 8 * 300_501 * 2


def test_event_counts_dedupe_on_the_four_fields() -> None:
    agg = EventCounts()
    agg.new_attempt()
    agg.add(rows())
    assert agg.by_event() == {"Purchase": 3, "Sign Up": 2}
    assert agg.duplicates() == 1


def test_retries_never_double_count() -> None:
    users, counts = DistinctUsers(), EventCounts()
    data = rows()
    for prefix in (2, 5, len(data)):  # two cut attempts, then a complete one
        for agg in (users, counts):
            agg.new_attempt()
            agg.add(data[:prefix])
    assert users.value() == 3
    assert counts.by_event() == {"Purchase": 3, "Sign Up": 2}
    assert counts.rows - counts.duplicates() == counts.value()


def test_partial_attempts_stay_lower_bounds() -> None:
    counts = EventCounts()
    data = rows()
    for prefix in (5, 4, 5):
        counts.new_attempt()
        counts.add(data[:prefix])
    assert counts.by_event() == {"Purchase": 2, "Sign Up": 2}  # <= truth {3, 2}


@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60),
)
def test_merging_in_place_equals_a_set_union(a: list[int], b: list[int]) -> None:
    left = np.unique(np.array(a, dtype=np.int64))
    right = np.unique(np.array(b, dtype=np.int64))
    assert _merge(left, right).tolist() == sorted(set(a) | set(b))
