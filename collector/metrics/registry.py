"""Every metric the service answers, in one table: its name, its endpoint and the kind of
parameters it takes, whether it narrows by event names, and what it counts (its aggregator).

The routes, the schedule's job check, the rules file, the export's answering, the `/check`
fan-out and the ledger all read this table: a new metric is one row here (and its aggregator,
if it counts something new), not a branch in each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collector.metrics.aggregators import DistinctUsers, EventCounts


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, where it is asked, and what it counts."""

    name: str
    path: str  # its endpoint
    params: Literal["window", "day"]  # `from`/`to`, `minutes`, `days`; or a UTC `date`
    takes_events: bool  # may be narrowed to some event names (`event=`)
    counts: Literal["events", "users"]  # de-duplicated events per name, or distinct users

    def aggregator(self, exact_cap: int = 0) -> EventCounts | DistinctUsers:
        """A new, empty aggregator of what this metric counts (EXACT_DISTINCT_CAP for users)."""
        # Loaded here, not with the table: reading a rules file needs the metrics' names, not
        # numpy and the sketches.
        from collector.metrics.aggregators import DistinctUsers, EventCounts

        return EventCounts() if self.counts == "events" else DistinctUsers(exact_cap)


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("distinct_users", "/distinct-users", "window", True, "users"),
        Metric("events", "/events", "window", True, "events"),
        Metric("active_users", "/active-users", "day", False, "users"),
    )
}


def metric(name: str) -> Metric:
    """The metric called `name`; ValueError naming the known ones if there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}: one of {', '.join(REGISTRY)}") from None
