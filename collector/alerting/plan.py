"""One export pass for many rules: windows that fit one query share one stream.

Each rule still aggregates only its own window (and, for drop/rise rules, the adjacent earlier
window) and its own events: a `Fanout` sink routes every row of the shared stream to the
aggregators whose window and events it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.alerting.rules import Rule
from collector.export.batch import Batch, Row
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.window import Window, floor_minute


@dataclass(frozen=True)
class RuleWindows:
    rule: Rule
    current: Window
    previous: Window | None

    @property
    def span(self) -> Window:
        return Window(
            self.previous.start if self.previous else self.current.start, self.current.end
        )


def rule_windows(rule: Rule, now: datetime) -> RuleWindows:
    end = floor_minute(now) - timedelta(minutes=rule.lag_minutes)
    length = timedelta(minutes=rule.window_minutes)
    current = Window(end - length, end)
    previous = Window(end - 2 * length, end - length) if rule.compares_windows else None
    return RuleWindows(rule, current, previous)


@dataclass(frozen=True)
class QueryGroup:
    window: Window
    events: tuple[str, ...]  # () = every event
    members: tuple[RuleWindows, ...]


def plan_queries(items: Iterable[RuleWindows], max_days: int) -> list[QueryGroup]:
    """Greedy grouping by start time: a rule joins the current query while the query's span
    stays within `max_days`; otherwise it opens the next query."""
    groups: list[list[RuleWindows]] = []
    limit = timedelta(days=max_days)
    for rw in sorted(items, key=lambda r: (r.span.start, r.span.end)):
        if groups:
            current = groups[-1]
            start = min(r.span.start for r in current)
            end = max(max(r.span.end for r in current), rw.span.end)
            if end - start <= limit:
                current.append(rw)
                continue
        groups.append([rw])
    return [_group(members) for members in groups]


def _group(members: list[RuleWindows]) -> QueryGroup:
    window = Window(min(m.span.start for m in members), max(m.span.end for m in members))
    # The query can name events only if every rule names some; one rule over all events
    # (or active_users) needs the whole stream.
    if all(m.rule.events for m in members):
        events = tuple(sorted({e for m in members for e in m.rule.events}))
    else:
        events = ()
    return QueryGroup(window, events, tuple(members))


class Slot:
    """One rule window's aggregator inside a shared stream."""

    def __init__(
        self, metric: str, window: Window, events: tuple[str, ...], exact_cap: int = 0
    ) -> None:
        self.metric = metric
        self.start, self.end = window.start_ts, window.end_ts
        self.names = frozenset(events) if events else None
        self.agg: EventCounts | DistinctUsers = (
            EventCounts() if metric == "events" else DistinctUsers(exact_cap)
        )

    def value(self) -> int:
        return self.agg.value()


class Fanout:
    """An aggregator that feeds many slots from one stream (same shape as the others).

    Slots that would count the same thing share one aggregator: `distinct_users` and
    `active_users` over the same window, or two rules over the same window and events. Each
    shared set is then built once, which at millions of events is most of a run's memory. A
    slot that counts every event of the whole query also gives the query's `duplicates`.
    """

    def __init__(
        self, slots: Iterable[Slot], window: Window | None = None, events: tuple[str, ...] = ()
    ) -> None:
        self.slots = list(slots)
        shared: dict[tuple[object, ...], EventCounts | DistinctUsers] = {}
        for slot in self.slots:
            key = (type(slot.agg), slot.start, slot.end, slot.names)
            slot.agg = shared.setdefault(key, slot.agg)
        # Every row fed is inside the query's window and events (the reader filters them).
        whole = None
        if window is not None:
            whole = shared.get(
                (EventCounts, window.start_ts, window.end_ts, frozenset(events) or None)
            )
        self.counts = whole if isinstance(whole, EventCounts) else None
        self._feeds = [(start, end, names, agg) for (_, start, end, names), agg in shared.items()]

    def new_attempt(self) -> None:
        for *_, agg in self._feeds:
            agg.new_attempt()

    def add(self, rows: Batch | Iterable[Row]) -> None:
        batch = Batch.of(rows)
        for start, end, names, agg in self._feeds:
            agg.add(batch.within(start, end, names))

    def duplicates(self) -> int | None:
        """Rows of the query read but not counted, if a slot counts the whole query."""
        return None if self.counts is None else self.counts.duplicates()
