"""A block of validated events as columns, so per-event work runs in C rather than a Python loop.

The decoder hands each block of lines to the aggregators as one `Batch`: event names, user ids
and `$insert_id`s as lists, times as a float64 array. Selecting, hashing and grouping then use
`map`, `zip` and numpy over whole columns (hashing is the metrics' business: see
`collector.metrics.hashing`). Iterating a batch still yields plain `Row`-ordered tuples, for
code (and tests) that think in rows.

An event without a user has `distinct_id` "" (Mixpanel treats missing and empty alike): it is an
event, but no user of any uniques count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import compress
from typing import NamedTuple

import numpy as np


class Row(NamedTuple):
    """The fields of one event; batches yield plain tuples in this order."""

    event: str
    distinct_id: str
    time: float  # true UTC epoch seconds
    insert_id: str | None


class Batch:
    """Columns of one block. `cache` keeps what is derived from the columns (the metrics'
    hashes): a `/check` feeds one batch to every rule's aggregator, and a selection of it keeps
    the matching rows of every cached column."""

    __slots__ = ("cache", "insert_ids", "names", "times", "users")

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
        self.cache: dict[str, np.ndarray] = {}  # per-row arrays derived from the columns

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

    @classmethod
    def join(cls, parts: list[Batch]) -> Batch:
        """The rows of several batches, in order, as one. A lone non-empty part is returned as it
        is, cache included; a join of several starts with no cache."""
        parts = [part for part in parts if len(part)]
        if len(parts) < 2:
            return parts[0] if parts else cls.empty()
        first, rest = parts[0], parts[1:]
        names, users, ids = first.names.copy(), first.users.copy(), first.insert_ids.copy()
        for part in rest:  # list.extend copies a list at once; a chain would go row by row
            names.extend(part.names)
            users.extend(part.users)
            ids.extend(part.insert_ids)
        return cls(names, users, np.concatenate([part.times for part in parts]), ids)

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
        part.cache = {name: column[mask] for name, column in self.cache.items()}
        return part

    def within(self, start: float, end: float, names: frozenset[str] | None) -> Batch:
        """The rows in [start, end) and, if `names` is given, with one of those names."""
        mask = (self.times >= start) & (self.times < end)
        if names is not None:
            mask &= np.fromiter(map(names.__contains__, self.names), bool, len(self.names))
        return self if mask.all() else self.select(mask)
