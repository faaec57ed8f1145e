"""The rules at a glance: each rule's state, since when, its last value and completeness, and
the notifications it still owes, read from the state store alone (no Export query).

A pure function of the rules file and the stored document; `collector.http.rules` (JSON) and
`collector.http.status` (an HTML page) serve it.
"""

from __future__ import annotations

from typing import Any

from collector.alerting.message import condition_text, number
from collector.alerting.rules import Rule, RuleSet

NEVER_CHECKED = "UNCHECKED"


def rule_states(rules: RuleSet, doc: dict[str, Any]) -> dict[str, Any]:
    """Every rule of the file in order, with what the store remembers of it."""
    stored = doc.get("rules", {})
    out = [_rule(rule, stored.get(rule.name) or {}) for rule in rules.rules]
    known = {rule.name for rule in rules.rules}
    return {
        "rules": out,
        "pending": sum(len(r["pending"]) for r in out),
        # State of rules no longer in the file: kept by the store, evaluated by no run.
        "retired_rules": sorted(name for name in stored if name not in known),
    }


def _rule(rule: Rule, state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": rule.name,
        "metric": rule.metric,
        "condition": rule.condition,
        "threshold": rule.threshold,
        "fires_when": fires_when(rule),
        "window_minutes": rule.window_minutes,
        "severity": rule.severity,
        "notify": list(rule.notify),
        "state": state.get("last_state", NEVER_CHECKED),
        "since": state.get("state_since"),
        "firing": bool(state.get("firing", False)),
        "checked_at": state.get("checked_at"),
        "value": state.get("last_value"),
        "complete": state.get("last_complete"),
        "breaching_runs": state.get("breaching_runs", 0),
        "undecided_runs": state.get("undecided_runs", 0),
        "last_notified_at": state.get("last_notified_at"),
        "pending": [_pending(entry) for entry in state.get("pending", [])],
    }
    if rule.events:
        out["events"] = list(rule.events)
    return out


def fires_when(rule: Rule) -> str:
    """The rule's condition in words, with what a drop or rise is measured against: `above
    5,000`, `drops 50% against the same window a week earlier`, `, 2 runs in a row`."""
    if rule.condition.endswith("_pct"):
        verb = "drops" if rule.condition == "drop_pct" else "rises"
        text = f"{verb} {number(rule.threshold)}% against {_baseline(rule)}"
    else:
        text = condition_text(rule.condition, rule.threshold)
    return text + (f", {rule.for_runs} runs in a row" if rule.for_runs > 1 else "")


def _baseline(rule: Rule) -> str:
    n, minutes = rule.baseline_windows, number(rule.window_minutes)
    if rule.baseline == "previous":
        if n == 1:
            return f"the previous {minutes} minutes"
        return f"the average of the {n} previous {minutes}-minute windows"
    if n == 1:
        return f"the same window a {rule.baseline} earlier"
    on = "on" if rule.baseline == "day" else "in"
    return f"the average of the same window {on} the {n} {rule.baseline}s before"


def _pending(entry: dict[str, Any]) -> dict[str, Any]:
    claim = entry.get("claim") or {}
    return {
        "id": entry.get("id"),
        "notifier": entry.get("notifier"),
        "kind": entry.get("kind"),
        "created_at": entry.get("created_at"),
        "attempts": entry.get("attempts", 0),
        "last_error": entry.get("last_error"),
        "claimed_until": claim.get("until"),
    }
