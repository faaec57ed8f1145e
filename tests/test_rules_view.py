"""`GET /rules`: every rule's state, since when, its last value and completeness, and what it
still owes, read from the state store alone. Before, `/check` was the only view, and each look
spent an Export query."""

from __future__ import annotations

from datetime import timedelta

import pytest

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.simulator import Simulator
from collector.stores import Document
from collector.window import iso
from tests.conftest import CHECK_KEY
from tests.helpers import CountingReader, make_settings, state_path
from tests.test_check import NOW, app_for, rules_doc
from tests.webhook_receiver import WebhookReceiver

BUSY = {"name": "busy", "metric": "events", "window_minutes": 30, "above": 0}
QUIET = {"name": "quiet", "metric": "events", "events": ["Sign Up"], "window_minutes": 30,
         "below": 1, "severity": "critical"}  # fmt: skip


def test_before_any_check_every_rule_is_unchecked_and_nothing_is_queried(
    store: Document,
) -> None:
    settings = make_settings()
    reader = CountingReader(settings)
    rules = parse_rules(
        rules_doc(BUSY, QUIET), {"HOOK_URL": "http://127.0.0.1:9/x", "HOOK_KEY": "k"}
    )
    app = create_app(settings, reader=reader, now=lambda: NOW, rules=rules, store=store)
    r = app.test_client().get("/rules")
    assert r.status_code == 200
    body = r.get_json()
    assert [(x["name"], x["state"], x["since"], x["pending"]) for x in body["rules"]] == [
        ("busy", "UNCHECKED", None, []),
        ("quiet", "UNCHECKED", None, []),
    ]
    assert body["rules"][1]["events"] == ["Sign Up"] and body["rules"][1]["severity"] == "critical"
    assert (body["queries"], body["pending"], body["retired_rules"]) == (0, 0, [])
    assert body["store"] == f"file:{state_path(store)}"
    assert reader.calls == 0 and not state_path(store).exists()


def test_after_checks_it_shows_state_since_value_and_what_is_owed_for_no_query(
    sim: Simulator, store: Document, hook: WebhookReceiver
) -> None:
    hook.script([500])  # the firing notification fails: it stays pending
    doc = rules_doc(BUSY)
    app_for(sim, doc, store, NOW, hook.url).test_client().get("/check")
    later = NOW + timedelta(minutes=15)
    app = app_for(sim, doc, store, later, hook.url)
    hook.script([500])
    app.test_client().get("/check")  # still ALERTING; the retry fails again

    queries, saved = sim.queries, state_path(store).read_bytes()
    r = app.test_client().get("/rules")
    assert sim.queries == queries  # no Export query
    assert state_path(store).read_bytes() == saved  # nothing written
    [rule] = r.get_json()["rules"]
    truth = sim.truth(later - timedelta(minutes=30), later).events
    assert (rule["state"], rule["firing"], rule["value"], rule["complete"]) == (
        "ALERTING",
        True,
        truth,
        True,
    )
    assert rule["since"] == iso(NOW)  # it entered ALERTING at the first run
    assert rule["checked_at"] == iso(later)
    [owed] = rule["pending"]
    assert (owed["kind"], owed["notifier"], owed["attempts"]) == ("firing", "hook", 2)
    assert owed["last_error"] == "webhook notifier 'hook': HTTP 500 ok"
    assert owed["claimed_until"] is None
    assert r.get_json()["pending"] == 1


def test_a_rule_gone_from_the_file_is_listed_as_retired(sim, store: Document) -> None:
    app_for(sim, rules_doc(BUSY, QUIET), store, NOW).test_client().get("/check")
    body = app_for(sim, rules_doc(QUIET), store, NOW).test_client().get("/rules").get_json()
    assert [r["name"] for r in body["rules"]] == ["quiet"]
    assert body["retired_rules"] == ["busy"]


def test_without_rules_or_with_a_broken_store_it_says_what_to_fix(
    sim: Simulator, store: Document
) -> None:
    r = create_app(make_settings(sim.url)).test_client().get("/rules")
    assert r.status_code == 503 and r.get_json()["code"] == "not_configured"
    assert "COLLECTOR_RULES" in r.get_json()["error"]
    state_path(store).write_text("[]")
    queries = sim.queries
    r = app_for(sim, rules_doc(BUSY), store, NOW).test_client().get("/rules")
    assert r.status_code == 503 and r.get_json()["code"] == "state_store_unavailable"
    assert "nothing was queried and nothing changed" in r.get_json()["error"]
    assert r.get_json()["queries"] == 0 and sim.queries == queries
    assert state_path(store).read_text() == "[]"


def test_rules_answers_get_only(store: Document) -> None:
    settings = make_settings()
    rules = parse_rules(
        rules_doc(BUSY), {"HOOK_URL": "http://127.0.0.1:9/x", "HOOK_KEY": CHECK_KEY}
    )
    app = create_app(settings, reader=CountingReader(settings), rules=rules, store=store)
    r = app.test_client().post("/rules")
    assert r.status_code == 405 and r.get_json()["hint"] == "use GET for /rules"
    assert app.test_client().head("/rules").status_code == 200  # no query to spend


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ({"above": 5000}, "above 5,000"),
        ({"below": 10}, "below 10"),
        ({"below": 10, "for_runs": 2}, "below 10, 2 runs in a row"),
        ({"drop_pct": 50}, "drops 50% against the previous 60 minutes"),
        ({"rise_pct": 20, "baseline_windows": 3}, "rises 20% against the average of the 3 "
         "previous 60-minute windows"),
        ({"drop_pct": 50, "baseline": "week"}, "drops 50% against the same window a week "
         "earlier"),
        ({"drop_pct": 30, "baseline": "day"}, "drops 30% against the same window a day earlier"),
        ({"rise_pct": 80, "baseline": "day", "baseline_windows": 3}, "rises 80% against the "
         "average of the same window on the 3 days before"),
        ({"drop_pct": 12.5, "baseline": "week", "baseline_windows": 4}, "drops 12.5% against "
         "the average of the same window in the 4 weeks before"),
    ],
)  # fmt: skip
def test_fires_when_names_the_condition_and_its_baseline(
    store: Document, condition: dict, says: str
) -> None:
    # Before, /status said "drop of 50%" and nothing of what the drop was measured against.
    settings = make_settings()
    rule = {"name": "r", "metric": "events", "window_minutes": 60, **condition}
    rules = parse_rules(rules_doc(rule), {"HOOK_URL": "http://127.0.0.1:9/x", "HOOK_KEY": "k"})
    app = create_app(settings, reader=CountingReader(settings), rules=rules, store=store)
    [shown] = app.test_client().get("/rules").get_json()["rules"]
    assert shown["fires_when"] == says
