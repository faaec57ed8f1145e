"""What a slice keeps, and how slice states combine.

A slice's state is, per event name, its de-duplicated event count, and the set of (user, name)
pairs seen, so that distinct users can be answered for any set of names. De-duplication keys
are needed only while a slice is read: the key includes `time`, so a key never spans two
slices, and a slice's count is final once its read is. States of different slices therefore
combine by adding counts and uniting pairs (a rollup, or an answer over many slices). Two reads
of the same slice do not add up: a complete read replaces the state, and two partial reads keep
the larger count of each name and the union of pairs (both lower bounds).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from collector.export.batch import Batch
from collector.metrics.aggregators import EventCounts
from collector.metrics.hashing import HASH_VERSION, user_hashes

# 2: a state says the slice length it was cut with and, for a rollup, the last refresh age its
# slices were read past (version 1 said neither: its rollups could be made while a refresh was
# still due, so they are read again rather than trusted).
STATE_VERSION = 2


@dataclass
class SliceState:
    """One slice (or a rollup of several): counts by name, (user, name) pairs, and its read."""

    start: int
    end: int
    names: list[str] = field(default_factory=list)
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted pairs:
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # (user, name)
    complete: bool = False
    read_at: float = 0.0  # when it was read (the oldest read, for a rollup)
    slices: int = 1  # how many slices it stands for
    slice_seconds: int = 0  # the length of the slices it is cut from (0: its span; -1: mixed)
    settled_hours: float | None = None  # a rollup: every slice read past this age of its end

    def __post_init__(self) -> None:
        if not self.slice_seconds:
            self.slice_seconds = self.end - self.start

    def code_of(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(
            {
                "version": STATE_VERSION,
                "hash": HASH_VERSION,
                "start": self.start,
                "end": self.end,
                "names": self.names,
                "counts": self.counts.astype("<i8").tobytes(),
                "users": self.users.astype("<i8").tobytes(),
                "codes": self.codes.astype("<i4").tobytes(),
                "complete": self.complete,
                "read_at": self.read_at,
                "slices": self.slices,
                "slice_seconds": self.slice_seconds,
                "settled_hours": self.settled_hours,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SliceState:
        if d.get("version") != STATE_VERSION or d.get("hash") != HASH_VERSION:
            raise ValueError(
                f"a slice state of version {d.get('version')} hashed with {d.get('hash')!r}; "
                f"this is version {STATE_VERSION} with {HASH_VERSION!r}"
            )
        return cls(
            start=int(d["start"]),
            end=int(d["end"]),
            names=list(d["names"]),
            counts=np.frombuffer(d["counts"], "<i8").astype(np.int64),
            users=np.frombuffer(d["users"], "<i8").astype(np.int64),
            codes=np.frombuffer(d["codes"], "<i4").astype(np.int32),
            complete=bool(d["complete"]),
            read_at=float(d["read_at"]),
            slices=int(d["slices"]),
            slice_seconds=int(d["slice_seconds"]),
            settled_hours=None if d["settled_hours"] is None else float(d["settled_hours"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return msgspec.msgpack.decode(self.to_bytes())


def unique_pairs(users: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, de-duplicated (user, code) pairs."""
    if not len(users):
        return users.astype(np.int64), codes.astype(np.int32)
    order = np.lexsort((codes, users))
    users, codes = users[order], codes[order]
    keep = np.ones(len(users), dtype=bool)
    keep[1:] = (users[1:] != users[:-1]) | (codes[1:] != codes[:-1])
    return users[keep], codes[keep]


def combine(states: list[SliceState]) -> SliceState:
    """Disjoint slices as one: counts add up, pairs unite; complete only if every part is."""
    if not states:
        raise ValueError("nothing to combine")
    names: dict[str, int] = {}
    for s in states:
        for name in s.names:
            names.setdefault(name, len(names))
    counts = np.zeros(len(names), np.int64)
    users, codes = [], []
    for s in states:
        if not s.names:
            continue
        remap = np.fromiter((names[n] for n in s.names), np.int32, len(s.names))
        np.add.at(counts, remap, s.counts[: len(s.names)])
        users.append(s.users)
        codes.append(remap[s.codes] if len(s.codes) else s.codes)
    u, c = unique_pairs(
        np.concatenate(users) if users else np.zeros(0, np.int64),
        np.concatenate(codes) if codes else np.zeros(0, np.int32),
    )
    return SliceState(
        start=min(s.start for s in states),
        end=max(s.end for s in states),
        names=list(names),
        counts=counts,
        users=u,
        codes=c,
        complete=all(s.complete for s in states),
        read_at=min(s.read_at for s in states),
        slices=sum(s.slices for s in states),
        slice_seconds=cuts.pop() if len(cuts := {s.slice_seconds for s in states}) == 1 else -1,
    )


def reread(old: SliceState | None, new: SliceState) -> SliceState:
    """A slice read again: a complete read replaces; a partial one cannot lower what is known."""
    if old is None or new.complete:
        return new
    if old.complete:
        return old
    names = list(dict.fromkeys([*old.names, *new.names]))
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros(len(names), np.int64)
    for s in (old, new):
        for name, n in zip(s.names, s.counts.tolist(), strict=True):
            counts[index[name]] = max(counts[index[name]], n)
    both = combine([old, new])
    remap = np.fromiter((index[n] for n in both.names), np.int32, len(both.names))
    codes = remap[both.codes] if len(both.codes) else both.codes
    users, codes = unique_pairs(both.users, codes)
    return SliceState(
        old.start, old.end, names, counts, users, codes, False, max(old.read_at, new.read_at)
    )


class SliceCollector:
    """The rows of one slice (or an edge of a window) while they are read."""

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.counts = EventCounts()
        self._users = array("q")
        self._codes = array("i")

    def new_attempt(self) -> None:
        self.counts.new_attempt()

    def add(self, batch: Batch) -> None:
        codes = self.counts.add_coded(batch)
        if codes is None:
            return
        identified = batch.users.count("") < len(batch)
        if not identified:
            return
        hashes = user_hashes(batch)
        if batch.users.count(""):
            has_user = np.fromiter(map(bool, batch.users), bool, len(batch))
            hashes, codes = hashes[has_user], codes[has_user]
        self._users.frombytes(memoryview(np.ascontiguousarray(hashes)).cast("B"))
        self._codes.frombytes(memoryview(np.ascontiguousarray(codes, np.int32)).cast("B"))

    def state(self, complete: bool, read_at: float) -> SliceState:
        names, counts = self.counts.names_and_counts()
        users, codes = unique_pairs(
            np.frombuffer(self._users, np.int64).copy(), np.frombuffer(self._codes, np.int32).copy()
        )
        return SliceState(self.start, self.end, names, counts, users, codes, complete, read_at)
