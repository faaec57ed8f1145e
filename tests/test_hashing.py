"""The stable hashes: the same as an implementation we did not write, pinned across versions,
and a key that tells Mixpanel's de-duplication fields apart."""

from __future__ import annotations

import numpy as np
import pytest

from collector.export.batch import Batch, Row
from collector.metrics.hashing import HASH_VERSION, key_hashes, keyed, text_hashes, user_hashes

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


def test_a_users_hash_is_farm_fingerprint_of_its_distinct_id() -> None:
    rows = [Row("A", user, 1.0, "x") for user in PUBLISHED]
    assert user_hashes(Batch.of(rows)).tolist() == list(PUBLISHED.values())


def test_a_lone_surrogate_is_hashed_as_its_surrogatepass_bytes() -> None:
    # JSON's "\ud800" decodes to a lone surrogate: not UTF-8-encodable, still someone's id. It
    # is hashed as the three bytes ED A0 80 (Fingerprint64 of them, computed once and pinned),
    # so two different lone surrogates never share a hash, and its neighbours keep theirs.
    got = text_hashes(["1footrue", "\ud800", "\udfff"], 3).tolist()
    assert got[0] == PUBLISHED["1footrue"]
    assert got[1] == 3169444906323584678
    assert got[2] != got[1]


def test_keys_are_pinned_to_their_hash_version() -> None:
    """Serialised states are read back only under the same HASH_VERSION: a change to how keys
    are made must come with a new version, and then with new values here."""
    rows = [Row("Purchase", "u1", 10.0, "i1"), Row("Sign Up", "", 1700000000.5, "x")]
    assert HASH_VERSION == "farmhash-fingerprint64/weighted-splitmix64/2"
    assert key_hashes(Batch.of(rows)).tolist() == [-8180698357271806162, -6336481206071517501]


def test_a_key_does_not_depend_on_the_other_rows_of_its_block() -> None:
    row = Row("Purchase", "u1", 10.0, "i1")
    alone = key_hashes(Batch.of([row]))[0]
    mostly_unkeyed = [Row("A", "u2", float(i), None) for i in range(40)]
    for rows in ([Row("A", "u2", 1.0, None), row], [*mostly_unkeyed, row]):
        assert key_hashes(Batch.of(rows))[-1] == alone


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
    keys = key_hashes(Batch.of(variants)).tolist()
    assert len(set(keys)) == len(variants)


@pytest.mark.parametrize(
    "ids",
    [
        ["a", "b", "c", "d"],
        [None, None, None, None],
        [None, "a", None, "b"],  # scattered
        ["a", "b", "c", None],  # last
        ["", None, "", "a"],  # "" is an id, absent is not
        [None] * 3 + [f"i{i}" for i in range(60)] + [None],  # few: found one by one
        [None if i % 3 else f"i{i}" for i in range(64)],  # many: one pass
    ],
)
def test_exactly_the_rows_without_an_insert_id_are_not_keyed(ids: list[str | None]) -> None:
    batch = Batch.of([Row("A", "u", float(i), v) for i, v in enumerate(ids)])
    assert keyed(batch).tolist() == [v is not None for v in ids]
    keys = key_hashes(batch)  # rows with an id keep the key they have alone
    for i, v in enumerate(ids):
        if v is not None:
            assert keys[i] == key_hashes(Batch.of([Row("A", "u", float(i), v)]))[0]
    assert keys.dtype == np.int64
