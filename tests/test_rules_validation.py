"""A rules file with mistakes, as its author meets them: from a real file, through the loader,
the command (`collector check --rules FILE`, `collector serve --rules FILE`) and the service's
start-up (COLLECTOR_RULES).

Before, a misspelt field was also reported as that field out of range, with no suggestion; a
missing field was "out of range" too; a rule with a bad name, no condition or a threshold that
is no number hid its other mistakes until the next try; a notifier whose variable was unset was
also "not a notifier"; a YAML syntax error was one flattened line naming "<unicode string>";
`rules: []` named the path twice; a file that is not UTF-8 was a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.alerting.rules import load_rules
from collector.errors import ConfigError
from tests.helpers import ROOT, collector_command


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_rules(path, env or {})
    return err.value.message


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            "window_minutes: 60, belw: 10",
            "unknown field 'belw': did you mean 'below'?",
        ),
        (
            "windw_minutes: 60, below: 10",
            "unknown field 'windw_minutes': did you mean 'window_minutes'?",
        ),
    ],
)
def test_a_misspelt_field_is_suggested_and_not_also_reported_as_missing(
    tmp_path: Path, fields: str, problem: str
) -> None:
    path = write(tmp_path, f"rules:\n  - {{name: signups-low, metric: events, {fields}}}\n")
    assert refusal(path) == f"invalid rules file {path}: rule 'signups-low': {problem}"


def test_a_missing_required_field_says_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - name: signups-low\n    colour: red\n")
    assert refusal(path) == (
        f"invalid rules file {path} (4 problems): "
        "rule 'signups-low': unknown field 'colour' (a rule's fields: name, metric, events, "
        "window_minutes, lag_minutes, above, below, drop_pct, rise_pct, baseline, "
        "baseline_windows, severity, for_runs, repeat_minutes, notify); "
        "rule 'signups-low': field 'metric' is missing: give one of distinct_users, events, "
        "active_users; "
        "rule 'signups-low': field 'window_minutes' is missing: give a whole number from 1 to "
        "10080; "
        "rule 'signups-low': the condition is missing: give one of above, below, drop_pct, "
        "rise_pct"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("metric: evnts", "rule 'r': field 'metric' is 'evnts': did you mean 'events'?"),
        ("severity: critcal", "rule 'r': field 'severity' is 'critcal': did you mean 'critical'?"),
        ("severity: urgent", "rule 'r': field 'severity' is 'urgent': give one of info, warning, "
         "critical"),
        ("notify: [slak]", "rule 'r': field 'notify' names 'slak', which is not a notifier: "
         "did you mean 'slack'?"),
        ("notify: [pager]", "rule 'r': field 'notify' names 'pager', which is not a notifier "
         "(notifiers: log, slack)"),
        ("baseline: weak\n    drop_pct: 50", "rule 'r': field 'baseline' is 'weak': did you mean "
         "'week'?"),
        ("for_run: 2", "rule 'r': unknown field 'for_run': did you mean 'for_runs'?"),
        ("lag: 2", "rule 'r': unknown field 'lag': did you mean 'lag_minutes'?"),
    ],
)  # fmt: skip
def test_a_wrong_value_suggests_the_closest_valid_one(
    tmp_path: Path, text: str, problem: str
) -> None:
    metric = "" if text.startswith("metric") else "\n    metric: events"
    condition = "" if "drop_pct" in text else "\n    above: 1"
    path = write(
        tmp_path,
        "notifiers:\n  log: {type: log}\n  slack: {type: slack, url_env: SLACK_URL_FOR_TEST}\n"
        f"rules:\n  - name: r{metric}\n    window_minutes: 60{condition}\n    {text}\n",
    )
    assert refusal(path, {"SLACK_URL_FOR_TEST": "https://hooks.example/T/B/x"}) == (
        f"invalid rules file {path}: {problem}"
    )


def test_a_misspelt_notifier_type_and_top_level_field_are_suggested(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notifiers:\n  chat: {type: slak, url_env: CHAT_URL}\n"
        "defaults: {notfy: [chat]}\n"
        "ruls:\n  - {name: r, metric: events, window_minutes: 60, above: 1}\n",
    )
    assert refusal(path, {"CHAT_URL": "https://hooks.example/T/B/x"}) == (
        f"invalid rules file {path} (3 problems): "
        "unknown top-level field 'ruls': did you mean 'rules'?; "
        "notifier 'chat': field 'type' is 'slak': did you mean 'slack'?; "
        "defaults: unknown field 'notfy': did you mean 'notify'?"
    )


EVERY_MISTAKE = """\
notifiers:
  log: {type: log}
rules:
  - name: Bad Name
    metric: evnts
    window_minutes: 60
    above: 1
  - name: no-condition
    metric: events
    window_minutes: 60
    severity: critcal
  - name: not-a-number
    metric: events
    window_minutes: 0
    below: ten
  - name: two-conditions
    metric: events
    window_minutes: 60
    above: 1
    below: 2
    notify: [log, pager]
  - name: no-condition
    metric: events
    window_minutes: 60
    above: 1
"""


def test_every_problem_of_the_file_is_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, EVERY_MISTAKE)
    assert refusal(path) == (
        f"invalid rules file {path} (9 problems): "
        "rules[0]: field 'name' is 'Bad Name': give lowercase letters, digits, - or _ "
        "(at most 63); "
        "rules[0]: field 'metric' is 'evnts': did you mean 'events'?; "
        "rule 'no-condition': field 'severity' is 'critcal': did you mean 'critical'?; "
        "rule 'no-condition': the condition is missing: give one of above, below, drop_pct, "
        "rise_pct; "
        "rule 'not-a-number': field 'window_minutes' is 0: give a whole number from 1 to 10080; "
        "rule 'not-a-number': field 'below' is 'ten': give a number; "
        "rule 'two-conditions': field 'notify' names 'pager', which is not a notifier "
        "(notifiers: log); "
        "rule 'two-conditions': give exactly one condition, not above and below; "
        "rule 'no-condition': the name is used twice (rules[1] and rules[4])"
    )


def test_an_unset_notifier_variable_is_named_and_the_notifier_not_called_unknown(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "notifiers:\n"
        "  slack: {type: slack, url_env: SLACK_URL_FOR_TEST}\n"
        "  ops: {type: webhook, url_env: OPS_URL_FOR_TEST, signing_key_env: OPS_KEY_FOR_TEST}\n"
        "rules:\n"
        "  - {name: r, metric: events, window_minutes: 60, above: 1, notify: [slack, ops]}\n",
    )
    message = refusal(path, {"OPS_URL_FOR_TEST": "https://ops.example/hook"})
    assert message == (
        f"invalid rules file {path} (2 problems): "
        "notifier 'slack': environment variable SLACK_URL_FOR_TEST (its 'url_env') is not set: "
        "set it to the Slack incoming webhook's URL; "
        "notifier 'ops': environment variable OPS_KEY_FOR_TEST (its 'signing_key_env') is not "
        "set: set it to the webhook's signing key"
    )
    assert "not a notifier" not in message


def test_a_notifier_url_that_is_no_url_is_found_with_the_rest(tmp_path: Path) -> None:
    """Before, it stopped start-up on its own, after the file's other mistakes were fixed."""
    path = write(
        tmp_path,
        "notifiers:\n  slack: {type: slack, url_env: SLACK_URL_FOR_TEST}\n"
        "rules:\n  - {name: r, metric: evnts, window_minutes: 60, above: 1, notify: [slack]}\n",
    )
    message = refusal(path, {"SLACK_URL_FOR_TEST": "hooks.example/secret-path"})
    assert message == (
        f"invalid rules file {path} (2 problems): "
        "notifier 'slack': environment variable SLACK_URL_FOR_TEST (its 'url_env') does not "
        "hold an http(s) URL; "
        "rule 'r': field 'metric' is 'evnts': did you mean 'events'?"
    )
    assert "secret-path" not in message


YAML_ERROR = "rules:\n  - name: x\n    metric: events\n   below: 3\n"


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, YAML_ERROR)
    message = refusal(path)
    assert message == (
        f"invalid rules file {path}, line 4, column 4: not valid YAML: expected <block end>, "
        "but found '<block mapping start>' (while parsing a block collection at line 2, "
        "column 3): check this line's indentation against the lines above it"
    )


def test_a_file_that_is_not_utf8_names_the_byte_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules:\n  - name: caf\xe9\n")
    assert refusal(path) == (
        f"invalid rules file {path}, line 2, column 14: not UTF-8 text (byte 0xe9)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: []\n", "'rules' is empty: give at least one rule"),
        ("rules:\n", "'rules' is empty: give at least one rule"),
        ("rules: {name: r}\n", "'rules' is a mapping: give a list of rules"),
        ("notifiers: {}\n", "field 'rules' is missing: give a list of rules"),
        ("", "the file is empty: give a 'rules:' list (see rules.example.yaml)"),
        ("- name: r\n", "the file is a list: give a mapping with a 'rules:' list"),
        ("rules\n", "the file is 'rules': give a mapping with a 'rules:' list"),
        ("rules: [5]\n", "rules[0]: the rule is 5: give a mapping with name, metric, "
         "window_minutes and a condition"),
    ],
)  # fmt: skip
def test_an_empty_or_odd_file_names_its_path_once(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    message = refusal(path)
    assert message == f"invalid rules file {path}: {problem}"
    assert message.count(str(path)) == 1


# -- the command and the service ---------------------------------------------------------------


def command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `python -m collector`, with a credential and nothing of this machine's rules."""
    return collector_command(
        *args, env={"MIXPANEL_API_SECRET": "legacy-secret-for-test", **(env or {})}
    )


MISSPELT = "rules:\n  - {name: signups-low, metric: evnts, windw_minutes: 60, below: 10}\n"
UNSET = (
    "notifiers:\n  slack: {type: slack, url_env: SLACK_URL_FOR_TEST}\n"
    "rules:\n  - {name: r, metric: events, window_minutes: 60, above: 1, notify: [slack]}\n"
)
CASES = [
    (
        MISSPELT,
        " (2 problems): rule 'signups-low': unknown field 'windw_minutes': did you mean "
        "'window_minutes'?; rule 'signups-low': field 'metric' is 'evnts': did you mean 'events'?",
    ),
    (
        UNSET,
        ": notifier 'slack': environment variable SLACK_URL_FOR_TEST (its 'url_env') is not set: "
        "set it to the Slack incoming webhook's URL",
    ),
    ("rules: []\n", ": 'rules' is empty: give at least one rule"),
    (
        YAML_ERROR,
        ", line 4, column 4: not valid YAML: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block collection at line 2, column 3): "
        "check this line's indentation against the lines above it",
    ),
]


@pytest.mark.parametrize(("text", "tail"), CASES)
@pytest.mark.parametrize("dry_run", [True, False])
def test_the_check_command_prints_the_whole_refusal_in_one_line(
    tmp_path: Path, text: str, tail: str, dry_run: bool
) -> None:
    path = write(tmp_path, text)
    flags = ["--dry-run"] if dry_run else []
    done = command(
        "check", *flags, "--rules", str(path), env={"STATE_STORE": f"file:{tmp_path / 's.json'}"}
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: invalid rules file {path}{tail}\n"


def test_settings_and_rules_problems_are_refused_together(tmp_path: Path) -> None:
    """Before, the settings were refused first, and the file's mistakes only on the next try."""
    path = write(tmp_path, MISSPELT)
    done = command("check", "--rules", str(path), env={"LOG_LEVL": "debug"})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: invalid configuration: --rules is given but STATE_STORE is not: rule state "
        "needs a durable place; set STATE_STORE=gs://<bucket>/<object> (on Cloud Run) or "
        "STATE_STORE=file:/absolute/path.json (one machine); LOG_LEVL is not a setting of this "
        "service: did you mean LOG_LEVEL?; "
        f"invalid rules file {path}{CASES[0][1]}\n"
    )


def test_serve_refuses_a_rules_file_with_the_same_words(tmp_path: Path) -> None:
    path = write(tmp_path, MISSPELT)
    proc = collector_command("serve", "--simulator", "--rules", str(path), timeout=90)
    assert proc.returncode == 3 and proc.stdout == ""
    [line] = [x for x in proc.stderr.splitlines() if "invalid rules file" in x]
    assert f" invalid rules file {path.resolve()}{CASES[0][1]} " in line
    assert "Traceback" not in proc.stderr


def test_a_key_given_twice_is_refused_with_both_places(tmp_path: Path) -> None:
    """Before, PyYAML kept the last `window_minutes` without a word."""
    path = write(
        tmp_path,
        "rules:\n  - name: r\n    metric: events\n    window_minutes: 60\n    above: 1\n"
        "    window_minutes: 5\n",
    )
    assert refusal(path) == (
        f"invalid rules file {path}, line 6, column 5: not valid YAML: the key "
        "'window_minutes' is given twice in one mapping (first at line 4, column 5)"
    )


def test_the_schedule_command_names_the_place_of_a_yaml_error(tmp_path: Path) -> None:
    path = write(tmp_path, YAML_ERROR)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector.schedule",
            "--project=p",
            "--location=l",
            "--service-url=https://collector.example",
            "--invoker-sa=invoker@p.iam.gserviceaccount.com",
            "--rules",
            str(path),
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: invalid rules file {path}{CASES[3][1]}\n")


def test_the_messages_the_operations_guide_quotes_are_the_ones_given(tmp_path: Path) -> None:
    guide = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    slack = (
        "notifiers:\n  slack: {type: slack, url_env: SLACK_WEBHOOK_URL}\n" + UNSET.split("\n", 2)[2]
    )
    for text, quoted in [
        (
            MISSPELT,
            "rule 'signups-low': unknown field 'windw_minutes': did you mean 'window_minutes'?",
        ),
        (
            slack,
            "notifier 'slack': environment variable SLACK_WEBHOOK_URL (its 'url_env') is not set",
        ),
        (YAML_ERROR, "rules.yaml, line 4, column 4: not valid YAML: "),
    ]:
        assert f"`{quoted.rstrip()}" in guide
        assert quoted in refusal(write(tmp_path, text))


def test_a_misspelt_section_is_read_as_the_one_meant(tmp_path: Path) -> None:
    """Its own mistakes are found in the same try, and the rules that use it are not blamed."""
    path = write(
        tmp_path,
        "notifier:\n  log: {type: log}\n"
        "defauts: {window_minutes: 60, notify: [log], severity: critcal}\n"
        "rules:\n  - {name: r, metric: events, below: 1}\n",
    )
    assert refusal(path) == (
        f"invalid rules file {path} (3 problems): "
        "unknown top-level field 'notifier': did you mean 'notifiers'?; "
        "unknown top-level field 'defauts': did you mean 'defaults'?; "
        "defaults: field 'severity' is 'critcal': did you mean 'critical'?"
    )
