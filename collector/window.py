"""Half-open UTC windows [start, end) and how they map onto Export API days in a project zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


class EmptyWindow(ValueError):
    """A window whose start is not before its end."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.start >= self.end:
            raise EmptyWindow(
                f"empty window: from ({iso(self.start)}) must be before to ({iso(self.end)})"
            )

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def end_ts(self) -> float:
        return self.end.timestamp()

    def covers(self, other: Window) -> bool:
        return self.start <= other.start and other.end <= self.end

    def as_dict(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end)}


def iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def parse_instant(raw: str, name: str) -> datetime:
    """ISO-8601 (UTC when no offset is given) or epoch seconds."""
    text = raw.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a time: use ISO-8601 (2026-11-23T10:00:00Z) or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class ProjectTime:
    """Converts between true UTC and a legacy project's zone.

    Projects created before 2023 export days in the project zone and write `time` as local wall
    clock read as UTC (utc + offset). Newer projects are UTC, where every conversion is identity.
    """

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self.is_utc = zone in {"UTC", "Etc/UTC", "GMT", "Etc/GMT"}

    def offset_at(self, utc_ts: float) -> float:
        if self.is_utc:
            return 0.0
        moment = datetime.fromtimestamp(utc_ts, UTC).astimezone(self.zone)
        offset = moment.utcoffset()
        return offset.total_seconds() if offset else 0.0

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def today(self, now: datetime) -> date:
        return self.local_date(now)

    def to_utc(self, written_ts: float) -> float:
        """The true UTC epoch of a `time` value as the project wrote it."""
        if self.is_utc:
            return written_ts
        naive = datetime.fromtimestamp(written_ts, UTC).replace(tzinfo=None)
        return naive.replace(tzinfo=self.zone).timestamp()

    def shift_for(self, window: Window) -> float | None:
        """A constant offset if it holds over the whole window (no DST change inside), else None."""
        if self.is_utc:
            return 0.0
        margin = 2 * 3600  # events near the edges are tested against shifted bounds too
        first = self.offset_at(window.start_ts - margin)
        last = self.offset_at(window.end_ts + margin)
        return first if first == last else None


def export_days(window: Window, ptime: ProjectTime, now: datetime) -> tuple[date, date]:
    """`from_date`/`to_date` (inclusive, project days) that cover the window.

    `to_date` is clamped to the project's today: asking later gives 400 from Mixpanel.
    """
    last_instant = window.end - timedelta(microseconds=1)
    first = ptime.local_date(window.start)
    last = min(ptime.local_date(last_instant), ptime.today(now))
    return first, max(first, last)


def where_clause(window: Window, ptime: ProjectTime) -> str:
    """Server-side narrowing on properties["$time"]; the reader still filters every event.

    For a project-zone project it is not documented whether `$time` compares as written
    (shifted) or as true UTC, so the clause spans both readings: it may send a little more,
    never less.
    """
    low = window.start_ts
    high = window.end_ts
    if not ptime.is_utc:
        low_shifted = low + ptime.offset_at(low)
        high_shifted = high + ptime.offset_at(high)
        low, high = min(low, low_shifted), max(high, high_shifted)
    return (
        f'properties["$time"] >= datetime({int(low)}) and '
        f'properties["$time"] < datetime({int(high) + (0 if high == int(high) else 1)})'
    )
