"""Aggregators that make retries idempotent, and that merge.

Mixpanel's export has no cursor: a retry re-reads the whole query. Both metrics are unions of
sets (distinct users; de-duplication keys of events), so folding every attempt into the same set
counts each thing once however many times it was read. A union of subsets of the truth never
exceeds it (a partial answer is a lower bound), and once one attempt reads the whole body the
union equals the truth exactly.

Events without `$insert_id` cannot be de-duplicated; they count as they come. For those, each
attempt keeps its own count per name and the result takes the largest: each attempt's count is
a lower bound, and the one complete attempt's count is the truth.

Every aggregator has the shape of a DataSketches sketch: `add`, `merge`, `result`, and
`to_bytes` / `from_bytes`. Merging combines parts of a window read apart (time slices, or
workers): sets and sketches unite, so overlapping parts still count a member once; unkeyed
events add up, so parts merged must not overlap. Hashes are stable (`collector.metrics.hashing`)
and the hash version is part of every serialised state. The chance of a collision among a
million members is about 3e-8.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import datasketches
import msgspec
import numpy as np

from collector.export.batch import Batch, Row
from collector.metrics.by_event import NameCounts
from collector.metrics.hashing import (
    HASH_VERSION,
    identified_user_hashes,
    key_hashes,
    keyed,
    name_hashes,
)
from collector.metrics.hashset import CountingHashSet, HashSet
from collector.metrics.names import NameCodes

SKETCH_LG_K = 13  # 2^13 registers: about 1.8% relative error at 95%, 8 KiB
STATE_VERSION = 1


class Aggregator(Protocol):
    def new_attempt(self) -> None: ...

    def add(self, rows: Batch | Iterable[Row]) -> None: ...

    def result(self) -> dict[str, Any]: ...


def _pack(kind: str, fields: dict[str, Any]) -> bytes:
    return msgspec.msgpack.encode(
        {"kind": kind, "version": STATE_VERSION, "hash": HASH_VERSION, **fields}
    )


def _unpack(data: bytes, kind: str) -> dict[str, Any]:
    """The fields of a serialised state, after checking it is one of ours, of this kind."""
    try:
        state = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a serialised aggregate: {exc}") from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ValueError(f"not a serialised {kind} aggregate")
    if state.get("version") != STATE_VERSION or state.get("hash") != HASH_VERSION:
        raise ValueError(
            f"a {kind} aggregate of version {state.get('version')} hashed with "
            f"{state.get('hash')!r}; this is version {STATE_VERSION} with {HASH_VERSION!r}"
        )
    return state


def _array(data: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(data, dtype=dtype).astype(dtype.lstrip("<"))


class DistinctUsers:
    """Exact up to `exact_cap` distinct users; past it, an HLL sketch (Apache DataSketches).

    The switch keeps memory bounded on a huge window: the sketch is a few kilobytes however many
    users there are. Re-adding a member changes neither a set nor a sketch, so retries stay
    idempotent in both modes. Below the cap the answer stays exact.
    """

    def __init__(self, exact_cap: int = 0, lg_k: int = SKETCH_LG_K) -> None:
        self.exact_cap = exact_cap  # 0: always exact
        self.lg_k = lg_k
        self.users = HashSet()
        self.sketch: datasketches.hll_sketch | None = None
        self.rows = 0

    def new_attempt(self) -> None:
        pass  # the set spans attempts: that is what makes a retry idempotent

    def add(self, rows: Batch | Iterable[Row]) -> None:
        batch = Batch.of(rows)
        self.rows += len(batch)
        self.add_hashes(identified_user_hashes(batch))

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Add users by their hashes (`collector.metrics.hashing.user_hashes`)."""
        if self.sketch is not None:
            update = self.sketch.update
            for h in hashes.tolist():
                update(h)
            return
        self.users.update(hashes)
        if self.exact_cap and self.users.settled > self.exact_cap:
            self._to_sketch()

    def _to_sketch(self) -> None:
        sketch = datasketches.hll_sketch(self.lg_k, datasketches.tgt_hll_type.HLL_8)
        for h in self.users.members().tolist():
            sketch.update(h)
        self.sketch, self.users = sketch, HashSet()

    @property
    def estimate(self) -> bool:
        if self.sketch is None and self.exact_cap and len(self.users) > self.exact_cap:
            self._to_sketch()  # crossed the cap inside the last pending buffer
        return self.sketch is not None

    def merge(self, other: DistinctUsers) -> None:
        """Unite with another part's users (an exact set, or a sketch past the cap)."""
        self.rows += other.rows
        if self.sketch is None and other.sketch is None:
            self.users.merge(other.users)
            if self.exact_cap and len(self.users) > self.exact_cap:
                self._to_sketch()
            return
        union = datasketches.hll_union(max(self.lg_k, other.lg_k))
        for part in (self, other):
            if part.sketch is not None:
                union.update(part.sketch)
            else:
                for h in part.users.members().tolist():
                    union.update(h)
        self.sketch = union.get_result(datasketches.tgt_hll_type.HLL_8)
        self.lg_k = self.sketch.lg_config_k
        self.users = HashSet()

    def to_bytes(self) -> bytes:
        exact = self.sketch is None
        return _pack(
            "distinct_users",
            {
                "cap": self.exact_cap,
                "lg_k": self.lg_k,
                "rows": self.rows,
                "members": self.users.members().astype("<i8").tobytes() if exact else None,
                "sketch": None if exact else self.sketch.serialize_compact(),
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctUsers:
        state = _unpack(data, "distinct_users")
        out = cls(int(state["cap"]), int(state["lg_k"]))
        out.rows = int(state["rows"])
        if state["sketch"] is not None:
            out.sketch = datasketches.hll_sketch.deserialize(state["sketch"])
        else:
            out.users.update(_array(state["members"], "<i8"))
        return out

    def relative_error(self) -> float:
        """The sketch's relative error bound at 2 standard deviations (about 95%)."""
        return abs(datasketches.hll_sketch.get_rel_err(True, False, self.lg_k, 2))

    def value(self) -> int:
        if self.estimate:
            assert self.sketch is not None
            return round(self.sketch.get_estimate())
        return len(self.users)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value(), "estimate": self.estimate}
        if self.estimate:
            out["relative_error"] = round(self.relative_error(), 4)
        return out


class EventCounts:
    """Events per name: de-duplicated by Mixpanel's key where `$insert_id` is present.

    Names get small integer codes (`NameCodes`); every keyed event's key hash goes, with its
    code, into one counting set, and unkeyed events are counted per code in arrays. So a name
    costs a few array slots, not objects of its own: a window with a million distinct names
    stays small, and so does its answer (`NameCounts`).
    """

    def __init__(self) -> None:
        self.rows = 0
        self._names = NameCodes()
        self._keys = CountingHashSet()
        # Unkeyed events per code: this attempt's count, and the best of earlier attempts.
        self._unkeyed_now = np.zeros(0, dtype=np.int32)
        self._unkeyed_best = np.zeros(0, dtype=np.int32)

    def new_attempt(self) -> None:
        np.maximum(self._unkeyed_best, self._unkeyed_now, out=self._unkeyed_best)
        self._unkeyed_now[:] = 0

    def add(self, rows: Batch | Iterable[Row]) -> None:
        self.add_coded(Batch.of(rows))

    def add_coded(self, batch: Batch) -> np.ndarray | None:
        """`add`, returning the name code of every row (None for an empty batch)."""
        n = len(batch)
        if not n:
            return None
        self.rows += n
        row_codes = codes = self._names.codes(batch.names, name_hashes(batch))
        hashes = key_hashes(batch)
        has_id = keyed(batch)
        if not has_id.all():
            self._grow()
            self._unkeyed_now += np.bincount(codes[~has_id], minlength=len(self._unkeyed_now))
            codes, hashes = codes[has_id], hashes[has_id]
        if len(codes):
            self._keys.update(hashes, codes)
        return row_codes

    def names_and_counts(self) -> tuple[list[str], np.ndarray]:
        """Every name seen, by code, and its count (zero for a name only seen as a duplicate)."""
        return [self._names.name(c) for c in range(len(self._names))], self._counts()

    def _grow(self) -> None:
        grow = len(self._names) - len(self._unkeyed_now)
        if grow > 0:
            more = np.zeros(max(grow, len(self._unkeyed_now) // 2), np.int32)
            self._unkeyed_now = np.concatenate([self._unkeyed_now, more])
            self._unkeyed_best = np.concatenate([self._unkeyed_best, more])

    def _counts(self) -> np.ndarray:
        return self._keys.counts(len(self._names)) + self._unkeyed()

    def merge(self, other: EventCounts) -> None:
        """Add another part's counts: keys unite, unkeyed events add up (parts must not
        overlap in time, which slices of a window never do)."""
        self.rows += other.rows
        hashes, codes = other._keys.members()
        if not len(other._names):
            return
        names = [other._names.name(c) for c in range(len(other._names))]
        mine = self._names.codes(names)
        if len(hashes):
            self._keys.update(hashes, mine[codes])
        self.new_attempt()  # this part's attempts are settled into its best count first
        self._grow()
        np.add.at(self._unkeyed_best, mine, other._unkeyed().astype(np.int32))

    def _unkeyed(self) -> np.ndarray:
        """Unkeyed events per code: the best attempt's count."""
        self._grow()
        return np.maximum(self._unkeyed_best, self._unkeyed_now)[: len(self._names)]

    def to_bytes(self) -> bytes:
        hashes, codes = self._keys.members()
        return _pack(
            "events",
            {
                "rows": self.rows,
                "names": [self._names.name(c) for c in range(len(self._names))],
                "keys": hashes.astype("<i8").tobytes(),
                "codes": codes.astype("<i4").tobytes(),
                "unkeyed": self._unkeyed().astype("<i8").tobytes(),
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> EventCounts:
        state = _unpack(data, "events")
        out = cls()
        out.rows = int(state["rows"])
        codes = out._names.codes(list(state["names"]))
        keys = _array(state["keys"], "<i8")
        if len(keys):
            out._keys.update(keys, codes[_array(state["codes"], "<i4")])
        out._grow()
        np.add.at(out._unkeyed_best, codes, _array(state["unkeyed"], "<i8").astype(np.int32))
        return out

    def by_event(self) -> NameCounts:
        return NameCounts(self._names, self._counts())

    def value(self) -> int:
        return int(self._counts().sum())

    def duplicates(self) -> int:
        """Rows read but not counted: true duplicates and rows re-read by a retry."""
        return self.rows - self.value()

    def result(self) -> dict[str, Any]:
        by_event = self.by_event()
        return {"value": by_event.total(), "by_event": by_event}
