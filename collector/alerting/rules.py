"""The rules file: YAML, validated whole at start-up; a bad file never half-loads.

    notifiers:
      log: {type: log}
      slack: {type: slack, url_env: SLACK_WEBHOOK_URL}
      ops: {type: webhook, url_env: OPS_WEBHOOK_URL, signing_key_env: OPS_WEBHOOK_KEY}
    defaults: {lag_minutes: 5, for_runs: 1, repeat_minutes: 60, notify: [log]}
    incomplete_after_runs: 3
    rules:
      - name: signups-low
        metric: events
        events: ["Sign Up"]
        window_minutes: 60
        below: 10
        severity: warning

Webhook URLs and signing keys are secrets: the file names the environment variables that hold
them, so the file itself can live in the repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from collector.alerting.notification import NotifierConfig
from collector.config import Secret
from collector.errors import ConfigError
from collector.metrics import METRICS

CONDITIONS = ("above", "below", "drop_pct", "rise_pct")
SEVERITIES = ("info", "warning", "critical")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
RULE_FIELDS = {
    "name",
    "metric",
    "events",
    "window_minutes",
    "lag_minutes",
    "severity",
    "for_runs",
    "repeat_minutes",
    "notify",
    "baseline",
    "baseline_windows",
    *CONDITIONS,
}
# What a drop/rise is measured against: the adjacent earlier window, the same window a day or a
# week before; `baseline_windows: N` averages N of them (complete ones only decide).
BASELINES = {"previous": None, "day": 24 * 60, "week": 7 * 24 * 60}
# Each notifier type and the fields it takes: `log` needs no secret.
NOTIFIER_FIELDS = {
    "log": {"type"},
    "slack": {"type", "url_env"},
    "webhook": {"type", "url_env", "signing_key_env"},
}
DEFAULT_FIELDS = {
    "lag_minutes",
    "for_runs",
    "repeat_minutes",
    "notify",
    "severity",
    "window_minutes",
}


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    condition: str
    threshold: float
    window_minutes: int
    lag_minutes: int = 5
    events: tuple[str, ...] = ()
    severity: str = "warning"
    for_runs: int = 1
    repeat_minutes: int = 60
    notify: tuple[str, ...] = ()
    baseline: str = "previous"
    baseline_windows: int = 1

    @property
    def compares_windows(self) -> bool:
        return self.condition in ("drop_pct", "rise_pct")

    @property
    def baseline_step_minutes(self) -> int:
        """How far back each baseline window is from the one after it."""
        return BASELINES[self.baseline] or self.window_minutes


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    notifiers: Mapping[str, NotifierConfig]
    incomplete_after_runs: int = 3
    source: str = ""

    def secrets(self) -> list[str]:
        """Webhook URLs and signing keys, for redaction."""
        return [s.reveal() for c in self.notifiers.values() for s in (c.url, c.signing_key) if s]

    def named(self, names: list[str]) -> tuple[Rule, ...]:
        if not names:
            return self.rules
        known = {r.name: r for r in self.rules}
        unknown = [n for n in names if n not in known]
        if unknown:
            from collector.errors import BadRequest

            raise BadRequest(
                f"unknown rule(s): {', '.join(_shown(n) for n in unknown[:5])}; "
                f"known: {', '.join(known) or 'none'}"
            )
        return tuple(known[n] for n in dict.fromkeys(names))


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.items.append(f"{where}: {text}")


def load_rules(path: str | Path, env: Mapping[str, str]) -> RuleSet:
    """Parse and validate a rules file; raise ConfigError listing every problem found."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"COLLECTOR_RULES={path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"COLLECTOR_RULES={path}: not valid YAML: {exc}") from None
    return parse_rules(raw, env, source=str(path))


def parse_rules(raw: Any, env: Mapping[str, str], source: str = "rules") -> RuleSet:
    problems = _Problems()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the rules file must be a mapping with a 'rules:' list")
    # `jobs:` is read by `python -m collector.schedule` (the Cloud Scheduler jobs to keep).
    known = {"rules", "notifiers", "defaults", "incomplete_after_runs", "jobs"}
    for key in sorted(set(raw) - known):
        problems.add(source, f"unknown top-level field '{key}'")
    notifiers = _notifiers(raw.get("notifiers") or {}, env, problems)
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.add("defaults", "must be a mapping")
        defaults = {}
    for key in sorted(set(defaults) - DEFAULT_FIELDS):
        problems.add("defaults", f"unknown field '{key}'")
    incomplete = raw.get("incomplete_after_runs", 3)
    if not _is_int(incomplete) or not 1 <= incomplete <= 1000:
        problems.add("incomplete_after_runs", "must be a whole number from 1 to 1000")
        incomplete = 3
    entries = raw.get("rules")
    rules: list[Rule] = []
    if not isinstance(entries, list) or not entries:
        problems.add(source, "'rules' must be a non-empty list")
        entries = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        rule = _rule(entry, i, {**defaults}, notifiers, problems)
        if rule is None:
            continue
        if rule.name in seen:
            problems.add(f"rule '{rule.name}'", "the name is used twice")
        seen.add(rule.name)
        rules.append(rule)
    if problems.items:
        raise ConfigError("invalid rules file " + source + ": " + "; ".join(problems.items))
    return RuleSet(tuple(rules), notifiers, incomplete, source)


def _notifiers(raw: Any, env: Mapping[str, str], problems: _Problems) -> dict[str, NotifierConfig]:
    out: dict[str, NotifierConfig] = {}
    if not isinstance(raw, dict):
        problems.add("notifiers", "must be a mapping of name to settings")
        return out
    for name, spec in raw.items():
        where = f"notifier '{name}'"
        if not isinstance(spec, dict):
            problems.add(where, "must be a mapping")
            continue
        kind = spec.get("type") if isinstance(spec.get("type"), str) else None
        for key in sorted(set(spec) - NOTIFIER_FIELDS.get(kind or "", {"type"})):
            problems.add(where, f"unknown field '{key}'" + _log_hint(kind, key))
        if kind not in NOTIFIER_FIELDS:
            problems.add(where, f"field 'type' must be one of {', '.join(NOTIFIER_FIELDS)}")
            continue
        if kind == "log":  # a structured log entry: nothing to reach, no secret
            out[str(name)] = NotifierConfig(str(name), kind)
            continue
        url = _secret_from(spec.get("url_env"), env, where, "url_env", problems)
        key = None
        if kind == "webhook":
            key = _secret_from(spec.get("signing_key_env"), env, where, "signing_key_env", problems)
        if url is not None and (kind == "slack" or key is not None):
            out[str(name)] = NotifierConfig(str(name), kind, url, key)
    return out


def _log_hint(kind: Any, key: str) -> str:
    if kind == "log" and key in ("url_env", "signing_key_env"):
        return " (a log notifier writes a log entry: it has no URL or key)"
    return ""


def _secret_from(
    var: Any, env: Mapping[str, str], where: str, field: str, problems: _Problems
) -> Secret | None:
    if not isinstance(var, str) or not var:
        problems.add(where, f"field '{field}' must name an environment variable")
        return None
    value = env.get(var, "").strip()
    if not value:
        problems.add(where, f"environment variable {var} (from '{field}') is not set")
        return None
    return Secret(value)


def _rule(
    entry: Any,
    index: int,
    defaults: dict[str, Any],
    notifiers: Mapping[str, NotifierConfig],
    problems: _Problems,
) -> Rule | None:
    if not isinstance(entry, dict):
        problems.add(f"rules[{index}]", "must be a mapping")
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.add(f"rules[{index}]", "field 'name' must be lowercase letters, digits, - or _")
        return None
    where = f"rule '{name}'"
    spec = {**defaults, **entry}
    for key in sorted(set(entry) - RULE_FIELDS):
        problems.add(where, f"unknown field '{key}'")
    metric = spec.get("metric")
    if metric not in METRICS:
        problems.add(where, f"field 'metric' must be one of {', '.join(METRICS)}")
    conditions = [c for c in CONDITIONS if c in entry]
    if len(conditions) != 1:
        problems.add(where, f"give exactly one condition of {', '.join(CONDITIONS)}")
        return None
    condition = conditions[0]
    threshold = entry[condition]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        problems.add(where, f"field '{condition}' must be a number")
        return None
    if condition.endswith("_pct") and not 0 < threshold <= (
        100 if condition == "drop_pct" else 1_000_000
    ):
        problems.add(
            where,
            f"field '{condition}' must be a percentage above 0"
            + (" and at most 100" if condition == "drop_pct" else ""),
        )
    events = spec.get("events", [])
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        problems.add(where, "field 'events' must be a list of event names")
        events = []
    if metric == "active_users" and events:
        problems.add(where, "metric 'active_users' counts all events: remove 'events'")
    ints = {}
    for field, low, high, default in (
        ("window_minutes", 1, 60 * 24 * 7, None),
        ("lag_minutes", 0, 24 * 60, 5),
        ("for_runs", 1, 100, 1),
        ("repeat_minutes", 0, 60 * 24 * 7, 60),
    ):
        value = spec.get(field, default)
        if not _is_int(value) or not low <= value <= high:
            problems.add(where, f"field '{field}' must be a whole number from {low} to {high}")
            value = default or low
        ints[field] = value
    baseline = spec.get("baseline", "previous")
    if baseline not in BASELINES:
        problems.add(where, f"field 'baseline' must be one of {', '.join(BASELINES)}")
        baseline = "previous"
    baseline_windows = spec.get("baseline_windows", 1)
    if not _is_int(baseline_windows) or not 1 <= baseline_windows <= 28:
        problems.add(where, "field 'baseline_windows' must be a whole number from 1 to 28")
        baseline_windows = 1
    if ("baseline" in entry or "baseline_windows" in entry) and not condition.endswith("_pct"):
        problems.add(where, "fields 'baseline' and 'baseline_windows' go with drop_pct or rise_pct")
    severity = spec.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.add(where, f"field 'severity' must be one of {', '.join(SEVERITIES)}")
    notify = spec.get("notify", [])
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list):
        problems.add(where, "field 'notify' must be a list of notifier names")
        notify = []
    for target in notify:
        if target not in notifiers:
            problems.add(where, f"field 'notify' names '{target}', which is not a notifier")
    return Rule(
        name=name,
        metric=str(metric),
        condition=condition,
        threshold=threshold,  # as written: 10 stays 10, 2.5 stays 2.5
        window_minutes=ints["window_minutes"],
        lag_minutes=ints["lag_minutes"],
        events=tuple(dict.fromkeys(events)),
        severity=str(severity),
        for_runs=ints["for_runs"],
        repeat_minutes=ints["repeat_minutes"],
        notify=tuple(str(n) for n in notify),
        baseline=str(baseline),
        baseline_windows=int(baseline_windows),
    )


def _shown(name: str) -> str:
    """A caller's rule name, quoted and bounded, safe to log whatever bytes it held."""
    return ascii(name[:60])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
