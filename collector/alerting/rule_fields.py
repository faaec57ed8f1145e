"""What each field of a rule takes, and the check of one rule entry (and of `defaults:`).

`FIELDS` is the table: a new field is one entry (what it takes, how to check it, the values
there are), not a branch in several functions. Every problem goes to the file's `Problems`, so
one error names them all (collector.alerting.rules).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from collector.alerting.problems import Problems, shown
from collector.metrics.registry import REGISTRY
from collector.suggest import closest

CONDITIONS = ("above", "below", "drop_pct", "rise_pct")
SEVERITIES = ("info", "warning", "critical")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# What a drop/rise is measured against: the adjacent earlier window, the same window a day or a
# week before; `baseline_windows: N` averages N of them (complete ones only decide).
BASELINES = {"previous": None, "day": 24 * 60, "week": 7 * 24 * 60}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Field:
    """What one field of a rule takes: `give` says it in a message, `valid` checks a value,
    `choices` are the values there are (for a "did you mean")."""

    give: str
    valid: Callable[[Any], bool]
    choices: tuple[str, ...] = ()


def _whole(low: int, high: int) -> Field:
    return Field(f"a whole number from {low} to {high}", lambda v: _is_int(v) and low <= v <= high)


def _one_of(choices: Collection[str]) -> Field:
    return Field(f"one of {', '.join(choices)}", lambda v: v in choices, tuple(choices))


def _percentage(high: float | None) -> Field:
    give = "a percentage above 0" + (f" and at most {high:g}" if high else "")
    return Field(give, lambda v: _number(v) and 0 < v <= (high or 1_000_000))


def _names(v: Any) -> bool:
    """One name, or a list of names (each a non-empty text)."""
    listed = [v] if isinstance(v, str) else v
    return isinstance(listed, list) and all(isinstance(e, str) and e for e in listed)


# A rule's fields, in the order the messages list them.
FIELDS: dict[str, Field] = {
    "name": Field(
        "lowercase letters, digits, - or _ (at most 63)",
        lambda v: isinstance(v, str) and bool(NAME.match(v)),
    ),
    "metric": _one_of(tuple(REGISTRY)),
    "events": Field("a list of event names", _names),
    "window_minutes": _whole(1, 60 * 24 * 7),
    "lag_minutes": _whole(0, 24 * 60),
    "above": Field("a number", _number),
    "below": Field("a number", _number),
    "drop_pct": _percentage(100),
    "rise_pct": _percentage(None),
    "baseline": _one_of(tuple(BASELINES)),
    "baseline_windows": _whole(1, 28),
    "severity": _one_of(SEVERITIES),
    "for_runs": _whole(1, 100),
    "repeat_minutes": _whole(0, 60 * 24 * 7),
    "notify": Field("a list of notifier names", _names),
}
RULE_FIELDS = tuple(FIELDS)
# The file's own: runs that cannot decide before a "data incomplete" notification.
INCOMPLETE_AFTER_RUNS = _whole(1, 1000)
REQUIRED = ("name", "metric", "window_minutes")  # and one condition
DEFAULT_FIELDS = (
    "window_minutes",
    "lag_minutes",
    "severity",
    "for_runs",
    "repeat_minutes",
    "notify",
)


@dataclass
class Defaults:
    """The `defaults:` section: its valid values, and every field it gives (a field given
    with a wrong value is reported there, not as missing in every rule)."""

    values: dict[str, Any] = field(default_factory=dict)
    given: frozenset[str] = frozenset()


def check_defaults(raw: Any, declared: tuple[str, ...], problems: Problems) -> Defaults:
    """The `defaults:` section, checked once (not again in every rule that takes it)."""
    if raw is None:
        return Defaults()
    if not isinstance(raw, dict):
        problems.add("defaults", f"they are {shown(raw)}: give a mapping of rule fields")
        return Defaults()
    problems.unknown("defaults", raw, DEFAULT_FIELDS, "the fields defaults can set")
    given = {k: v for k, v in raw.items() if k in DEFAULT_FIELDS}
    return Defaults(_values(given, "defaults", declared, problems), frozenset(given))


def _values(
    given: dict[str, Any], where: str, declared: tuple[str, ...], problems: Problems
) -> dict[str, Any]:
    """The valid values of `given` (known fields only); a problem for each other one."""
    out = {}
    for name, value in given.items():
        spec = FIELDS[name]
        if not spec.valid(value):
            problems.wrong(where, name, value, spec.give, spec.choices)
            continue
        out[name] = value
    for target in _listed(out.get("notify", [])):
        if target not in declared:
            problems.add(where, _not_a_notifier(target, declared))
    return out


def _not_a_notifier(target: str, declared: tuple[str, ...]) -> str:
    text = f"field 'notify' names {shown(target)}, which is not a notifier"
    meant = closest(target, declared)
    if meant is not None:
        return f"{text}: did you mean '{meant}'?"
    if declared:
        return f"{text} (notifiers: {', '.join(declared)})"
    return f"{text} (no notifier is declared under 'notifiers')"


def check_rule(
    entry: Any,
    index: int,
    defaults: Defaults,
    declared: tuple[str, ...],
    problems: Problems,
) -> dict[str, Any] | None:
    """The fields of the Rule of one entry, or None: its problems, or any of the file's, are
    recorded (the file is refused then, so no rule is built)."""
    if not isinstance(entry, dict):
        give = "a mapping with name, metric, window_minutes and a condition"
        problems.add(f"rules[{index}]", f"the rule is {shown(entry)}: give {give}")
        return None
    name = entry.get("name")
    where = f"rule '{name}'" if FIELDS["name"].valid(name) else f"rules[{index}]"
    problems.unknown(where, entry, RULE_FIELDS, "a rule's fields")
    given = {k: v for k, v in entry.items() if k in FIELDS}
    values = {**defaults.values, **_values(given, where, declared, problems)}
    for required in REQUIRED:
        if required not in entry and required not in defaults.given:
            problems.missing(where, required, FIELDS[required].give)
    conditions = [c for c in CONDITIONS if c in entry]
    if not conditions and not problems.meant(where, CONDITIONS):
        problems.add(where, f"the condition is missing: give one of {', '.join(CONDITIONS)}")
    if len(conditions) > 1:
        problems.add(where, f"give exactly one condition, not {' and '.join(conditions)}")
    asked = values.get("metric")
    named = REGISTRY.get(asked) if isinstance(asked, str) else None
    if named is not None and not named.takes_events and values.get("events"):
        problems.add(where, f"metric {named.name!r} counts all events: remove 'events'")
    compares = len(conditions) == 1 and conditions[0].endswith("_pct")
    if (
        ("baseline" in entry or "baseline_windows" in entry)
        and len(conditions) == 1
        and not compares
    ):
        problems.add(where, "fields 'baseline' and 'baseline_windows' go with drop_pct or rise_pct")
    if problems.items:  # this rule's, or an earlier one's: the file is refused anyway
        return None
    condition = conditions[0]
    optional = ("lag_minutes", "severity", "for_runs", "repeat_minutes", "baseline")
    return {
        "name": name,
        "metric": values["metric"],
        "condition": condition,
        "threshold": values[condition],  # as written: 10 stays 10, 2.5 stays 2.5
        "window_minutes": values["window_minutes"],
        "events": tuple(dict.fromkeys(_listed(values.get("events", [])))),
        "notify": tuple(_listed(values.get("notify", []))),
        "baseline_windows": values.get("baseline_windows", 1),
        **{k: values[k] for k in optional if k in values},
    }


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
