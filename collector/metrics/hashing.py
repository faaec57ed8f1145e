"""Stable 64-bit hashes of users and of Mixpanel's event de-duplication key.

Every set and sketch is fed these hashes, so they must mean the same in any process, on any
machine, in any Python version: aggregates are serialised, merged across workers and
instances, and split into time slices. Python's `hash()` is randomised per process, so it is
not used. A text is hashed with FarmHash's Fingerprint64 over its UTF-8 bytes, which Google
keeps the same forever and BigQuery exposes as `FARM_FINGERPRINT` (as a signed 64-bit
integer): a user's hash here is `FARM_FINGERPRINT(distinct_id)` there. The binding takes `str`
as it is, so a column costs one C call per row. The key (`event`, `distinct_id`, `time`,
`$insert_id`) is a weighted sum of its fields' hashes under the splitmix64 finaliser, in numpy
over whole columns. `HASH_VERSION` names this scheme and is part of every serialised state: a
state hashed otherwise is refused, never mixed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from operator import is_not

import farmhash
import numpy as np

from collector.export.batch import Batch

HASH_VERSION = "farmhash-fingerprint64/weighted-splitmix64/2"

_fingerprint = farmhash.Fingerprint64
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
# Odd, so that no field's hash is lost. The name's and the user's weights differ by twice an
# odd number: two events whose name and user trade places get different keys unless those two
# hashes agree in 63 bits.
_W_NAME = np.uint64(0x9E3779B97F4A7C15)
_W_USER = np.uint64(0xC2B2AE3D27D4EB4F)
_W_TIME = np.uint64(0x165667B19E3779F9)
# Up to one row in 16 without `$insert_id`, those rows are found and patched one by one; past
# that, a pass over every row costs less.
_FEW = 16


def text_hashes(texts: Iterable[str], n: int) -> np.ndarray:
    """Fingerprint64 of each text's UTF-8 bytes, as int64 (BigQuery's `FARM_FINGERPRINT`)."""
    texts = list(texts) if not isinstance(texts, list) else texts
    try:
        out = np.fromiter(map(_fingerprint, texts), np.uint64, n)
    except UnicodeEncodeError:
        # A JSON escape can make a lone surrogate: still text, and still hashed the same way.
        out = np.fromiter(
            (_fingerprint(t.encode("utf-8", "surrogatepass")) for t in texts), np.uint64, n
        )
    return out.view(np.int64)


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
        cached = batch.cache["names"] = text_hashes(batch.names, len(batch))
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


def _absent(ids: list[str | None]) -> list[int] | None:
    """The rows with no `$insert_id`, found by C scans (`list.index`, one call per such row),
    or None once they are more than one in `_FEW`: then one pass over every row costs less."""
    rows: list[int] = []
    at = -1
    find = ids.index
    most = len(ids) // _FEW
    try:
        while len(rows) <= most:
            at = find(None, at + 1)
            rows.append(at)
    except ValueError:
        return rows
    return None


def keyed(batch: Batch) -> np.ndarray:
    """Which rows carry an `$insert_id` (only those can be de-duplicated); kept on the batch."""
    cached = batch.cache.get("keyed")
    if cached is None:
        ids = batch.insert_ids
        absent = _absent(ids)
        if absent is None:
            cached = np.fromiter(map(is_not, ids, repeat(None)), bool, len(ids))
        else:
            cached = np.ones(len(ids), dtype=bool)
            cached[absent] = False
        batch.cache["keyed"] = cached
    return cached


def _insert_id_hashes(batch: Batch) -> np.ndarray:
    """One hash per row of its `$insert_id`. A row without one is hashed as if its id were "":
    its key is never used, as such a row cannot be de-duplicated."""
    ids = batch.insert_ids
    has = keyed(batch)
    if not has.all():
        absent = np.flatnonzero(~has)
        if len(absent) > len(ids) // _FEW:  # the same rule as `_absent`'s
            ids = [i or "" for i in ids]
        else:
            ids = ids.copy()
            for row in absent.tolist():
                ids[row] = ""
    return text_hashes(ids, len(ids))


def key_hashes(batch: Batch) -> np.ndarray:
    """One hash per row of Mixpanel's de-duplication key: name, user, time, `$insert_id`.

    Meaningful only for the rows that are `keyed`.
    """
    cached = batch.cache.get("keys")
    if cached is None:
        key = name_hashes(batch).view(np.uint64) * _W_NAME
        key += user_hashes(batch).view(np.uint64) * _W_USER
        key += np.ascontiguousarray(batch.times, dtype=np.float64).view(np.uint64) * _W_TIME
        key += _insert_id_hashes(batch).view(np.uint64)
        cached = batch.cache["keys"] = _mix(key).view(np.int64)
    return cached
