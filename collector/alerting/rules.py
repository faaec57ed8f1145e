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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.alerting.notification import NotifierConfig
from collector.alerting.notifier_fields import check_notifiers
from collector.alerting.problems import Problems, shown
from collector.alerting.rule_fields import (
    BASELINES,
    FIELDS,
    INCOMPLETE_AFTER_RUNS,
    check_defaults,
    check_rule,
)
from collector.errors import ConfigError
from collector.yaml_file import YamlFileError, read_yaml

# `jobs:` is read by `python -m collector.schedule` (the Cloud Scheduler jobs to keep).
TOP_FIELDS = ("rules", "notifiers", "defaults", "incomplete_after_runs", "jobs")


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
                f"unknown rule(s): {', '.join(shown(n) for n in unknown[:5])}; "
                f"known: {', '.join(known) or 'none'}"
            )
        return tuple(known[n] for n in dict.fromkeys(names))


def load_rules(path: str | Path, env: Mapping[str, str]) -> RuleSet:
    """Parse and validate a rules file; raise ConfigError listing every problem found."""
    try:
        raw = read_yaml(path)
    except OSError as exc:
        raise ConfigError(f"COLLECTOR_RULES={path}: cannot read it ({exc.strerror})") from None
    except YamlFileError as exc:
        raise ConfigError(f"invalid rules file {exc.at(path)}") from None
    return parse_rules(raw, env, source=str(path))


def parse_rules(raw: Any, env: Mapping[str, str], source: str = "rules") -> RuleSet:
    """The rules of a parsed file; ConfigError names every problem of the file at once."""
    problems = Problems()
    if raw is None:
        problems.add("", "the file is empty: give a 'rules:' list (see rules.example.yaml)")
    elif not isinstance(raw, dict):
        problems.add("", f"the file is {shown(raw)}: give a mapping with a 'rules:' list")
    if not isinstance(raw, dict):
        raise _refusal(source, problems)
    misspelt = problems.unknown("", raw, TOP_FIELDS, "the file's fields", "top-level field")
    # A misspelt section (`notifier:`) is read as the one meant, so that its own mistakes are
    # found now and its absence does not make every rule's look wrong.
    raw = {**{field: raw[key] for field, key in misspelt.items() if field not in raw}, **raw}
    declared, notifiers = check_notifiers(raw.get("notifiers"), env, problems)
    defaults = check_defaults(raw.get("defaults"), declared, problems)
    incomplete = raw.get("incomplete_after_runs", 3)
    if not INCOMPLETE_AFTER_RUNS.valid(incomplete):
        problems.wrong("", "incomplete_after_runs", incomplete, INCOMPLETE_AFTER_RUNS.give)
    rules: list[Rule] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(_entries(raw, problems)):
        fields = check_rule(entry, index, defaults, declared, problems)
        name = entry.get("name") if isinstance(entry, dict) else None
        if FIELDS["name"].valid(name):
            if name in first:
                twice = f"the name is used twice (rules[{first[name]}] and rules[{index}])"
                problems.add(f"rule '{name}'", twice)
            first.setdefault(name, index)
        if fields is not None:
            rules.append(Rule(**fields))
    if problems.items:
        raise _refusal(source, problems)
    return RuleSet(tuple(rules), notifiers, incomplete, source)


def _refusal(source: str, problems: Problems) -> ConfigError:
    count = len(problems.items)
    head = f"invalid rules file {source}" + (f" ({count} problems)" if count > 1 else "")
    return ConfigError(f"{head}: " + "; ".join(problems.items))


def _entries(raw: dict[Any, Any], problems: Problems) -> list[Any]:
    if "rules" not in raw:
        problems.missing("", "rules", "a list of rules")
        return []
    entries = raw["rules"]
    if entries is None or entries == []:
        problems.add("", "'rules' is empty: give at least one rule")
        return []
    if not isinstance(entries, list):
        problems.add("", f"'rules' is {shown(entries)}: give a list of rules")
        return []
    return entries
