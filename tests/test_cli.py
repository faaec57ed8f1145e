"""`python -m collector check`: the same run as /check, with one documented exit status each.

Most cases call `main()` in this process (the exit status is its return value); one runs the
real command, to show that a broken store is one line on stderr and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.__main__ import main
from collector.simulator import Simulator
from tests.check_service import KEY, firing_rule
from tests.helpers import ROOT, service_env
from tests.webhook_receiver import WebhookReceiver


@dataclass
class Cli:
    """`main()` in this process, against the module's simulator and a rules file."""

    sim: Simulator
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def env(self, hook_url: str = "http://127.0.0.1:9/x", **env: str) -> dict[str, str]:
        rules = self.tmp_path / "rules.yaml"
        doc = {
            "notifiers": {
                "hook": {"type": "webhook", "url_env": "HOOK_URL", "signing_key_env": "K"}
            },
            "rules": [firing_rule("busy", "hook")],
        }
        rules.write_text(yaml.safe_dump(doc))
        return service_env(
            self.sim,
            COLLECTOR_RULES=str(rules),
            STATE_STORE=f"file:{self.tmp_path / 'state.json'}",
            HOOK_URL=hook_url,
            K=KEY,
            LOG_FORMAT="text",
            EXPORT_DEADLINE_SECONDS="3",
            EXPORT_MAX_ATTEMPTS="1",
            NOTIFY_TIMEOUT_SECONDS="1",
            **env,
        )

    def run(self, env: dict[str, str], *args: str) -> tuple[int, str, str]:
        for name in ("COLLECTOR_RULES", "STATE_STORE", "K_SERVICE"):
            self.monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        status = main(["check", *args])
        out, err = self.capsys.readouterr()
        return status, out, err


@pytest.fixture
def cli(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    return Cli(sim, tmp_path, monkeypatch, capsys)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["check", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for line in (
        "  0  every rule",
        "  2  a configuration",
        "  3  at least one rule is in ERROR",
        "  4  a notification was not delivered",
        "  5  the state store",
        "  1  an unexpected",
    ):
        assert line in text


def test_all_delivered_is_0_and_a_failed_notification_is_4(cli: Cli) -> None:
    with WebhookReceiver([500]) as rx:
        env = cli.env(rx.url)
        status, out, _ = cli.run(env)
        assert status == 4
        body: dict[str, Any] = json.loads(out)
        assert list(body["rules"][0]["notify_errors"].values()) == [
            "webhook notifier 'hook': HTTP 500 ok"
        ]
        status, out, _ = cli.run(env)  # the next run delivers it
    assert status == 0
    assert len(json.loads(out)["rules"][0]["notified"]) == 1


def test_a_rule_in_error_is_3(cli: Cli) -> None:
    status, out, _ = cli.run(cli.env(MIXPANEL_EXPORT_URL="http://127.0.0.1:9/e"))
    assert status == 3
    assert json.loads(out)["rules"][0]["state"] == "ERROR"


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ({"STATE_STORE": ""}, (), "COLLECTOR_RULES is set but STATE_STORE is not"),
        ({"STATE_STORE": "file:state.json"}, (), "must be an absolute path"),
        ({}, ("--rule", "nope"), "unknown rule(s): 'nope'"),
    ],
)
def test_configuration_and_usage_errors_are_2_in_one_line(
    cli: Cli, change: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    status, out, err = cli.run({**cli.env(), **change}, *args)
    assert status == 2
    assert out == ""
    [line] = error_lines(err)
    assert message in line


def test_a_rules_file_given_by_flag_is_checked_like_the_setting(cli: Cli) -> None:
    env = cli.env()
    rules = env.pop("COLLECTOR_RULES")
    env.pop("STATE_STORE")
    status, _, err = cli.run(env, "--rules", rules)
    assert status == 2
    assert "--rules is given but STATE_STORE is not" in error_lines(err)[0]
    status, _, err = cli.run(cli.env(), "--rules", "missing.yaml")
    assert status == 2 and "--rules missing.yaml: cannot read it" in error_lines(err)[0]


def test_a_broken_store_is_5_in_one_line_without_a_traceback(cli: Cli) -> None:
    sim, tmp_path = cli.sim, cli.tmp_path
    env = cli.env()
    (tmp_path / "state.json").write_bytes(b'{"rules": {"busy": ')  # truncated
    before = sim.queries
    done = subprocess.run(
        [sys.executable, "-m", "collector", "check"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"error: rule state store unavailable: file:{tmp_path / 'state.json'}"
    )
    assert "no Export query was spent" in done.stderr
    assert sim.queries == before
