"""The ledger's objects in a blob store: one per hour of slices, one per settled day.

Layout under `LEDGER_STORE`:
- `hours/YYYY-MM-DD/HH` — the states of that hour's slices read so far;
- `days/YYYY-MM-DD` — a settled day rolled up (every slice complete, no refresh left), which
  answers a window holding the whole day in one read; its hour objects stay, for windows that
  hold part of it.

Every write is conditional on the version read (`collector.blobs`): two writers of the same
hour (two workers, two instances, a backfill task) never lose each other's slices; the loser
reads again and merges (`state.reread`). Objects older than `LEDGER_RETENTION_DAYS` are removed
as days are rolled up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from collector.blobs import ABSENT, BlobStore
from collector.errors import StoreConflict
from collector.ledger.slices import Slicing, day_key, day_start, hour_key
from collector.ledger.state import SliceState, combine, reread

log = logging.getLogger("collector.ledger")

CAS_ATTEMPTS = 8
DAY = 86400


@dataclass
class Loaded:
    """What the ledger holds for a window: whole-day rollups and single slices."""

    days: list[SliceState]
    slices: dict[int, SliceState]  # by slice start
    day_starts: set[int] = field(default_factory=set)  # days answered by a rollup


class Ledger:
    """Slice states kept in a blob store."""

    def __init__(self, blobs: BlobStore, slicing: Slicing, retention_days: int = 35) -> None:
        self.blobs = blobs
        self.slicing = slicing
        self.retention_days = retention_days

    def describe(self) -> str:
        return self.blobs.describe()

    # -- reading ------------------------------------------------------------------------------

    def load(
        self, start: int, end: int, on_day: Callable[[SliceState], None] | None = None
    ) -> Loaded:
        """The kept states of the whole slices in [start, end). With `on_day`, each day's
        rollup goes to it as it is read and is not kept: a month of them need not be held at
        once."""
        out = Loaded([], {})
        for day in range(day_start(start), end, DAY):
            if start <= day and day + DAY <= end:
                rolled = self._get(f"days/{day_key(day)}")
                if rolled is not None:
                    state = SliceState.from_dict(rolled[0])
                    out.day_starts.add(day)
                    if on_day is None:
                        out.days.append(state)
                    else:
                        on_day(state)
                    continue
            for hour in range(max(day, start - start % 3600), min(day + DAY, end), 3600):
                for s in self._hour(hour)[0].values():
                    if start <= s.start and s.end <= end:
                        out.slices[s.start] = s
        return out

    def _get(self, name: str) -> tuple[dict, object] | None:
        found = self.blobs.get(name)
        if found is None:
            return None
        data, version = found
        return msgspec.msgpack.decode(data), version

    def _hour(self, hour: int) -> tuple[dict[int, SliceState], object]:
        found = self._get(f"hours/{hour_key(hour)}")
        if found is None:
            return {}, ABSENT
        doc, version = found
        return {int(k): SliceState.from_dict(v) for k, v in doc["slices"].items()}, version

    # -- writing ------------------------------------------------------------------------------

    def save(self, states: list[SliceState]) -> None:
        """Keep freshly read slice states, merged with what other readers kept meanwhile."""
        by_hour: dict[int, list[SliceState]] = {}
        for s in states:
            by_hour.setdefault(s.start - s.start % 3600, []).append(s)
        for hour, fresh in by_hour.items():
            for _ in range(CAS_ATTEMPTS):
                kept, version = self._hour(hour)
                for s in fresh:
                    kept[s.start] = reread(kept.get(s.start), s)
                doc = {"slices": {str(k): v.as_dict() for k, v in sorted(kept.items())}}
                try:
                    self.blobs.put(
                        f"hours/{hour_key(hour)}", msgspec.msgpack.encode(doc), if_version=version
                    )
                    break
                except StoreConflict:
                    continue
            else:
                raise StoreConflict(
                    f"{self.describe()}: hours/{hour_key(hour)} changed under every one of "
                    f"{CAS_ATTEMPTS} attempts to update it"
                )

    def roll_up(self, day: int, now: float) -> bool:
        """Roll a settled, fully read day into one object; True if it was (or already is)."""
        if not self.slicing.settled(day + DAY, now):
            return False
        name = f"days/{day_key(day)}"
        if self.blobs.get(name) is not None:
            return True
        states = []
        for hour in range(day, day + DAY, 3600):
            states.extend(self._hour(hour)[0].values())
        per_day = DAY // self.slicing.seconds
        if len(states) < per_day or not all(s.complete for s in states):
            return False
        rolled = combine(states)
        # Another reader may have rolled it up first: the same states, the same object.
        with contextlib.suppress(StoreConflict):
            self.blobs.put(name, msgspec.msgpack.encode(rolled.as_dict()), if_version=ABSENT)
        self.prune(now)
        return True

    def prune(self, now: float) -> list[str]:
        """Remove what is older than the retention; the names removed."""
        oldest = day_key(day_start(now) - self.retention_days * DAY)
        gone = []
        for name in self.blobs.names("days/") + self.blobs.names("hours/"):
            day = name.split("/")[1]
            if day < oldest:
                self.blobs.delete(name)
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
