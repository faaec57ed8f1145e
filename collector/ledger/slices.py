"""Slice arithmetic: fixed UTC slices, which of a window's are whole, when one must be re-read.

A slice is `[start, start + minutes)` with `start` a multiple of the slice length since the
epoch, so every process cuts time the same way. Mixpanel accepts events late (offline devices
flush hours or days later), so a slice read once is read again when it reaches each age of
`LEDGER_REFRESH_HOURS` (by default 1 h and 24 h after its end): `due` says when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Slicing:
    """How time is cut, and when a slice is settled."""

    minutes: int = 5
    refresh_hours: tuple[float, ...] = (1.0, 24.0)
    min_age_minutes: int = 5  # a slice younger than this is still filling: read it, keep it not

    @property
    def seconds(self) -> int:
        return self.minutes * 60

    def floor(self, ts: float) -> int:
        return int(ts // self.seconds) * self.seconds

    def ceil(self, ts: float) -> int:
        return -int(-ts // self.seconds) * self.seconds

    def whole(self, start: float, end: float, now: float) -> list[int]:
        """Starts of the slices inside [start, end) that are over long enough to keep."""
        last = min(self.floor(end), self.floor(now - self.min_age_minutes * 60))
        return list(range(self.ceil(start), last - self.seconds + 1, self.seconds))

    def due(self, start: int, read_at: float, now: float) -> bool:
        """True if the slice reached a refresh age since it was read."""
        end = start + self.seconds
        return any(read_at < end + age * 3600 <= now for age in self.refresh_hours)

    @property
    def last_refresh_hours(self) -> float:
        """The last refresh age: a slice read at or after it is settled."""
        return max(self.refresh_hours, default=0.0)

    def settled(self, end: float, now: float) -> bool:
        """True once no refresh is left for anything that ends by `end`."""
        return now >= end + self.last_refresh_hours * 3600

    def read_settled(self, end: float, read_at: float) -> bool:
        """True if a slice ending at `end` was read at or after its last refresh age: no
        refresh can be due for it any more."""
        return read_at >= end + self.last_refresh_hours * 3600


def hour_key(ts: int) -> str:
    """The store name of the hour holding `ts`: `YYYY-MM-DD/HH`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d/%H")


def day_key(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def day_start(ts: float) -> int:
    return int(ts // 86400) * 86400
