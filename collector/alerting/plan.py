"""A rule's windows: the one it watches, ending `lag_minutes` before now, and for a drop or rise
the windows it compares with (`baseline`, nearest first). How they are read (one export pass
for many rules, or the slice ledger) is the answering's business (`collector.metrics.answer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.alerting.rules import Rule
from collector.window import Window, floor_minute


@dataclass(frozen=True)
class RuleWindows:
    """A rule and its windows: the one it watches, and what a drop or rise compares it with."""

    rule: Rule
    current: Window
    baselines: tuple[Window, ...] = ()  # what a drop/rise compares with, nearest first

    @property
    def previous(self) -> Window | None:
        """The nearest baseline window, shown beside the value."""
        return self.baselines[0] if self.baselines else None


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
