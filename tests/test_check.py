"""`/check` end to end: the simulator, the real reader, a loopback webhook, a durable store."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.simulator import Fault, Simulator
from collector.stores import Document, file_document
from collector.stores import DocumentStore as StateStore
from collector.stores.gcs import GcsBlobStore
from tests.conftest import CHECK_KEY as KEY
from tests.conftest import sim_config
from tests.gcs import client
from tests.helpers import make_settings
from tests.webhook_receiver import WebhookReceiver

NOW = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)


def app_for(
    sim: Simulator, rules: dict, store: StateStore, now: datetime, hook_url: str = "", **env: str
):
    settings = make_settings(
        sim.url, EXPORT_MAX_ATTEMPTS="2", EXPORT_READ_TIMEOUT_SECONDS="1", **env
    )
    ruleset = parse_rules(rules, {"HOOK_URL": hook_url or "http://127.0.0.1:9/x", "HOOK_KEY": KEY})
    reader = ExportReader(settings, QueryBudget(60, 3), now=lambda: now)
    return create_app(settings, reader=reader, now=lambda: now, rules=ruleset, store=store)


def rules_doc(*rules: dict, incomplete_after: int = 3) -> dict:
    return {
        "notifiers": {
            "hook": {"type": "webhook", "url_env": "HOOK_URL", "signing_key_env": "HOOK_KEY"}
        },
        "defaults": {"lag_minutes": 0, "notify": ["hook"]},
        "incomplete_after_runs": incomplete_after,
        "rules": list(rules),
    }


def accepted(hook: WebhookReceiver) -> list[dict]:
    return [r for r in hook.received if 200 <= r["status"] < 300]


def test_many_rules_over_one_window_cost_one_export_query(sim: Simulator, store) -> None:
    end = NOW
    start = end - timedelta(minutes=60)
    truth_all = sim.truth(start, end)
    truth_signup = sim.truth(start, end, ["Sign Up"])
    truth_prev = sim.truth(start - timedelta(minutes=60), start, ["Purchase"])
    truth_purchase = sim.truth(start, end, ["Purchase"])
    doc = rules_doc(
        {"name": "users", "metric": "distinct_users", "window_minutes": 60, "above": 10**9},
        {
            "name": "signups",
            "metric": "events",
            "events": ["Sign Up"],
            "window_minutes": 60,
            "below": 1,
        },
        {"name": "active", "metric": "active_users", "window_minutes": 60, "below": 1},
        {
            "name": "purchases",
            "metric": "events",
            "events": ["Purchase"],
            "window_minutes": 60,
            "drop_pct": 99,
        },
        {"name": "users-15", "metric": "distinct_users", "window_minutes": 15, "above": 10**9},
    )
    before = sim.queries
    body = app_for(sim, doc, store, NOW).test_client().get("/check").get_json()
    assert sim.queries - before == 1
    assert body["queries"] == 1 and len(body["export"]) == 1
    by_name = {r["name"]: r for r in body["rules"]}
    assert by_name["users"]["value"] == truth_all.distinct_users
    assert by_name["active"]["value"] == truth_all.distinct_users
    assert by_name["signups"]["value"] == truth_signup.events
    assert by_name["purchases"]["value"] == truth_purchase.events
    assert by_name["purchases"]["previous"]["value"] == truth_prev.events
    assert (
        by_name["users-15"]["value"] == sim.truth(end - timedelta(minutes=15), end).distinct_users
    )
    assert {r["state"] for r in body["rules"]} == {"OK"}
    assert all(r["complete"] for r in body["rules"])


def test_rule_selection_and_unknown_rules(sim: Simulator, store) -> None:
    doc = rules_doc(
        {"name": "a", "metric": "events", "window_minutes": 5, "above": 10**9},
        {"name": "b", "metric": "events", "window_minutes": 5, "above": 10**9},
    )
    http = app_for(sim, doc, store, NOW).test_client()
    assert [r["name"] for r in http.get("/check?rule=b").get_json()["rules"]] == ["b"]
    r = http.get("/check?rule=zzz")
    assert r.status_code == 400 and "zzz" in r.get_json()["error"]
    assert http.get("/check?colour=red").status_code == 400


def test_check_without_rules_says_which_setting_to_set(sim: Simulator) -> None:
    settings = make_settings(sim.url)
    r = create_app(settings).test_client().get("/check")
    assert r.status_code == 503 and "COLLECTOR_RULES" in r.get_json()["error"]


def test_partial_data_holds_the_state_instead_of_flapping(sim: Simulator, store, hook) -> None:
    doc = rules_doc(
        {"name": "busy", "metric": "events", "window_minutes": 60, "above": 1, "repeat_minutes": 0}
    )
    first = app_for(sim, doc, store, NOW, hook.url).test_client().get("/check").get_json()
    assert first["rules"][0]["state"] == "ALERTING" and first["rules"][0]["firing"]
    # Every attempt cut: a partial count. `above` may still fire on it, so make it low.
    sim.script([Fault.reset(after_bytes=20_000)] * 2)
    doc["rules"][0]["above"] = 10**9
    later = NOW + timedelta(minutes=15)
    second = app_for(sim, doc, store, later, hook.url).test_client().get("/check").get_json()
    rule = second["rules"][0]
    assert rule["complete"] is False and rule["state"] == "NO_DATA"
    assert rule["firing"] is True and rule["owed"] == []  # held: no resolve from partial data
    assert [n["body"]["kind"] for n in accepted(hook)] == ["firing"]


@pytest.fixture(params=["file", "gcs"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """A new store object for each run, as a restarted instance would build it."""
    if request.param == "file":
        return lambda: file_document(tmp_path / "state.json")
    bucket = request.getfixturevalue("bucket")  # a real emulator behind the real client
    return lambda: Document(GcsBlobStore(bucket, client=client()), "collector/state.json")


def test_scripted_incident_across_restarts(new_store, hook) -> None:
    doc = rules_doc(
        {
            "name": "traffic-high",
            "metric": "events",
            "window_minutes": 30,
            "above": 500,
            "for_runs": 2,
            "repeat_minutes": 30,
            "severity": "critical",
        }
    )
    busy = sim_config(events_per_minute=60)
    quiet = sim_config(events_per_minute=5)
    hook.script([500])  # the first delivery fails; the next run must deliver it
    steps = [  # (minutes after NOW, simulator, expected state, owed)
        (0, busy, "ALERTING", []),
        (15, busy, "ALERTING", ["firing"]),
        (30, busy, "ALERTING", []),
        (45, busy, "ALERTING", ["reminder"]),
        (60, quiet, "OK", ["resolved"]),
        (75, quiet, "OK", []),
    ]
    for minutes, config, state, owed in steps:
        with Simulator(config) as sim:  # a new process each run: only the store remembers
            app = app_for(sim, doc, new_store(), NOW + timedelta(minutes=minutes), hook.url)
            rule = app.test_client().post("/check", json={"rule": ["traffic-high"]}).get_json()
            rule = rule["rules"][0]
        assert (rule["state"], rule["owed"]) == (state, owed), minutes
    kinds = [n["body"]["kind"] for n in accepted(hook)]
    assert kinds == ["firing", "reminder", "resolved"]
    assert all(n["signature_ok"] for n in accepted(hook))
    assert new_store().load()[0]["rules"]["traffic-high"]["pending"] == []


def test_the_cli_runs_the_same_check(sim: Simulator, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    import yaml

    from tests.helpers import PROJECT_ID, SA_SECRET, SA_USER

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            rules_doc(
                {"name": "busy", "metric": "events", "window_minutes": 30, "above": 1, "notify": []}
            )
        )
    )
    env = {
        **os.environ,
        "MIXPANEL_EXPORT_URL": sim.url,
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SA_USER,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
        "MIXPANEL_PROJECT_ID": PROJECT_ID,
        "STATE_STORE": f"file:{tmp_path / 'state.json'}",
        "HOOK_URL": "http://127.0.0.1:9/x",
        "HOOK_KEY": KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "collector", "check", "--rules", str(rules)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert [(r["name"], r["state"], r["owed"]) for r in body["rules"]] == [
        ("busy", "ALERTING", ["firing"])
    ]
    assert (tmp_path / "state.json").exists()
    assert SA_SECRET not in done.stdout + done.stderr


def test_counts_and_thresholds_stay_whole_numbers(sim: Simulator, store, hook) -> None:
    # Before: "value": 317.0 and "threshold": 0.0 in the answer, the state and the webhook.
    doc = rules_doc({"name": "busy", "metric": "events", "window_minutes": 30, "above": 0})
    app = app_for(sim, doc, store, NOW, hook.url)
    response = app.test_client().get("/check")
    [rule] = response.get_json()["rules"]
    truth = sim.truth(NOW - timedelta(minutes=30), NOW).events
    assert (rule["value"], rule["threshold"]) == (truth, 0)
    assert f'"value":{truth},' in response.get_data(as_text=True).replace(" ", "")
    [sent] = accepted(hook)
    assert (sent["body"]["value"], sent["body"]["threshold"]) == (truth, 0)
    assert isinstance(sent["body"]["value"], int) and isinstance(sent["body"]["threshold"], int)
    assert store.load()[0]["rules"]["busy"]["last_value"] == truth


@pytest.mark.timing
def test_a_check_of_several_queries_reads_within_one_deadline(sim: Simulator, store) -> None:
    """Rules too far apart for one query are read one after the other, on one deadline: an
    upstream that trickles every body costs EXPORT_DEADLINE_SECONDS once, not per query."""
    doc = rules_doc(
        {"name": "now", "metric": "events", "window_minutes": 60, "below": 1},
        {
            "name": "a-day-ago",
            "metric": "events",
            "window_minutes": 60,
            "below": 1,
            "lag_minutes": 24 * 60,
        },
    )
    sim.script([Fault.trickle(200, interval=0.2)] * 4)
    app = app_for(sim, doc, store, NOW, MAX_WINDOW_DAYS="1", EXPORT_DEADLINE_SECONDS="1.5")
    before = sim.queries
    started = time.monotonic()
    body = app.test_client().get("/check").get_json()
    elapsed = time.monotonic() - started
    assert len(body["export"]) == 2  # two queries were planned
    # One deadline for both: the second query is not sent once it has passed (the old reader
    # gave each query its own, 3 s here).
    assert elapsed < 2.5, elapsed
    assert sim.queries - before == 1
    assert [e["complete"] for e in body["export"]] == [False, False]
    assert {r["state"] for r in body["rules"]} == {"ERROR"}  # never a false alert
