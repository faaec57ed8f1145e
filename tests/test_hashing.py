"""The stable hashes: the same as an implementation we did not write, and a key that tells
Mixpanel's de-duplication fields apart."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.export.batch import Batch, Row
from collector.metrics.hashing import key_hashes, keyed, text_hashes, user_hashes
from collector.metrics.hashset import _insert_pairs, _new_members

# FARM_FINGERPRINT values printed in Google's BigQuery reference (hash functions page) and in
# Amazon Redshift's farmFingerprint64 page: both run FarmHash's Fingerprint64 over UTF-8.
PUBLISHED = {
    "1footrue": -1541654101129638711,
    "2applefalse": 2794438866806483259,
    "3true": -4880158226897771312,
    "Amazon Redshift": 8085098817162212970,
}


def test_a_text_hash_is_bigquerys_farm_fingerprint() -> None:
    texts = list(PUBLISHED)
    assert text_hashes(texts, len(texts)).tolist() == list(PUBLISHED.values())


def test_a_lone_surrogate_is_hashed_as_its_bytes_not_refused() -> None:
    # JSON's "\ud800" decodes to a lone surrogate: not UTF-8-encodable, still someone's id.
    texts = ["ok", "\ud800", "é"]
    got = text_hashes(texts, 3).tolist()
    assert got[0] == text_hashes(["ok"], 1)[0] and got[2] == text_hashes(["é"], 1)[0]
    assert got[1] not in (got[0], got[2])
    assert text_hashes(["\ud800"], 1)[0] == got[1]  # the same alone as in a column


def batch(rows: list[Row]) -> Batch:
    return Batch.of(rows)


def test_a_key_does_not_depend_on_the_other_rows_of_its_block() -> None:
    row = Row("Purchase", "u1", 10.0, "i1")
    alone = key_hashes(batch([row]))[0]
    among = key_hashes(batch([Row("A", "u2", 1.0, None), row, Row("B", "u3", 2.0, None)]))
    assert among[1] == alone
    assert keyed(batch([Row("A", "u2", 1.0, None), row])).tolist() == [False, True]


def test_every_field_of_the_key_counts_and_fields_cannot_trade_places() -> None:
    base = Row("Purchase", "u1", 10.0, "i1")
    variants = [
        base,
        base._replace(event="Purchases"),
        base._replace(distinct_id="u2"),
        base._replace(time=10.001),
        base._replace(insert_id="i2"),
        Row("u1", "Purchase", 10.0, "i1"),  # name and user swapped
        Row("Purchase", "i1", 10.0, "u1"),  # user and $insert_id swapped
        Row("i1", "u1", 10.0, "Purchase"),  # name and $insert_id swapped
    ]
    keys = key_hashes(batch(variants)).tolist()
    assert len(set(keys)) == len(variants)


def test_user_hashes_are_the_user_text_hashes() -> None:
    rows = [Row("A", "u1", 1.0, "x"), Row("A", "", 1.0, None)]
    assert user_hashes(batch(rows)).tolist() == text_hashes(["u1", ""], 2).tolist()


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


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.text(max_size=3),
                st.sampled_from(["a", "", "b"]),
                st.floats(0, 1e9),
                st.none() | st.text(max_size=3),
            ),
            max_size=5,
        ),
        max_size=4,
    )
)
def test_joined_batches_hold_every_row_in_order(parts: list[list[Row]]) -> None:
    joined = Batch.join([Batch.of(p) for p in parts])
    assert list(joined) == [tuple(r) for p in parts for r in p]


@pytest.mark.parametrize("absent", [0, 1, 3])
def test_rows_without_an_insert_id_are_not_keyed(absent: int) -> None:
    rows = [Row("A", "u", float(i), None if i < absent else f"i{i}") for i in range(4)]
    assert keyed(batch(rows)).tolist() == [i >= absent for i in range(4)]
