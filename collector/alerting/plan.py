"""One export pass for many rules: windows that fit one query share one stream.

Each rule still aggregates only its own window (and, for drop/rise rules, the adjacent earlier
window) and its own events: a `collector.metrics.fanout.Fanout` sink routes every row of the
shared stream to the aggregators whose window and events it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.alerting.rules import Rule
from collector.window import Window, floor_minute


@dataclass(frozen=True)
class RuleWindows:
    rule: Rule
    current: Window
    baselines: tuple[Window, ...] = ()  # what a drop/rise compares with, nearest first

    @property
    def previous(self) -> Window | None:
        return self.baselines[0] if self.baselines else None

    @property
    def span(self) -> Window:
        start = min([self.current.start, *(b.start for b in self.baselines)])
        return Window(start, self.current.end)


def rule_windows(rule: Rule, now: datetime) -> RuleWindows:
    end = floor_minute(now) - timedelta(minutes=rule.lag_minutes)
    length = timedelta(minutes=rule.window_minutes)
    current = Window(end - length, end)
    baselines: tuple[Window, ...] = ()
    if rule.compares_windows:
        step = timedelta(minutes=rule.baseline_step_minutes)
        baselines = tuple(
            Window(current.start - k * step, current.end - k * step)
            for k in range(1, rule.baseline_windows + 1)
        )
    return RuleWindows(rule, current, baselines)


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
