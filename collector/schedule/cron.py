"""Unix-cron as Cloud Scheduler reads it, and how many runs one expression can start in an hour.

Only what the query budget needs: the minutes and hours a job can start at. Day of month, month
and day of week are validated but never lower the count, because the budget must hold on the
busiest day.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTES_PER_DAY = 24 * 60

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

# (field name, lowest, highest, names for lowest.. in order)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """The expression is not a five-field unix-cron schedule."""


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]

    def start_minutes(self) -> list[int]:
        """Every minute of the day (0..1439) at which a run can start, ascending."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)


def parse_cron(expression: str) -> Cron:
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise CronError(
            f"schedule {expression!r} must have five fields: minute hour day-of-month month "
            "day-of-week (for example '*/15 * * * *')"
        )
    values = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    return Cron(expression=expression, minutes=values[0], hours=values[1])


def runs_per_hour(cron: Cron | str, spread_minutes: int = 0) -> int:
    """The most runs that can fall in one rolling hour.

    `spread_minutes` widens the hour for runs whose queries happen after their start minute: a
    run that starts up to that long before the hour can still spend queries inside it.
    """
    if isinstance(cron, str):
        cron = parse_cron(cron)
    window = min(MINUTES_PER_DAY, 60 + max(0, spread_minutes))
    timeline = [0] * MINUTES_PER_DAY
    for minute in cron.start_minutes():
        timeline[minute] = 1
    # Circular: the last hour of one day runs into the first hour of the next.
    doubled = timeline + timeline
    running = sum(doubled[:window])
    best = running
    for start in range(1, MINUTES_PER_DAY):
        running += doubled[start + window - 1] - doubled[start - 1]
        best = max(best, running)
    return best


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        found.update(_item(item, name, low, high, names))
    return frozenset(found)


def _item(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> range:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"{name} field: step in {item!r} must be a whole number >= 1")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    else:
        first_text, dash, last_text = base.partition("-")
        first = _value(first_text, item, name, low, high, names)
        # "a/N" means from a to the end of the range, every N.
        last = (
            _value(last_text, item, name, low, high, names) if dash else (high if slash else first)
        )
        if first > last:
            raise CronError(f"{name} field: range {item!r} runs backwards")
    return range(first, last + 1, step)


def _value(text: str, item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.upper() in names:
        return low + names.index(text.upper())
    if not text.isdigit():
        raise CronError(f"{name} field: {item!r} is not a number, a range or '*'")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} field: {value} in {item!r} is outside {low}-{high}")
    return value
