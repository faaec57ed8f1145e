"""A block of validated events as columns, so per-event work runs in C rather than a Python loop.

The decoder hands each block of lines to the aggregators as one `Batch`: event names, user ids
and `$insert_id`s as lists, times as a float64 array. Selecting, hashing and grouping then use
`map`, `zip` and numpy over whole columns. Iterating a batch still yields plain `Row`-ordered
tuples, for code (and tests) that think in rows.

An event without a user has `distinct_id` "" (Mixpanel treats missing and empty alike): it is an
event, but no user of any uniques count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import compress, repeat
from operator import is_not
from typing import NamedTuple

import numpy as np


class Row(NamedTuple):
    """The fields of one event; batches yield plain tuples in this order."""

    event: str
    distinct_id: str
    time: float  # true UTC epoch seconds
    insert_id: str | None


class Batch:
    """Columns of one block. Hashes are computed once and kept: a `/check` feeds one batch to
    every rule's aggregator, and a selection of it keeps the matching hashes."""

    __slots__ = (
        "_key_hashes",
        "_keyed",
        "_user_hashes",
        "insert_ids",
        "names",
        "times",
        "users",
    )

    def __init__(
        self,
        names: list[str],
        users: list[str],
        times: np.ndarray,
        insert_ids: list[str | None],
    ) -> None:
        self.names = names
        self.users = users
        self.times = times
        self.insert_ids = insert_ids
        self._user_hashes: np.ndarray | None = None
        self._key_hashes: np.ndarray | None = None
        self._keyed: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Batch:
        return cls([], [], np.empty(0, dtype=np.float64), [])

    @classmethod
    def of(cls, rows: Batch | Iterable[tuple[str, str, float, str | None]]) -> Batch:
        """A batch as is, or one built from rows."""
        if isinstance(rows, Batch):
            return rows
        rows = list(rows)
        if not rows:
            return cls.empty()
        names, users, times, insert_ids = (list(c) for c in zip(*rows, strict=True))
        return cls(names, users, np.array(times, dtype=np.float64), insert_ids)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, str, float, str | None]]:
        return zip(self.names, self.users, self.times.tolist(), self.insert_ids, strict=True)

    def select(self, mask: np.ndarray) -> Batch:
        """The rows where `mask` (a bool array, one per row) is true."""
        keep = mask.tolist()
        part = Batch(
            list(compress(self.names, keep)),
            list(compress(self.users, keep)),
            self.times[mask],
            list(compress(self.insert_ids, keep)),
        )
        for cached in ("_user_hashes", "_key_hashes", "_keyed"):
            value = getattr(self, cached)
            if value is not None:
                setattr(part, cached, value[mask])
        return part

    def within(self, start: float, end: float, names: frozenset[str] | None) -> Batch:
        """The rows in [start, end) and, if `names` is given, with one of those names."""
        mask = (self.times >= start) & (self.times < end)
        if names is not None:
            mask &= np.fromiter(map(names.__contains__, self.names), bool, len(self.names))
        return self if mask.all() else self.select(mask)

    def user_hashes(self) -> np.ndarray:
        """One hash per row of its `distinct_id` ("" for no user)."""
        if self._user_hashes is None:
            self._user_hashes = np.fromiter(map(hash, self.users), np.int64, len(self.users))
        return self._user_hashes

    def identified_user_hashes(self) -> np.ndarray:
        """The user hashes of the rows that have a user: Mixpanel leaves an empty or missing
        `distinct_id` out of every uniques count."""
        hashes = self.user_hashes()
        if not self.users.count(""):
            return hashes
        return hashes[np.fromiter(map(bool, self.users), bool, len(self.users))]

    def key_hashes(self) -> np.ndarray:
        """One hash per row of Mixpanel's de-duplication key: name, user, time, `$insert_id`."""
        if self._key_hashes is None:
            keys = zip(self.names, self.users, self.times.tolist(), self.insert_ids, strict=True)
            self._key_hashes = np.fromiter(map(hash, keys), np.int64, len(self.names))
        return self._key_hashes

    def keyed(self) -> np.ndarray:
        """Which rows carry an `$insert_id` (only those can be de-duplicated)."""
        if self._keyed is None:
            n = len(self.insert_ids)
            if self.insert_ids.count(None):
                self._keyed = np.fromiter(map(is_not, self.insert_ids, repeat(None)), bool, n)
            else:
                self._keyed = np.ones(n, dtype=bool)
        return self._keyed
