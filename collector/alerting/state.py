"""The rule-state document, checked whole before a run relies on it.

    {"rules": {"<rule>": {"firing": false, "decided": "OK", "breaching_runs": 0,
                          "undecided_runs": 0, "last_notified_at": null,
                          "pending": [<notification>, ...], ...}}}

A document that does not have this shape is never repaired or reset here: starting from empty
state would make every firing rule fire again and drop what is owed. It is reported (as
`CorruptState`) and left for a person to fix or move aside. Fields this version does not know
are kept as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collector.alerting.decide import DECIDING
from collector.alerting.notification import Notification
from collector.errors import CorruptState

WHAT_TO_DO = (
    "fix it, or move it aside to start from empty state (then rules that are firing fire "
    "again, and notifications still owed are dropped)"
)


def validate(doc: dict[str, Any], where: str) -> None:
    """Raise CorruptState naming the first field of `doc` that a run could not use."""
    problem = _problem(doc)
    if problem:
        raise CorruptState(f"{where} holds rule state that cannot be used: {problem}; {WHAT_TO_DO}")


def _problem(doc: dict[str, Any]) -> str | None:
    rules = doc.get("rules", {})
    if not isinstance(rules, dict):
        return "'rules' is not an object"
    for name, state in rules.items():
        at = f"rules[{name!r}]"
        if not isinstance(state, dict):
            return f"{at} is not an object"
        if not isinstance(state.get("firing", False), bool):
            return f"{at}.firing is not true or false"
        if state.get("decided", "OK") not in DECIDING:
            return f"{at}.decided is not one of {', '.join(DECIDING)}"
        for field in ("breaching_runs", "undecided_runs"):
            value = state.get(field, 0)
            if not _count(value):
                return f"{at}.{field} is {value!r}, not a whole number"
        if not _instant_or_none(state.get("last_notified_at")):
            return f"{at}.last_notified_at is not an ISO-8601 time"
        pending = state.get("pending", [])
        if not isinstance(pending, list):
            return f"{at}.pending is not a list"
        for i, entry in enumerate(pending):
            if problem := _pending_problem(entry):
                return f"{at}.pending[{i}] {problem}"
    return None


def _pending_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "is not an object"
    try:
        Notification.from_dict(entry)
    except (TypeError, ValueError) as exc:
        return f"is not a notification ({exc})"
    if not isinstance(entry["id"], str) or not entry["id"]:
        return "has no id"
    if not _count(entry.get("attempts", 0)):
        return "has attempts that are not a whole number"
    claim = entry.get("claim")
    if claim is not None and not (
        isinstance(claim, dict)
        and isinstance(claim.get("run"), str)
        and _instant(claim.get("until"))
    ):
        return "has a claim without a run and an ISO-8601 'until'"
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _instant(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _instant_or_none(value: Any) -> bool:
    return value is None or _instant(value)
