"""The ledger behind the routes and /check: days=N windows, and a week-over-week rule that
answers as a full export would, at the cost of the new slices only."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.config import Settings
from collector.errors import ConfigError
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.simulator import Fault, Simulator
from collector.stores import file_document
from tests.conftest import sim_config
from tests.helpers import make_settings
from tests.test_ledger import BASE, DAY, Clock


@pytest.fixture(scope="module")
def sim():
    with Simulator(sim_config(today=DAY + timedelta(days=9), events_per_minute=4)) as running:
        yield running


# A week-over-week rule and a rule against the average of the three days before.
BASELINE_RULES = {
    "notifiers": {"log": {"type": "log"}},
    "defaults": {"lag_minutes": 0, "notify": ["log"]},
    "rules": [
        {
            "name": "wow",
            "metric": "events",
            "window_minutes": 60,
            "drop_pct": 50,
            "baseline": "week",
        },
        {
            "name": "daily-avg",
            "metric": "distinct_users",
            "window_minutes": 60,
            "rise_pct": 80,
            "baseline": "day",
            "baseline_windows": 3,
        },
    ],
}


# A rule over the last hour alone: read with the newest windows, apart from last week's.
QUIET_RULE = {"name": "quiet", "metric": "events", "window_minutes": 60, "below": 0}


def app_for(sim: Simulator, tmp_path: Path, clock: Clock, rules: dict | None = None, **env: str):
    defaults = {
        "LEDGER_STORE": str(tmp_path / "ledger"),
        "LEDGER_SLICE_MINUTES": "60",
        "EXPORT_DEADLINE_SECONDS": "30",
    }
    settings = make_settings(sim.url, **{**defaults, **env})
    reader = ExportReader(settings, QueryBudget(60, 3), now=clock)
    ruleset = parse_rules(rules, {}) if rules else None
    store = file_document(tmp_path / "state.json") if rules else None
    return create_app(settings, reader=reader, now=clock, rules=ruleset, store=store)


def test_days_answers_a_week_of_distinct_users_and_a_second_call_reads_only_new_slices(
    sim: Simulator, tmp_path: Path
) -> None:
    clock = Clock(BASE + timedelta(days=7))
    http = app_for(sim, tmp_path, clock).test_client()
    first = http.get("/distinct-users?days=7&lag=0").get_json()
    end = BASE + timedelta(days=7)
    assert first["value"] == sim.truth(end - timedelta(days=7), end).distinct_users
    assert first["complete"] is True and first["ledger"]["queries"] == 1
    before = sim.queries
    clock.moment += timedelta(hours=1)
    second = http.get("/distinct-users?days=7&lag=0").get_json()
    assert sim.queries - before == 1
    # Settled days come rolled up, the rest hour by hour; read: the new hour, and the hour that
    # has just turned 24 h old (its refresh, for late events).
    assert second["ledger"]["slices_read_now"] == 2
    assert second["ledger"]["slices_from_ledger"] >= 6 + 20
    end += timedelta(hours=1)
    assert second["value"] == sim.truth(end - timedelta(days=7), end).distinct_users


def test_days_without_the_ledger_is_a_400_naming_the_setting(sim: Simulator) -> None:
    http = create_app(make_settings(sim.url)).test_client()
    r = http.get("/distinct-users?days=7")
    assert r.status_code == 400 and "LEDGER_STORE" in r.get_json()["error"]
    r = http.get("/distinct-users?from=2026-11-01T00:00:00Z&to=2026-11-11T00:00:00Z")
    assert r.status_code == 400 and "LEDGER_STORE allows longer" in r.get_json()["error"]


def test_a_week_over_week_rule_decides_on_the_truth_from_the_ledger(
    sim: Simulator, tmp_path: Path
) -> None:
    rules = BASELINE_RULES
    clock = Clock(BASE + timedelta(days=8))
    http = app_for(sim, tmp_path, clock, rules).test_client()
    # The history the baselines need, kept once (a backfill does the same for past days).
    assert http.get("/events?days=8&lag=0").get_json()["complete"] is True
    before = sim.queries
    body = http.get("/check").get_json()
    assert sim.queries - before == 1  # the newest hour, read once for both rules
    current = (clock.moment - timedelta(hours=1), clock.moment)
    week_ago = tuple(t - timedelta(days=7) for t in current)
    by_name = {r["name"]: r for r in body["rules"]}
    assert by_name["wow"]["value"] == sim.truth(*current).events
    assert by_name["wow"]["previous"]["value"] == sim.truth(*week_ago).events
    days = [sim.truth(*(t - timedelta(days=k) for t in current)).distinct_users for k in (1, 2, 3)]
    assert by_name["daily-avg"]["previous"]["value"] == pytest.approx(sum(days) / 3)
    assert {r["state"] for r in body["rules"]} <= {"OK", "ALERTING"}
    assert all(r["complete"] for r in body["rules"])
    before = sim.queries
    clock.moment += timedelta(hours=1)
    later = http.get("/check").get_json()
    # One query for both rules: the new hour, and the day-ago hour that has just turned 24 h
    # old and is read again for late events, as two pieces of one `where`; every other
    # baseline hour is kept.
    assert sim.queries - before == 1 and later["queries"] == 1
    assert sim.requests[-1]["params"]["where"].count(" or ") == 1


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"LEDGER_STORE": "relative/dir"}, "LEDGER_STORE='relative/dir' must be"),
        ({"LEDGER_SLICE_MINUTES": "7"}, "LEDGER_SLICE_MINUTES=7 must cut an hour evenly"),
        ({"LEDGER_REFRESH_HOURS": "1,soon"}, "LEDGER_REFRESH_HOURS='1,soon' is not a list"),
        ({"LEDGER_REFRESH_HOURS": "2000"}, "within LEDGER_RETENTION_DAYS=35"),
        ({"LEDGER_STOR": "/tmp/x"}, "did you mean LEDGER_STORE?"),
    ],
)
def test_ledger_settings_are_checked_at_start_up(env: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("?", r"\?").replace("(", r"\(")):
        Settings.from_env({"MIXPANEL_API_SECRET": "x", **env})


@pytest.mark.timing
def test_a_check_of_many_ledger_windows_reads_within_one_deadline(
    sim: Simulator, tmp_path: Path
) -> None:
    """Each rule window is its own ledger answer, and each may need a read; they share the
    run's deadline, so an upstream that trickles every body costs it once."""
    rules = BASELINE_RULES
    clock = Clock(BASE + timedelta(days=8))
    app = app_for(
        sim, tmp_path, clock, rules, EXPORT_DEADLINE_SECONDS="1.5", EXPORT_MAX_ATTEMPTS="1"
    )
    sim.script([Fault.trickle(200, interval=0.2)] * 8)
    before = sim.queries
    started = time.monotonic()
    body = app.test_client().get("/check").get_json()
    elapsed = time.monotonic() - started
    # Six windows; with a deadline each, this took 3 s (two failed reads, one per rule).
    assert elapsed < 2.5, elapsed
    assert sim.queries - before == 1
    assert {r["state"] for r in body["rules"]} == {"ERROR"}


def test_a_check_of_unaligned_windows_costs_one_query_a_run(sim: Simulator, tmp_path: Path) -> None:
    """Rules as they are usually written (a lag of minutes, windows of 15 to 60 minutes, a
    baseline), so that every window has edges inside a slice, overlapping each other and the
    slices that other windows read whole: all of it is one query, and every value the truth."""
    rules = {
        "notifiers": {"log": {"type": "log"}},
        "defaults": {"lag_minutes": 5, "notify": ["log"]},
        "rules": [
            {"name": "events-15", "metric": "events", "window_minutes": 15, "above": 10**9},
            {
                "name": "signups-30",
                "metric": "events",
                "events": ["Sign Up"],
                "window_minutes": 30,
                "below": 0,
            },
            {
                "name": "users-60",
                "metric": "distinct_users",
                "window_minutes": 60,
                "drop_pct": 99,
                "baseline": "previous",
            },
        ],
    }
    clock = Clock(BASE + timedelta(days=8, minutes=13))
    http = app_for(sim, tmp_path, clock, rules, LEDGER_SLICE_MINUTES="5").test_client()
    for run in range(3):
        before = sim.queries
        body = http.get("/check").get_json()
        assert sim.queries - before == 1 and body["queries"] == 1, run
        end = clock.moment - timedelta(minutes=5)
        by_name = {r["name"]: r for r in body["rules"]}
        assert by_name["events-15"]["value"] == sim.truth(end - timedelta(minutes=15), end).events
        signups = sim.truth(end - timedelta(minutes=30), end, ["Sign Up"]).events
        assert by_name["signups-30"]["value"] == signups
        hour = sim.truth(end - timedelta(minutes=60), end).distinct_users
        before_hour = sim.truth(end - timedelta(minutes=120), end - timedelta(minutes=60))
        assert by_name["users-60"]["value"] == hour
        assert by_name["users-60"]["previous"]["value"] == before_hour.distinct_users
        assert all(r["complete"] for r in body["rules"])
        clock.moment += timedelta(minutes=7)


def test_when_the_runs_read_fails_no_window_queries_again(sim: Simulator, tmp_path: Path) -> None:
    """A /check's read failing (5xx on every attempt) leaves every window to what is kept: the
    windows do not each try again, spending the budget on an upstream that is down."""
    clock = Clock(BASE + timedelta(days=8))
    app = app_for(sim, tmp_path, clock, BASELINE_RULES, EXPORT_MAX_ATTEMPTS="1")
    sim.script([Fault.status(503)] * 8)
    before = sim.queries
    body = app.test_client().get("/check").get_json()
    assert sim.queries - before == 1 and body["queries"] == 1
    assert {r["state"] for r in body["rules"]} == {"ERROR"}


def test_a_check_numbers_its_reads_and_lists_its_rules_as_without_the_ledger(
    sim: Simulator, tmp_path: Path
) -> None:
    """Each rule's `query` and the order of the run's figures are the same with the ledger as
    without it (the grouping the export would read them in), whichever answers."""
    rules = {**BASELINE_RULES, "rules": [*BASELINE_RULES["rules"], QUIET_RULE]}
    clock = Clock(BASE + timedelta(days=8))
    plain = create_app(
        make_settings(sim.url, EXPORT_DEADLINE_SECONDS="30"),
        reader=ExportReader(make_settings(sim.url), QueryBudget(60, 3), now=clock),
        now=clock,
        rules=parse_rules(rules, {}),
        store=file_document(tmp_path / "plain.json"),
    )
    ledger = app_for(sim, tmp_path, clock, rules)
    without = plain.test_client().get("/check?dry_run=1").get_json()
    with_ledger = ledger.test_client().get("/check?dry_run=1").get_json()
    assert [r["query"] for r in with_ledger["rules"]] == [r["query"] for r in without["rules"]]
    assert max(r["query"] for r in without["rules"]) == 1  # two groups: a week apart
    assert with_ledger["export"][0]["rules"] == [
        name for group in without["export"] for name in group["rules"]
    ]
