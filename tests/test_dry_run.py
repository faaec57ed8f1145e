"""Dry runs of the rules (`/check?dry_run=1`, `collector check --dry-run`): the same decisions
as a real run, the notifications it would send, and nothing saved and nothing sent. The
simulator, the real reader, a loopback webhook receiver and a real state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from collector.simulator import Simulator
from collector.stores import Document
from tests.helpers import ROOT, clean_env, service_env, state_path
from tests.test_check import NOW, accepted, app_for, rules_doc
from tests.test_startup import entries
from tests.webhook_receiver import WebhookReceiver

BUSY = {"name": "busy", "metric": "events", "window_minutes": 30, "above": 0}


def snapshot(store: Document) -> tuple[bytes | None, bool]:
    """The state file's bytes, and whether a save ever took its lock."""
    data = state_path(store).read_bytes() if state_path(store).exists() else None
    return data, state_path(store).with_name(state_path(store).name + ".lock").exists()


def test_a_dry_run_shows_the_decision_and_the_notification_and_sends_and_saves_nothing(
    sim: Simulator, store: Document, hook: WebhookReceiver, capsys
) -> None:
    app = app_for(sim, rules_doc(BUSY), store, NOW, hook.url, LOG_FORMAT="json")
    queries = sim.queries
    r = app.test_client().get("/check?dry_run=1")
    assert r.status_code == 200
    body = r.get_json()
    assert body["dry_run"] is True and body["saved"] is False
    [rule] = body["rules"]
    truth = sim.truth(NOW - timedelta(minutes=30), NOW).events
    assert (rule["state"], rule["value"], rule["owed"]) == ("ALERTING", truth, ["firing"])
    [would] = rule["would_notify"]
    assert (would["notifier"], would["kind"]) == ("hook", "firing")
    assert would["text"].startswith(f"[FIRING] busy (warning, ALERTING): events {truth:,}")
    assert "notified" not in rule and "notify_errors" not in rule
    assert body["notifications"] == {"would_send": 1, "sent": 0, "held_by_other_runs": 0}
    assert sim.queries == queries + 1  # the evaluation is real: one Export query
    assert hook.received == []
    assert snapshot(store) == (None, False)  # no state written, not even a lock taken
    logged = entries(capsys.readouterr().out)
    assert not [e for e in logged if e.get("rule_evaluation")]  # they drive log-based alerts
    [summary] = [e for e in logged if e.get("summary")]
    assert summary["dry_run"] is True and summary["metric"] == "check"

    # The real run afterwards finds everything as before: it fires and delivers once.
    real = app.test_client().get("/check").get_json()
    assert real["rules"][0]["owed"] == ["firing"] and len(real["rules"][0]["notified"]) == 1
    assert [n["body"]["kind"] for n in accepted(hook)] == ["firing"]
    assert real["rules"][0]["notified"] == [would["id"]]


def test_a_dry_run_lists_what_is_still_owed_and_leaves_it_unclaimed(
    sim: Simulator, store: Document, hook: WebhookReceiver
) -> None:
    hook.script([500])
    first = app_for(sim, rules_doc(BUSY), store, NOW, hook.url).test_client().get("/check")
    [owed] = first.get_json()["rules"][0]["notify_errors"]  # pending for the next run
    before = snapshot(store)
    later = NOW + timedelta(minutes=15)
    app = app_for(sim, rules_doc(BUSY), store, later, hook.url)
    body = app.test_client().post("/check", json={"dry_run": "true"}).get_json()
    [rule] = body["rules"]
    assert rule["owed"] == []  # already firing: nothing new
    assert [w["id"] for w in rule["would_notify"]] == [owed]  # the next real run retries it
    assert snapshot(store) == before  # no claim was written
    assert len(hook.received) == 1  # only the first run's failed delivery


def test_a_dry_run_that_cannot_read_the_state_is_a_503_that_spent_nothing(
    sim: Simulator, store: Document
) -> None:
    state_path(store).write_text('{"rules": {"busy": ')
    app = app_for(sim, rules_doc(BUSY), store, NOW)
    queries = sim.queries
    r = app.test_client().get("/check?dry_run=1")
    assert r.status_code == 503 and r.get_json()["code"] == "state_store_unavailable"
    assert "a dry run spent no Export query and changed nothing" in r.get_json()["error"]
    assert sim.queries == queries
    assert state_path(store).read_text() == '{"rules": {"busy": '


ACCEPTED = 'use dry_run=1 or dry_run=0, or "dry_run": true or false in a JSON body'


def test_dry_run_must_be_a_boolean(sim: Simulator, store: Document) -> None:
    http = app_for(sim, rules_doc(BUSY), store, NOW).test_client()
    queries = sim.queries
    r = http.get("/check?dry_run=maybe")
    assert r.status_code == 400
    assert r.get_json()["error"] == f"dry_run='maybe' is not a boolean: {ACCEPTED}"
    assert "allowed: dry_run, rule" in http.get("/check?dryrun=1").get_json()["error"]
    assert sim.queries == queries


def test_a_json_true_is_a_dry_run_and_a_json_false_a_real_run(
    sim: Simulator, store: Document, hook: WebhookReceiver
) -> None:
    # docs/operations.md shows {"dry_run": true}; before, both booleans were a 400.
    http = app_for(sim, rules_doc(BUSY), store, NOW, hook.url).test_client()
    dry = http.post("/check", json={"dry_run": True})
    assert dry.status_code == 200, dry.get_json()
    assert dry.get_json()["dry_run"] is True and dry.get_json()["saved"] is False
    assert snapshot(store) == (None, False) and hook.received == []
    real = http.post("/check", json={"dry_run": False})
    assert real.status_code == 200, real.get_json()
    assert "dry_run" not in real.get_json() and real.get_json()["rules"][0]["notified"]
    assert [n["body"]["kind"] for n in accepted(hook)] == ["firing"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"dry_run": "maybe"}, f"dry_run='maybe' is not a boolean: {ACCEPTED}"),
        ({"dry_run": 2}, f"dry_run='2' is not a boolean: {ACCEPTED}"),
        ({"dry_run": None}, f"dry_run must be a boolean, not null: {ACCEPTED}"),
        ({"dry_run": {"on": True}}, f"dry_run must be a boolean, not an object: {ACCEPTED}"),
        ({"dry_run": [True, False]}, "parameter 'dry_run' is given more than once"),
    ],
)
def test_a_json_dry_run_that_is_no_boolean_is_a_400_saying_what_is_accepted(
    sim: Simulator, store: Document, body: dict, error: str
) -> None:
    http = app_for(sim, rules_doc(BUSY), store, NOW).test_client()
    queries = sim.queries
    r = http.post("/check", json=body)
    assert r.status_code == 400 and r.get_json()["error"] == error
    assert sim.queries == queries and snapshot(store) == (None, False)


def test_the_command_dry_runs_the_example_rules_with_no_store_and_no_secret(
    sim: Simulator, tmp_path: Path
) -> None:
    # A new user's first try: the example file as shipped, no STATE_STORE, nothing else set.
    env = clean_env()
    done = subprocess.run(
        [sys.executable, "-m", "collector", "check", "--dry-run", "--rules", "rules.example.yaml"],
        cwd=ROOT,
        env={**env, **service_env(sim, LOG_FORMAT="text")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(done.stdout)
    assert body["dry_run"] is True
    assert body["store"] == "none (no STATE_STORE: evaluated from an empty state)"
    names = sorted(r["name"] for r in body["rules"])
    assert names == ["purchases-dropped", "signups-low", "users-spike"]
    assert {r["state"] for r in body["rules"]} <= {"OK", "ALERTING", "NO_DATA"}
    assert body["notifications"]["sent"] == 0
    assert not list(tmp_path.iterdir()) and not (ROOT / "collector-state.json").exists()


def test_the_command_dry_run_reads_a_state_store_and_writes_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"rules": {}}\n')
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "notifiers: {log: {type: log}}\n"
        "rules: [{name: busy, metric: events, window_minutes: 30, lag_minutes: 0, above: 0,"
        " notify: [log]}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "collector", "check", "--dry-run"],
        cwd=ROOT,
        env={
            **os.environ,
            **service_env(sim, COLLECTOR_RULES=str(rules), STATE_STORE=f"file:{state}"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [rule] = json.loads(done.stdout)["rules"]
    assert [w["kind"] for w in rule["would_notify"]] == ["firing"]
    assert "notification: true" not in done.stderr and "[FIRING]" not in done.stderr  # not sent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules.yaml", "state.json"]
    assert state.read_text() == '{"rules": {}}\n'
