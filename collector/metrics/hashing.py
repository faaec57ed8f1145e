"""Stable 64-bit hashes of users and of Mixpanel's event de-duplication key.

Every set and sketch is fed these hashes, so they must mean the same in any process, on any
machine, in any Python version: aggregates are serialised, merged across workers and
instances, and split into time slices. Python's `hash()` is randomised per process, so it is
not used. Strings are hashed with xxh3-64 over their UTF-8 bytes; the key (`event`,
`distinct_id`, `time`, `$insert_id`) combines the hashes of its fields with the splitmix64
finaliser, in numpy over whole columns. `HASH_VERSION` names this scheme and is part of every
serialised state: a state hashed otherwise is refused, never mixed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from operator import is_not

import numpy as np
import xxhash

from collector.export.batch import Batch

HASH_VERSION = "xxh3-64/splitmix64/1"

_xxh3 = xxhash.xxh3_64_intdigest
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_NO_ID = np.uint64(_xxh3(b"\x00no $insert_id"))


def text_hashes(texts: Iterable[str], n: int) -> np.ndarray:
    """xxh3-64 of each text's UTF-8 bytes, as int64."""
    texts = list(texts) if not isinstance(texts, list) else texts
    try:
        out = np.fromiter(map(_xxh3, map(str.encode, texts)), np.uint64, n)
    except UnicodeEncodeError:
        # A JSON escape can make a lone surrogate: still text, and still hashed the same way.
        out = np.fromiter((_xxh3(t.encode("utf-8", "surrogatepass")) for t in texts), np.uint64, n)
    return out.view(np.int64)


def _name_hashes(names: list[str], n: int) -> np.ndarray:
    """`text_hashes` of a column with few distinct values: each is hashed once."""
    distinct = dict.fromkeys(names)
    if len(distinct) * 4 > n:
        return text_hashes(names, n)
    keys = list(distinct)
    for name, h in zip(keys, text_hashes(keys, len(keys)).tolist(), strict=True):
        distinct[name] = h
    return np.fromiter(map(distinct.__getitem__, names), np.int64, n)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every bit of the input reaches every bit of the output."""
    x = x ^ (x >> _S30)
    x *= _C1
    x ^= x >> _S27
    x *= _C2
    return x ^ (x >> _S31)


def name_hashes(batch: Batch) -> np.ndarray:
    """One hash per row of its event name; kept on the batch."""
    cached = batch.cache.get("names")
    if cached is None:
        cached = batch.cache["names"] = _name_hashes(batch.names, len(batch))
    return cached


def user_hashes(batch: Batch) -> np.ndarray:
    """One hash per row of its `distinct_id` ("" for no user); kept on the batch."""
    cached = batch.cache.get("users")
    if cached is None:
        cached = batch.cache["users"] = text_hashes(batch.users, len(batch))
    return cached


def identified_user_hashes(batch: Batch) -> np.ndarray:
    """The user hashes of the rows that have a user: Mixpanel leaves an empty or missing
    `distinct_id` out of every uniques count."""
    hashes = user_hashes(batch)
    if not batch.users.count(""):
        return hashes
    return hashes[np.fromiter(map(bool, batch.users), bool, len(batch))]


def keyed(batch: Batch) -> np.ndarray:
    """Which rows carry an `$insert_id` (only those can be de-duplicated); kept on the batch."""
    cached = batch.cache.get("keyed")
    if cached is None:
        ids = batch.insert_ids
        if ids.count(None):
            cached = np.fromiter(map(is_not, ids, repeat(None)), bool, len(ids))
        else:
            cached = np.ones(len(ids), dtype=bool)
        batch.cache["keyed"] = cached
    return cached


def key_hashes(batch: Batch) -> np.ndarray:
    """One hash per row of Mixpanel's de-duplication key: name, user, time, `$insert_id`."""
    cached = batch.cache.get("keys")
    if cached is None:
        n = len(batch)
        key = _mix(name_hashes(batch).view(np.uint64))
        key = _mix(key ^ user_hashes(batch).view(np.uint64))
        key = _mix(key ^ np.ascontiguousarray(batch.times, dtype=np.float64).view(np.uint64))
        ids = np.full(n, _NO_ID, dtype=np.uint64)
        has = keyed(batch)
        if has.any():
            present = [i for i in batch.insert_ids if i is not None]
            ids[has] = text_hashes(present, len(present)).view(np.uint64)
        cached = batch.cache["keys"] = _mix(key ^ ids).view(np.int64)
    return cached
