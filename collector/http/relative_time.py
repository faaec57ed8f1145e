"""Times for a person: `3 min ago` on the page, the UTC time on hover.

The status page refreshes itself every minute, so words computed when it is served stay true
within a minute without any script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Shown:
    """One moment as the page shows it: `ago` as text, `iso` for `<time datetime>`, `utc` for
    the hover."""

    ago: str
    iso: str
    utc: str


def shown(stamp: str | None, now: datetime) -> Shown | None:
    """A stored ISO-8601 stamp as the page shows it; None for none, and a stamp that cannot be
    read is shown as it is."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return Shown(stamp, stamp, stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Shown(ago(moment, now), stamp, utc_text(moment))


def utc_text(moment: datetime) -> str:
    """`2026-11-23 10:00:00 UTC`."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def ago(moment: datetime, now: datetime) -> str:
    """`just now`, `3 min ago`, `2 h 5 min ago`, `1 day 4 h ago`; `in 3 min` for a moment
    ahead (another instance's clock)."""
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    span = _span(int(abs(seconds)) // 60)
    return f"{span} ago" if seconds > 0 else f"in {span}"


def _span(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
