from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.export.batch import Batch, Row
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.hashset import HashSet, _insert_pairs, _merge, _new_members, _sorted_unique


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


@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50),
)
def test_inserting_pairs_equals_numpys_insert(known: list[int], fresh: list[int]) -> None:
    hashes = np.unique(np.array(known, dtype=np.int64))
    codes = (hashes % 7).astype(np.int32)
    new = np.unique(np.array(fresh, dtype=np.int64))
    at, is_new = _new_members(hashes, new)
    new, at = new[is_new], at[is_new]
    new_codes = (new % 5).astype(np.int32)
    got, got_codes = _insert_pairs(hashes, codes, at, new, new_codes)
    assert got.tolist() == np.insert(hashes, at, new).tolist() == sorted(set(known) | set(fresh))
    assert got_codes.tolist() == np.insert(codes, at, new_codes).tolist()


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


def _rows_strategy(max_names: int = 30):
    return st.lists(
        st.tuples(
            st.integers(0, max_names),
            st.integers(0, 40),  # user ("u0" stands for no user: "")
            st.integers(0, 100),  # time
            st.one_of(st.none(), st.integers(0, 60)),
        ),
        max_size=300,
    ).map(
        lambda events: [
            Row(f"e{n}", "" if u == 0 else f"u{u}", float(t), None if i is None else f"i{i}")
            for n, u, t, i in events
        ]
    )


@given(_rows_strategy(), st.integers(0, 100), st.sampled_from([0, 10, 10**6]))
def test_merging_two_serialised_halves_equals_reading_the_window_whole(
    data, cut: int, cap: int
) -> None:
    """Split at a time: the halves are disjoint slices of one window."""
    halves = ([r for r in data if r.time < cut], [r for r in data if r.time >= cut])
    whole_users, whole_counts = DistinctUsers(cap), EventCounts()
    whole_users.add(data)
    whole_counts.add(data)
    parts = []
    for half in halves:
        users, counts = DistinctUsers(cap), EventCounts()
        users.add(half)
        counts.add(half)
        parts.append(
            (DistinctUsers.from_bytes(users.to_bytes()), EventCounts.from_bytes(counts.to_bytes()))
        )
    (users, counts), (more_users, more_counts) = parts
    users.merge(more_users)
    counts.merge(more_counts)
    assert counts.by_event() == whole_counts.by_event()
    assert counts.value() == whole_counts.value()
    if users.estimate or whole_users.estimate:
        # Past the cap both are sketches of the same members: within the stated error.
        assert abs(users.value() - whole_users.value()) <= 1 + users.relative_error() * len(
            {r.distinct_id for r in data if r.distinct_id}
        )
    else:
        assert (
            users.value()
            == whole_users.value()
            == len({r.distinct_id for r in data if r.distinct_id})
        )


def test_a_state_of_another_hash_version_is_refused() -> None:
    import msgspec

    users = DistinctUsers()
    users.add(rows())
    state = msgspec.msgpack.decode(users.to_bytes())
    state["hash"] = "python-hash/0"
    with pytest.raises(ValueError, match="hashed with 'python-hash/0'"):
        DistinctUsers.from_bytes(msgspec.msgpack.encode(state))
    with pytest.raises(ValueError, match="not a serialised events aggregate"):
        EventCounts.from_bytes(users.to_bytes())
    with pytest.raises(ValueError, match="not a serialised"):
        EventCounts.from_bytes(b"\xc1garbage")


def test_a_sketch_merges_with_an_exact_set_within_the_union_bound() -> None:
    big, small = DistinctUsers(1000), DistinctUsers(1000)
    big.add(Row("A", f"u{i}", 1.0, None) for i in range(5000))
    small.add(Row("A", f"u{i}", 2.0, None) for i in range(4000, 4500))
    assert big.estimate and not small.estimate
    big.merge(DistinctUsers.from_bytes(small.to_bytes()))
    assert big.estimate
    assert abs(big.value() - 5000) <= 5000 * big.relative_error()
