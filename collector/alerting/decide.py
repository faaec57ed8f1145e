"""Pure decisions: (rule, observation) -> state, and (previous state, evaluation) -> new state
plus the notifications owed. No I/O here, so every rule of partial data is testable alone.

A partial value is a lower bound. So an `above` rule may fire on it (the truth is at least as
high) and a `below` rule may clear on it (the truth is at least as high), but nothing else can
be decided: that is NO_DATA, never a false alarm and never a false all-clear. Ratio rules need
both windows complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from collector.alerting.rules import Rule

OK, ALERTING, NO_DATA, ERROR = "OK", "ALERTING", "NO_DATA", "ERROR"
DECIDING = (OK, ALERTING)


@dataclass(frozen=True)
class Observation:
    value: float | None
    complete: bool
    previous: float | None = None  # the adjacent earlier window, for drop_pct / rise_pct
    previous_complete: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Evaluation:
    state: str
    detail: str
    change_pct: float | None = None


def evaluate(rule: Rule, obs: Observation) -> Evaluation:
    if obs.error is not None or obs.value is None:
        return Evaluation(ERROR, f"no value: {obs.error or 'the export failed'}")
    value, limit = obs.value, rule.threshold
    if rule.condition == "above":
        if value > limit:
            return Evaluation(
                ALERTING,
                f"value {value:g} is above {limit:g}"
                + ("" if obs.complete else " (already, on partial data)"),
            )
        if obs.complete:
            return Evaluation(OK, f"value {value:g} is not above {limit:g}")
        return Evaluation(NO_DATA, f"partial value {value:g} cannot rule out more than {limit:g}")
    if rule.condition == "below":
        if value >= limit:
            return Evaluation(
                OK,
                f"value {value:g} is not below {limit:g}"
                + ("" if obs.complete else " (already, on partial data)"),
            )
        if obs.complete:
            return Evaluation(ALERTING, f"value {value:g} is below {limit:g}")
        return Evaluation(NO_DATA, f"partial value {value:g} may still reach {limit:g}")
    return _compare_windows(rule, obs)


def _compare_windows(rule: Rule, obs: Observation) -> Evaluation:
    assert obs.value is not None
    if not (obs.complete and obs.previous_complete) or obs.previous is None:
        return Evaluation(NO_DATA, "a change needs both windows complete")
    prev, value = obs.previous, obs.value
    change = _change_pct(prev, value)
    shown = "from 0" if prev == 0 and value else f"{change:+.1f}%"
    if rule.condition == "drop_pct":
        breach = -change >= rule.threshold
        word = "dropped" if breach else "did not drop"
    else:
        breach = change >= rule.threshold
        word = "rose" if breach else "did not rise"
    return Evaluation(
        ALERTING if breach else OK,
        f"{word} {rule.threshold:g}%: {prev:g} -> {value:g} ({shown})",
        None if change == float("inf") else round(change, 3),
    )


def _change_pct(prev: float, value: float) -> float:
    if prev == 0:
        return 0.0 if value == 0 else float("inf")  # any rise from nothing is unbounded
    return (value - prev) / prev * 100.0


@dataclass(frozen=True)
class RuleState:
    """What is remembered of a rule between runs (stored as JSON)."""

    firing: bool = False  # the last decided state is ALERTING and it has fired
    decided: str = OK  # last deciding evaluation: OK or ALERTING
    breaching_runs: int = 0
    undecided_runs: int = 0  # consecutive NO_DATA / ERROR runs
    last_notified_at: str | None = None
    pending: tuple[dict[str, Any], ...] = field(default=())  # notifications not yet delivered

    def as_dict(self) -> dict[str, Any]:
        return {
            "firing": self.firing,
            "decided": self.decided,
            "breaching_runs": self.breaching_runs,
            "undecided_runs": self.undecided_runs,
            "last_notified_at": self.last_notified_at,
            "pending": list(self.pending),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RuleState:
        if not d:
            return cls()
        return cls(
            firing=bool(d.get("firing", False)),
            decided=str(d.get("decided", OK)),
            breaching_runs=int(d.get("breaching_runs", 0)),
            undecided_runs=int(d.get("undecided_runs", 0)),
            last_notified_at=d.get("last_notified_at"),
            pending=tuple(d.get("pending", ())),
        )


def transition(
    rule: Rule, prev: RuleState, ev: Evaluation, now: datetime, incomplete_after: int
) -> tuple[RuleState, list[str]]:
    """The new state and the kinds of notification owed: firing, reminder, resolved,
    data_incomplete."""
    owed: list[str] = []
    stamp = now.isoformat()
    if ev.state == ALERTING:
        runs = prev.breaching_runs + 1
        state = replace(prev, decided=ALERTING, breaching_runs=runs, undecided_runs=0)
        if not prev.firing and runs >= rule.for_runs:
            owed.append("firing")
            state = replace(state, firing=True, last_notified_at=stamp)
        elif (
            prev.firing
            and rule.repeat_minutes
            and _minutes_since(prev.last_notified_at, now) >= rule.repeat_minutes
        ):
            owed.append("reminder")
            state = replace(state, last_notified_at=stamp)
        return state, owed
    if ev.state == OK:
        state = replace(prev, decided=OK, breaching_runs=0, undecided_runs=0)
        if prev.firing:
            owed.append("resolved")
            state = replace(state, firing=False, last_notified_at=stamp)
        return state, owed
    # NO_DATA / ERROR keep the last decided state; a long streak is itself worth saying.
    undecided = prev.undecided_runs + 1
    if undecided == incomplete_after:
        owed.append("data_incomplete")
    return replace(prev, undecided_runs=undecided), owed


def _minutes_since(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return float("inf")
    return (now - datetime.fromisoformat(stamp)).total_seconds() / 60.0
