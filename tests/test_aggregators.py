from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from collector.export.batch import Batch, Row
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.hashset import HashSet, _merge, _sorted_unique


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


@given(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3), max_size=80))
def test_sorted_unique_equals_a_sorted_set(values: list[int]) -> None:
    assert _sorted_unique(np.array(values, dtype=np.int64)).tolist() == sorted(set(values))


names = st.sampled_from(["A", "B", "C", "D"])
event_rows = st.lists(
    st.tuples(
        names,
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from([1.0, 2.0]),
        st.sampled_from(["i1", "i2", None]),
    ),
    max_size=60,
)


@given(st.lists(event_rows, max_size=4))
def test_column_aggregation_equals_the_row_by_row_definition(blocks: list[list[Row]]) -> None:
    """Grouping by name in numpy, splitting off unkeyed rows: same counts as the plain rules."""
    counts, users = EventCounts(), DistinctUsers()
    counts.new_attempt()
    for block in blocks:
        counts.add(Batch.of(block))
        users.add(Batch.of(block))
    every = [r for block in blocks for r in block]
    expected: dict[str, int] = {}
    for name in {r[0] for r in every}:
        keyed = {r for r in every if r[0] == name and r[3] is not None}
        unkeyed = sum(1 for r in every if r[0] == name and r[3] is None)
        expected[name] = len(keyed) + unkeyed
    assert counts.by_event() == {k: v for k, v in sorted(expected.items()) if v}
    assert users.value() == len({r[1] for r in every})
    assert counts.rows == len(every)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3000),  # name: many, arriving over many blocks
            st.integers(0, 50),  # user
            st.integers(0, 5),  # time
            st.one_of(st.none(), st.integers(0, 40)),  # $insert_id, or none
        ),
        max_size=400,
    ),
    st.integers(1, 60),
)
def test_many_names_count_like_a_plain_dict_of_sets(events, block: int) -> None:
    data = [
        Row(f"name {n}", f"u{u}", float(t), None if i is None else f"i{i}") for n, u, t, i in events
    ]
    counts = EventCounts()
    # Two attempts: a cut one (half the rows), then the whole body.
    for rows_of_attempt in (data[: len(data) // 2], data):
        counts.new_attempt()
        for at in range(0, len(rows_of_attempt), block):
            counts.add(Batch.of(rows_of_attempt[at : at + block]))
    keyed: dict[str, set] = {}
    unkeyed: dict[str, int] = {}
    for row in data:
        if row.insert_id is None:
            unkeyed[row.event] = unkeyed.get(row.event, 0) + 1
        else:
            keyed.setdefault(row.event, set()).add(row)
    expected = {n: len(s) for n, s in keyed.items()}
    for name, n in unkeyed.items():
        expected[name] = expected.get(name, 0) + n
    by_event = counts.by_event()
    assert by_event == expected
    assert list(by_event.values()) == sorted(expected.values(), reverse=True)  # most first
    assert json.loads(bytes(by_event.to_json())) == expected
