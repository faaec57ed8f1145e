"""The ledger's objects in a blob store: one per hour of slices, one per settled day.

Layout under `LEDGER_STORE`:
- `hours/YYYY-MM-DD/HH` — the states of that hour's slices read so far;
- `days/YYYY-MM-DD` — a settled day rolled up (every slice read completely at or after its last
  refresh age: a rollup owes nothing), which answers a window holding the whole day in one
  read; its hour objects stay, for windows that hold part of it.

Slices are kept by (start, end): slices of two lengths may share an hour object, and each
reader uses only those of its own length (docs/ledger.md, "Invariants").

Every write is conditional on the version read (`collector.stores`): two writers of the same
hour (two workers, two instances, a backfill task) never lose each other's slices; the loser
reads again and merges (`state.reread`). Objects older than `LEDGER_RETENTION_DAYS` are removed
as days are rolled up.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from collector.errors import StoreConflict, StoreTimeout
from collector.export.deadline import Deadline
from collector.ledger.slices import Slicing, day_key, day_start, hour_key
from collector.ledger.state import SliceState, combine, reread
from collector.stores import ABSENT, BlobStore, probe

log = logging.getLogger("collector.ledger")

# Writers of one hour object at once: every thread of every instance and the backfill's tasks.
# Each conflict backs off a random while (up to CAS_BACKOFF_SECONDS, doubling), so that a crowd
# of writers spreads out instead of colliding again in step.
CAS_ATTEMPTS = 16
CAS_BACKOFF_SECONDS = 0.01
DAY = 86400
# Within one answer's deadline: loading the store may take at most this share of it (what is not
# loaded by then is read from the export, which keeps the rest), and keeping what was read may
# take until WRITE_SECONDS after its end (the request timeout leaves a minute after
# EXPORT_DEADLINE_SECONDS to answer, and what was read is worth keeping).
LOAD_SHARE = 0.5
WRITE_SECONDS = 5.0


def load_seconds(deadline: Deadline | None) -> float | None:
    """What loading may still wait on the store (<= 0: stop loading)."""
    if deadline is None:
        return None
    return min(deadline.remaining(), deadline.seconds * LOAD_SHARE - deadline.elapsed())


def write_seconds(deadline: Deadline | None) -> float | None:
    """What keeping may still wait on the store; StoreError once that time is spent."""
    if deadline is None:
        return None
    left = WRITE_SECONDS - deadline.past()
    if left <= 0:
        raise StoreTimeout(
            "keeping what was read ran out of time (EXPORT_DEADLINE_SECONDS and "
            f"{WRITE_SECONDS:.0f} s more)"
        )
    return left


# What a damaged object, or one of another version, raises on the way to a state.
_UNREADABLE = (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError)
T = TypeVar("T")


Key = tuple[int, int]  # a slice by its (start, end): slices of two lengths never mix


def _hour_slices(doc: Any) -> dict[Key, SliceState]:
    states = (SliceState.from_dict(v) for v in doc["slices"].values())
    return {(s.start, s.end): s for s in states}


def _load_time_left(deadline: Deadline | None, loaded: Loaded) -> float | None:
    seconds = load_seconds(deadline)
    if seconds is not None and seconds <= 0:
        loaded.cut = True
        log.warning(
            "ledger: loading stopped at %.0f%% of the deadline; the rest is read from the export",
            LOAD_SHARE * 100,
        )
    return seconds


@dataclass
class Loaded:
    """What the ledger holds for a window: whole-day rollups and single slices."""

    days: list[SliceState]
    slices: dict[int, SliceState]  # by slice start
    day_starts: set[int] = field(default_factory=set)  # days answered by a rollup
    cut: bool = False  # loading stopped for time: the store answered slowly


class Ledger:
    """Slice states kept in a blob store."""

    def __init__(self, blobs: BlobStore, slicing: Slicing, retention_days: int = 35) -> None:
        self.blobs = blobs
        self.slicing = slicing
        self.retention_days = retention_days

    def describe(self) -> str:
        return self.blobs.describe()

    def check_writable(self) -> None:
        """Raise StoreError unless an object can be written and removed here (before work
        whose point is to keep what it reads)."""
        probe(self.blobs, seconds=2 * WRITE_SECONDS)

    # -- reading ------------------------------------------------------------------------------

    def load(
        self,
        start: int,
        end: int,
        on_day: Callable[[SliceState], None] | None = None,
        deadline: Deadline | None = None,
    ) -> Loaded:
        """The kept states of the whole slices in [start, end). With `on_day`, each day's
        rollup goes to it as it is read and is not kept: a month of them need not be held at
        once. Past `deadline`, loading stops: what was not loaded is what the caller lacks."""
        out = Loaded([], {})
        for day in range(day_start(start), end, DAY):
            seconds = _load_time_left(deadline, out)
            if out.cut:
                return out
            if start <= day and day + DAY <= end:
                state, _ = self._day(day, seconds)
                if state is not None:
                    out.day_starts.add(day)
                    if on_day is None:
                        out.days.append(state)
                    else:
                        on_day(state)
                    continue
            for hour in range(max(day, start - start % 3600), min(day + DAY, end), 3600):
                seconds = _load_time_left(deadline, out)
                if out.cut:
                    return out
                # Only slices of the current length: one of another length (a changed
                # LEDGER_SLICE_MINUTES, or another revision during a deploy) is not read as one
                # of this length; its time is read again.
                length = self.slicing.seconds
                for (a, b), s in self._hour(hour, seconds)[0].items():
                    if s.slice_seconds == length and start <= a and b <= end:
                        out.slices[a] = s
        return out

    def _day(self, day: int, seconds: float | None = None) -> tuple[SliceState | None, object]:
        """The day's rollup and its version: (None, ABSENT) if there is none. A rollup made
        when the last refresh age was shorter than now owes the later refreshes: it is treated
        as absent (the day answers from its slices, which are read again when due) and the next
        rollup replaces it."""
        state, version = self._object(f"days/{day_key(day)}", seconds, SliceState.from_dict)
        if state is not None and not self._rollup_settled(state):
            log.info(
                "ledger: days/%s was rolled up before the last refresh age of %s h; its slices "
                "answer until it is rolled up again",
                day_key(day),
                self.slicing.last_refresh_hours,
            )
            return None, version
        return state, version

    def _rollup_settled(self, state: SliceState) -> bool:
        return (
            state.complete
            and state.settled_hours is not None
            and state.settled_hours >= self.slicing.last_refresh_hours
        )

    def _hour(
        self, hour: int, seconds: float | None = None
    ) -> tuple[dict[Key, SliceState], object]:
        """The hour's slices by (start, end), of every length kept, and the object's version
        (ABSENT if there is none)."""
        slices, version = self._object(f"hours/{hour_key(hour)}", seconds, _hour_slices)
        return slices or {}, version

    def _object(
        self, name: str, seconds: float | None, parse: Callable[[Any], T]
    ) -> tuple[T | None, object]:
        """An object, parsed, and its version. One that cannot be read (damaged, or written
        by another version) is treated as absent but keeps its version, so that the next
        write of it replaces it: what it held is read again from the export."""
        found = self.blobs.get(name, seconds=seconds)
        if found is None:
            return None, ABSENT
        data, version = found
        try:
            return parse(msgspec.msgpack.decode(data)), version
        except _UNREADABLE as exc:
            log.warning(
                "ledger: %s/%s cannot be read (%s); it is treated as absent and replaced when "
                "its slices are read again",
                self.describe(),
                name,
                exc,
                extra={"json_fields": {"ledger_unreadable_object": name}},
            )
            return None, version

    # -- writing ------------------------------------------------------------------------------

    def save(self, states: list[SliceState], deadline: Deadline | None = None) -> None:
        """Keep freshly read slice states, merged with what other readers kept meanwhile."""
        by_hour: dict[int, list[SliceState]] = {}
        for s in states:
            by_hour.setdefault(s.start - s.start % 3600, []).append(s)
        for hour, fresh in by_hour.items():
            for attempt in range(CAS_ATTEMPTS):
                if attempt:
                    wait = random.uniform(0, CAS_BACKOFF_SECONDS * 2 ** min(attempt, 6))
                    time.sleep(min(wait, write_seconds(deadline) or wait))
                kept, version = self._hour(hour, write_seconds(deadline))
                for s in fresh:
                    kept[s.start, s.end] = reread(kept.get((s.start, s.end)), s)
                doc = {"slices": {f"{a}-{b}": v.as_dict() for (a, b), v in sorted(kept.items())}}
                try:
                    self.blobs.put(
                        f"hours/{hour_key(hour)}",
                        msgspec.msgpack.encode(doc),
                        if_version=version,
                        seconds=write_seconds(deadline),
                    )
                    break
                except StoreConflict:
                    continue
            else:
                raise StoreConflict(
                    f"{self.describe()}: hours/{hour_key(hour)} changed under every one of "
                    f"{CAS_ATTEMPTS} attempts to update it"
                )

    def roll_up(self, day: int, now: float, deadline: Deadline | None = None) -> bool:
        """Roll a settled day into one object; True if it was (or already is).

        A rollup is never read again (`LedgerService` answers a whole day from it), so a day is
        rolled up only when it owes nothing: every slice of it, at the current length, kept
        from a complete read made at or after its last refresh age. A slice whose last refresh
        failed keeps its earlier read and stays due; the day is rolled up once it is read."""
        if not self.slicing.settled(day + DAY, now):
            return False
        name = f"days/{day_key(day)}"
        existing, version = self._day(day, write_seconds(deadline))
        if existing is not None:
            return True
        kept: dict[Key, SliceState] = {}
        for hour in range(day, day + DAY, 3600):
            kept.update(self._hour(hour, write_seconds(deadline))[0])
        step = self.slicing.seconds
        states = [kept.get((t, t + step)) for t in range(day, day + DAY, step)]
        settled = [
            s for s in states if s and s.complete and self.slicing.read_settled(s.end, s.read_at)
        ]
        if len(settled) < len(states):
            return False
        rolled = combine(settled)
        rolled.settled_hours = self.slicing.last_refresh_hours
        # Another reader may have rolled it up first: the same states, the same object.
        with contextlib.suppress(StoreConflict):
            encoded = msgspec.msgpack.encode(rolled.as_dict())
            self.blobs.put(name, encoded, if_version=version, seconds=write_seconds(deadline))
        self.prune(now, deadline)
        return True

    def prune(self, now: float, deadline: Deadline | None = None) -> list[str]:
        """Remove what is older than the retention; the names removed."""
        oldest = day_key(day_start(now) - self.retention_days * DAY)
        gone = []
        seconds = write_seconds(deadline)
        for name in self.blobs.names("days/", seconds=seconds) + self.blobs.names(
            "hours/", seconds=seconds
        ):
            day = name.split("/")[1]
            if day < oldest:
                self.blobs.delete(name, seconds=write_seconds(deadline))
                gone.append(name)
        if gone:
            log.info("ledger: removed %d objects older than %s", len(gone), oldest)
        return gone

    def size(self) -> int:
        """Bytes the ledger keeps (for the benchmark; lists and reads every object)."""
        total = 0
        for name in self.blobs.names():
            found = self.blobs.get(name)
            total += len(found[0]) if found else 0
        return total
