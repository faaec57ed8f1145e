"""A compact set of 64-bit hashes: 8 bytes per member instead of a Python object each.

New hashes are appended to a flat pending buffer (8 bytes each, however small the batches: an
event name seen once per block must not cost an array object per block); when the buffer
outgrows the sorted, de-duplicated array it is merged in. Amortised cost is O(n log n) and peak
memory is a small multiple of 8 bytes per member. Membership tests are not needed by the
metrics, only the size.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np

_MIN_PENDING = 1 << 16


class HashSet:
    __slots__ = ("_pending", "_sorted")

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._pending = array("q")

    def update(self, hashes: np.ndarray | Iterable[int]) -> None:
        if isinstance(hashes, np.ndarray):
            self._pending.frombytes(np.ascontiguousarray(hashes, dtype=np.int64).view(np.uint8))
        else:
            self._pending.extend(hashes)
        if len(self._pending) >= max(_MIN_PENDING, len(self._sorted)):
            self._compact()

    def merge(self, other: HashSet) -> None:
        other._compact()
        self._compact()
        self._sorted = _merge(self._sorted, other._sorted)

    def _compact(self) -> None:
        if not self._pending:
            return
        fresh = _sorted_unique(np.frombuffer(self._pending, dtype=np.int64))
        self._pending = array("q")
        self._sorted = _merge(self._sorted, fresh) if len(self._sorted) else fresh

    def __len__(self) -> int:
        self._compact()
        return len(self._sorted)

    @property
    def settled(self) -> int:
        """Members counted so far without merging the pending buffer (a cheap lower bound)."""
        return len(self._sorted)

    def members(self) -> np.ndarray:
        self._compact()
        return self._sorted

    @property
    def nbytes(self) -> int:
        return int(self._sorted.nbytes) + self._pending.itemsize * len(self._pending)


class CountingHashSet:
    """A set of 64-bit hashes, each with a small integer code, that counts its members per code.

    For event counts by name: the de-duplication key includes the name, so a key's hash always
    comes with the same code. When the pending buffer is merged, each member new to the set adds
    one to its code's count. So one set serves every name, with no array per name (a window can
    hold a million distinct names): 12 bytes a member, kept so that a set can be serialised and
    merged with another.
    """

    __slots__ = ("_codes", "_counts", "_hashes", "_pending_codes", "_pending_hashes")

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.int64)
        self._codes = np.empty(0, dtype=np.int32)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending_hashes = array("q")
        self._pending_codes = array("i")

    def update(self, hashes: np.ndarray, codes: np.ndarray) -> None:
        self._pending_hashes.frombytes(
            memoryview(np.ascontiguousarray(hashes, dtype=np.int64)).cast("B")
        )
        self._pending_codes.frombytes(
            memoryview(np.ascontiguousarray(codes, dtype=np.int32)).cast("B")
        )
        # A quarter of the set: merging costs a copy of the set, the buffer its 12 bytes a row
        # and the sort of it temporaries; a small buffer keeps the peak near the set itself.
        if len(self._pending_hashes) >= max(_MIN_PENDING, len(self._hashes) // 4):
            self._compact()

    def _compact(self) -> None:
        if not self._pending_hashes:
            return
        hashes = np.frombuffer(self._pending_hashes, dtype=np.int64)
        codes = np.frombuffer(self._pending_codes, dtype=np.int32)
        order = np.argsort(hashes)
        hashes, codes = hashes[order], codes[order]
        del order
        if len(hashes) > 1:
            first = np.empty(len(hashes), dtype=bool)
            first[0] = True
            np.not_equal(hashes[1:], hashes[:-1], out=first[1:])
            hashes, codes = hashes[first], codes[first]
        self._pending_hashes, self._pending_codes = array("q"), array("i")
        if len(self._hashes):
            at, new = _new_members(self._hashes, hashes)
            hashes, codes, at = hashes[new], codes[new], at[new]
            self._hashes, self._codes = _insert_pairs(self._hashes, self._codes, at, hashes, codes)
        else:
            self._hashes, self._codes = hashes, codes
        fresh = np.bincount(codes)
        if len(fresh) > len(self._counts):
            self._counts = np.concatenate(
                [self._counts, np.zeros(len(fresh) - len(self._counts), np.int64)]
            )
        self._counts[: len(fresh)] += fresh

    def __len__(self) -> int:
        self._compact()
        return len(self._hashes)

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """The sorted hashes and the code of each."""
        self._compact()
        return self._hashes, self._codes

    def counts(self, size: int) -> np.ndarray:
        """Members per code, for codes 0 .. size-1."""
        self._compact()
        out = np.zeros(size, dtype=np.int64)
        out[: len(self._counts)] = self._counts[:size]
        return out


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` for int64, by sorting: numpy 2.3+ de-duplicates with a hash table first, which
    measured 7-12x slower on a million hashes (`python -m bench`, profile)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _merge(known: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """Sorted union of two sorted, de-duplicated arrays without sorting them together.

    `np.union1d` concatenates and sorts both, which briefly needs several copies of the large
    side; finding the new members by binary search and inserting them needs one output array.
    """
    at, new = _new_members(known, fresh)
    return np.insert(known, at[new], fresh[new])


def _insert_pairs(
    hashes: np.ndarray,
    codes: np.ndarray,
    at: np.ndarray,
    fresh: np.ndarray,
    fresh_codes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`np.insert` of `fresh` (sorted) at `at` into `hashes`, and of their codes into `codes`,
    with one placement mask for both: `np.insert` would build and sort it once per array."""
    size = len(hashes) + len(fresh)
    placed = at + np.arange(len(fresh))
    old = np.ones(size, dtype=bool)
    old[placed] = False
    out, out_codes = np.empty(size, dtype=hashes.dtype), np.empty(size, dtype=codes.dtype)
    out[placed], out_codes[placed] = fresh, fresh_codes
    out[old], out_codes[old] = hashes, codes
    return out, out_codes


def _new_members(known: np.ndarray, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `fresh` (sorted, unique) goes in `known`, and which are not in it yet."""
    at = np.searchsorted(known, fresh)
    inside = at < len(known)
    new = np.ones(len(fresh), dtype=bool)
    new[inside] = known[at[inside]] != fresh[inside]
    return at, new
