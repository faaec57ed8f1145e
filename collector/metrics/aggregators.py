"""Aggregators that make retries idempotent.

Mixpanel's export has no cursor: a retry re-reads the whole query. Both metrics are unions of
sets (distinct users; de-duplication keys of events), so folding every attempt into the same set
counts each thing once however many times it was read. A union of subsets of the truth never
exceeds it (a partial answer is a lower bound), and once one attempt reads the whole body the
union equals the truth exactly.

Events without `$insert_id` cannot be de-duplicated; they count as they come. For those, each
attempt keeps its own count per name and the result takes the largest: each attempt's count is
a lower bound, and the one complete attempt's count is the truth.

Hashes are Python's 64-bit `hash()`, stable within one process, which is all a run needs.
The chance of a collision among a million members is about 3e-8.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import datasketches
import numpy as np

from collector.export.batch import Batch, Row
from collector.metrics.by_event import NameCounts
from collector.metrics.hashset import CountingHashSet, HashSet
from collector.metrics.names import NameCodes

SKETCH_LG_K = 13  # 2^13 registers: about 1.8% relative error at 95%, 8 KiB


class Aggregator(Protocol):
    def new_attempt(self) -> None: ...

    def add(self, rows: Batch | Iterable[Row]) -> None: ...

    def result(self) -> dict[str, Any]: ...


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
        hashes = batch.identified_user_hashes()
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
        batch = Batch.of(rows)
        n = len(batch)
        if not n:
            return
        self.rows += n
        codes = self._names.codes(batch.names)
        hashes = batch.key_hashes()
        keyed = batch.keyed()
        if not keyed.all():
            self._grow()
            self._unkeyed_now += np.bincount(codes[~keyed], minlength=len(self._unkeyed_now))
            codes, hashes = codes[keyed], hashes[keyed]
        if len(codes):
            self._keys.update(hashes, codes)

    def _grow(self) -> None:
        grow = len(self._names) - len(self._unkeyed_now)
        if grow > 0:
            more = np.zeros(max(grow, len(self._unkeyed_now) // 2), np.int32)
            self._unkeyed_now = np.concatenate([self._unkeyed_now, more])
            self._unkeyed_best = np.concatenate([self._unkeyed_best, more])

    def _counts(self) -> np.ndarray:
        size = len(self._names)
        self._grow()
        unkeyed = np.maximum(self._unkeyed_best, self._unkeyed_now)[:size]
        return self._keys.counts(size) + unkeyed

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
