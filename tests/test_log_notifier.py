"""The `log` notifier: one structured entry per notification, which Cloud Logging can alert on,
and which needs no secret; through a real /check run against the simulator."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta

import pytest

from collector.alerting.message import notification_text
from collector.alerting.notification import NotifierConfig
from collector.alerting.notify import LogNotifier, build_notifier
from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.config import Settings
from collector.logs import setup_logging
from collector.simulator import Simulator
from collector.stores import file_document
from tests.helpers import make_settings
from tests.test_check import NOW
from tests.test_notify import N
from tests.test_startup import entries


def logged(settings: Settings, send) -> list[dict]:
    out = io.StringIO()
    setup_logging(settings, stream=out)
    send()
    return [e for e in entries(out.getvalue()) if e.get("notification")]


@pytest.mark.parametrize(
    ("kind", "severity", "level"),
    [
        ("firing", "critical", "CRITICAL"),
        ("reminder", "warning", "WARNING"),
        ("data_incomplete", "info", "INFO"),
        ("resolved", "critical", "INFO"),
    ],
)
def test_each_notification_is_one_entry_at_the_rules_severity(kind, severity, level) -> None:
    notifier = build_notifier(NotifierConfig("log", "log"))
    assert isinstance(notifier, LogNotifier)
    n = replace(N, kind=kind, severity=severity, notifier="log")
    settings = Settings(export_url="", log_format="json")
    [entry] = logged(settings, lambda: notifier.send(n, timeout=1))
    assert entry["severity"] == level
    assert entry["logging.googleapis.com/labels"] == {"python_logger": "collector.notify"}
    assert (entry["rule"], entry["kind"], entry["rule_severity"]) == ("signups-low", kind, severity)
    assert (entry["value"], entry["threshold"], entry["complete"]) == (12, 50, True)
    assert entry["message"] == notification_text(n)
    assert notification_text(replace(N, kind="firing")) == (
        "[FIRING] signups-low (critical, ALERTING): signups 12, threshold below 50; "
        "window 2026-11-23T10:00:00Z → 2026-11-23T11:00:00Z; data complete. value 12 is below 50"
    )


def test_a_check_with_a_log_notifier_delivers_by_writing_the_entry(
    sim: Simulator, tmp_path, capsys
) -> None:
    rules = parse_rules(
        {
            "notifiers": {"log": {"type": "log"}},
            "rules": [
                {
                    "name": "busy",
                    "metric": "events",
                    "window_minutes": 30,
                    "lag_minutes": 0,
                    "above": 0,
                    "notify": ["log"],
                }
            ],
        },
        {},  # no secret anywhere
    )
    store = file_document(tmp_path / "state.json")
    app = create_app(
        make_settings(sim.url, LOG_FORMAT="json"), now=lambda: NOW, rules=rules, store=store
    )
    body = app.test_client().get("/check").get_json()
    [rule] = body["rules"]
    assert rule["state"] == "ALERTING" and rule["owed"] == ["firing"]
    assert len(rule["notified"]) == 1 and body["notifications"]["delivered"] == 1
    [entry] = [e for e in entries(capsys.readouterr().out) if e.get("notification")]
    truth = sim.truth(NOW - timedelta(minutes=30), NOW).events
    assert (entry["id"], entry["kind"], entry["value"]) == (rule["notified"][0], "firing", truth)
    assert store.load()[0]["rules"]["busy"]["pending"] == []  # settled
