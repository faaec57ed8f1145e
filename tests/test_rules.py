from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collector.alerting.rules import load_rules, parse_rules
from collector.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "SLACK_WEBHOOK_URL": "https://hooks.example/T/B/x",
    "OPS_WEBHOOK_URL": "https://ops/x",
    "OPS_WEBHOOK_KEY": "k" * 32,
}


def test_the_example_file_loads_with_no_secret_set() -> None:
    # Before, it needed SLACK_WEBHOOK_URL, OPS_WEBHOOK_URL and OPS_WEBHOOK_KEY to load at all.
    rules = load_rules(ROOT / "rules.example.yaml", {})
    assert [r.name for r in rules.rules] == ["signups-low", "purchases-dropped", "users-spike"]
    drop = rules.rules[1]
    assert (drop.condition, drop.threshold, drop.for_runs, drop.notify) == (
        "drop_pct",
        50,
        2,
        ("log",),
    )
    assert rules.rules[0].lag_minutes == 5 and rules.rules[2].repeat_minutes == 30
    assert {name: n.type for name, n in rules.notifiers.items()} == {"log": "log"}
    assert rules.secrets() == []


def test_the_commented_notifiers_of_the_example_load_once_their_secrets_are_set() -> None:
    rules = parse_rules(base(), ENV)
    assert set(rules.notifiers) == {"log", "slack", "ops-webhook"}
    assert "hooks.example" not in repr(rules)  # webhook URLs are secrets


def base() -> dict:
    """The example file with its commented Slack and webhook notifiers switched on."""
    doc = yaml.safe_load((ROOT / "rules.example.yaml").read_text())
    doc["notifiers"]["slack"] = {"type": "slack", "url_env": "SLACK_WEBHOOK_URL"}
    doc["notifiers"]["ops-webhook"] = {
        "type": "webhook",
        "url_env": "OPS_WEBHOOK_URL",
        "signing_key_env": "OPS_WEBHOOK_KEY",
    }
    doc["rules"][1]["notify"] = ["slack", "ops-webhook"]
    return doc


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["rules"][0].update(metric="sessions"), "rule 'signups-low': field 'metric'"),
        (lambda d: d["rules"][0].update(above=5), "rule 'signups-low': give exactly one"),
        (lambda d: d["rules"][0].update(below="ten"), "rule 'signups-low': field 'below'"),
        (
            lambda d: d["rules"][1].update(drop_pct=150),
            "rule 'purchases-dropped': field 'drop_pct'",
        ),
        (
            lambda d: d["rules"][2].update(window_minutes=0),
            "rule 'users-spike': field 'window_minutes'",
        ),
        (
            lambda d: d["rules"][2].update(notify=["pager"]),
            "names 'pager', which is not a notifier",
        ),
        (
            lambda d: d["rules"][2].update(colour="red"),
            "rule 'users-spike': unknown field 'colour'",
        ),
        (lambda d: d["rules"][2].update(name="signups-low"), "the name is used twice"),
        (lambda d: d["rules"][2].update(severity="meh"), "field 'severity'"),
        (lambda d: d["rules"][2].update(metric="active_users", events=["x"]), "remove 'events'"),
        (lambda d: d.update(rules=[]), "'rules' is empty"),
        (lambda d: d["notifiers"]["slack"].update(type="email"), "notifier 'slack': field 'type'"),
        (
            lambda d: d["notifiers"]["log"].update(url_env="X"),
            "notifier 'log': unknown field 'url_env' (a log notifier writes a log entry",
        ),
        (lambda d: d["notifiers"]["log"].update(type=["log"]), "notifier 'log': field 'type'"),
    ],
)
def test_a_bad_rule_names_the_rule_and_field(mutate, fragment) -> None:
    raw = base()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_rules(raw, ENV)
    assert fragment in err.value.message


def test_a_missing_secret_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="OPS_WEBHOOK_KEY"):
        parse_rules(base(), {k: v for k, v in ENV.items() if k != "OPS_WEBHOOK_KEY"})


def test_unreadable_or_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml", ENV)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(bad, ENV)


def test_unknown_rule_names_are_quoted_safely() -> None:
    from collector.errors import BadRequest

    rules = load_rules(ROOT / "rules.example.yaml", ENV)
    with pytest.raises(BadRequest) as err:
        rules.named(["x\udc80\n" + "y" * 500])
    message = err.value.message
    assert "\\udc80" in message and "\n" not in message and len(message) < 300
    message.encode("utf-8")  # loggable: no lone surrogate left
