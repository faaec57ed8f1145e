"""`python -m collector.schedule`: the real Scheduler client on its REST transport, with the HTTP
intercepted, so every assertion is about the exact requests the tool sends."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from google.auth.credentials import AnonymousCredentials
from google.cloud import scheduler_v1
from responses import matchers

from collector.schedule.budget import run_spread_seconds, worst_hour
from collector.schedule.cli import main
from collector.schedule.cron import CronError, parse_cron, runs_per_hour
from collector.schedule.jobs import JobSpec, JobSpecError, load_jobs_file, parse_job

ROOT = Path(__file__).resolve().parent.parent
JOBS = "https://cloudscheduler.googleapis.com/v1/projects/p/locations/l/jobs"
SERVICE = "https://rt-mp-collector-abc123-ew.a.run.app"
INVOKER = "rt-mp-invoker@p.iam.gserviceaccount.com"
TARGET_ARGS = [
    "--project=p",
    "--location=l",
    f"--service-url={SERVICE}",
    f"--invoker-sa={INVOKER}",
]
USERS = "users-15m=/distinct-users?minutes=15@*/15 * * * *"
EVENTS = "events-hourly=/events?minutes=60&lag=5@5 * * * *"
GET, POST = 2, 1  # the REST transport asks for (and sends) enums as integers


def declared(job_id: str, uri_path: str, schedule: str, method: str = "GET") -> dict[str, Any]:
    """The JSON body of a job as this tool builds it with the default flags."""
    return {
        "name": f"projects/p/locations/l/jobs/{job_id}",
        "description": f"{method} {uri_path} "
        "(managed by collector.schedule; edits are overwritten)",
        "httpTarget": {
            "uri": SERVICE + uri_path,
            "httpMethod": GET if method == "GET" else POST,
            "oidcToken": {"serviceAccountEmail": INVOKER, "audience": SERVICE},
        },
        "retryConfig": {
            "maxRetryDuration": "0s",
            "minBackoffDuration": "60s",
            "maxBackoffDuration": "600s",
            "maxDoublings": 3,
        },
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "attemptDeadline": "180s",
    }


def stored(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A job as Scheduler returns it: our fields plus the ones Scheduler adds itself."""
    job = json.loads(json.dumps(body))
    job["httpTarget"]["headers"] = {"User-Agent": "Google-Cloud-Scheduler"}
    job.update(state=1, userUpdateTime="2026-11-20T10:00:00Z", scheduleTime="2026-11-23T10:15:00Z")
    job.update(changes)
    return job


USERS_BODY = declared("rt-mp-users-15m", "/distinct-users?minutes=15", "*/15 * * * *")
EVENTS_BODY = declared("rt-mp-events-hourly", "/events?minutes=60&lag=5", "5 * * * *")


@pytest.fixture
def client() -> scheduler_v1.CloudSchedulerClient:
    return scheduler_v1.CloudSchedulerClient(transport="rest", credentials=AnonymousCredentials())


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def run(client: scheduler_v1.CloudSchedulerClient, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*TARGET_ARGS, *args], client=client, env={}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def sent(api: responses.RequestsMock) -> list[tuple[str, str, dict[str, list[str]], Any]]:
    """(method, path, query without the transport's `$alt`, JSON body) of every request."""
    calls = []
    for call in api.calls:
        url = urlsplit(call.request.url)
        query = {k: v for k, v in parse_qs(url.query).items() if k != "$alt"}
        body = json.loads(call.request.body) if call.request.body else None
        calls.append((call.request.method, url.path, query, body))
    return calls


def listing(api: responses.RequestsMock, *jobs: dict[str, Any]) -> None:
    api.add(responses.GET, JOBS, json={"jobs": list(jobs)} if jobs else {})


LIST = ("GET", "/v1/projects/p/locations/l/jobs", {}, None)


# -- requests sent --------------------------------------------------------------------------------


def test_creates_a_missing_job_with_the_base_url_as_oidc_audience(api, client) -> None:
    listing(api)
    api.add(responses.POST, JOBS, json=stored(USERS_BODY))

    code, out, err = run(client, "--job", USERS)

    assert (code, err) == (0, "")
    assert sent(api) == [LIST, ("POST", "/v1/projects/p/locations/l/jobs", {}, USERS_BODY)]
    assert "create     rt-mp-users-15m  GET " + SERVICE + "/distinct-users?minutes=15" in out
    assert "created    rt-mp-users-15m" in out


def test_update_names_exactly_the_changed_fields_in_the_update_mask(api, client) -> None:
    listing(api, stored(USERS_BODY, schedule="*/30 * * * *", attemptDeadline="300s"))
    api.add(responses.PATCH, f"{JOBS}/rt-mp-users-15m", json=stored(USERS_BODY))

    code, out, _ = run(client, "--job", USERS)

    assert code == 0
    body = {k: v for k, v in USERS_BODY.items() if k != "name"}  # the name is in the path
    assert sent(api) == [
        LIST,
        (
            "PATCH",
            "/v1/projects/p/locations/l/jobs/rt-mp-users-15m",
            {"updateMask": ["schedule,attemptDeadline"]},
            body,
        ),
    ]
    assert "update     rt-mp-users-15m  changes schedule, attempt_deadline" in out


def test_a_changed_target_updates_http_target_only(api, client) -> None:
    old = stored(USERS_BODY)
    old["httpTarget"]["oidcToken"]["audience"] = SERVICE + "/distinct-users?minutes=15"
    listing(api, old)
    api.add(responses.PATCH, f"{JOBS}/rt-mp-users-15m", json=stored(USERS_BODY))

    assert run(client, "--job", USERS)[0] == 0
    assert sent(api)[1][2] == {"updateMask": ["httpTarget"]}


def test_deletes_prefixed_jobs_no_longer_declared_and_never_touches_others(api, client) -> None:
    foreign = stored(declared("nightly-report", "/events?minutes=1440", "0 3 * * *"))
    listing(api, stored(USERS_BODY), stored(EVENTS_BODY), foreign)
    api.add(responses.DELETE, f"{JOBS}/rt-mp-events-hourly", json={})

    code, out, _ = run(client, "--job", USERS)

    assert code == 0
    assert sent(api) == [
        LIST,
        ("DELETE", "/v1/projects/p/locations/l/jobs/rt-mp-events-hourly", {}, None),
    ]
    assert "unchanged  rt-mp-users-15m" in out
    assert "delete     rt-mp-events-hourly  no longer declared" in out
    assert "nightly-report" not in out


def test_an_unchanged_job_sends_no_write(api, client) -> None:
    # Scheduler's own additions (User-Agent header, state, times) are not differences.
    listing(api, stored(USERS_BODY), stored(EVENTS_BODY))

    code, out, _ = run(client, "--job", USERS, "--job", EVENTS)

    assert code == 0
    assert sent(api) == [LIST]
    assert out.count("unchanged") == 2


def test_a_paused_job_stays_paused_and_says_so(api, client) -> None:
    listing(api, stored(USERS_BODY, state=2))

    code, out, _ = run(client, "--job", USERS)

    assert (code, sent(api)) == (0, [LIST])
    assert "unchanged  rt-mp-users-15m  (paused)" in out


def test_dry_run_prints_the_plan_and_sends_no_write_request(api, client) -> None:
    listing(
        api,
        stored(USERS_BODY, schedule="0 * * * *"),
        stored(declared("rt-mp-old", "/events", "0 0 * * *")),
    )

    code, out, err = run(client, "--job", USERS, "--job", EVENTS, "--dry-run")

    assert (code, err) == (0, "")
    assert sent(api) == [LIST]
    assert out.splitlines() == [
        "plan for projects/p/locations/l (jobs with prefix 'rt-mp-'):",
        "  update     rt-mp-users-15m  changes schedule",
        f"  create     rt-mp-events-hourly  GET {SERVICE}/events?minutes=60&lag=5"
        " at '5 * * * *' Etc/UTC",
        "  delete     rt-mp-old  no longer declared",
        "Export queries in the worst rolling hour: 28 of 60 (one run can query for up to 2 min)",
        "  rt-mp-users-15m: 5 runs x (1 + 0 retries) x 4 queries = 20",
        "  rt-mp-events-hourly: 2 runs x (1 + 0 retries) x 4 queries = 8",
        "dry run: nothing changed",
    ]


def test_listing_reads_every_page(api, client) -> None:
    def first_page(request: Any) -> tuple[bool, str]:
        return "pageToken" not in parse_qs(urlsplit(request.url).query), "first page"

    api.add(
        responses.GET,
        JOBS,
        json={"jobs": [stored(USERS_BODY)], "nextPageToken": "page-2"},
        match=[first_page],
    )
    api.add(
        responses.GET,
        JOBS,
        json={"jobs": [stored(EVENTS_BODY)]},
        match=[matchers.query_param_matcher({"pageToken": "page-2"}, strict_match=False)],
    )

    code, out, _ = run(client, "--job", USERS, "--dry-run")

    assert code == 0
    assert [(m, q) for m, _, q, _ in sent(api)] == [("GET", {}), ("GET", {"pageToken": ["page-2"]})]
    # The job on the second page is seen, so it is planned for deletion (dry run: not sent).
    assert "delete     rt-mp-events-hourly" in out


# -- budget ---------------------------------------------------------------------------------------


def test_a_plan_over_the_query_budget_is_refused_with_exit_2_and_no_request(api, client) -> None:
    code, out, err = run(client, "--job", "every-minute=/events?minutes=1@* * * * *")

    assert code == 2
    assert sent(api) == []  # refused before Scheduler is asked anything
    assert "rt-mp-every-minute: 62 runs x (1 + 0 retries) x 4 queries = 248" in out
    assert err.startswith("error: refused: this schedule can spend 248 Export queries in one hour")
    assert "Nothing was changed." in err


def test_retries_multiply_the_worst_case(api, client) -> None:
    daily = "daily=/active-users@10 0 * * *"

    code, out, err = run(client, "--job", USERS, "--job", EVENTS, "--job", daily, "--retries=1")

    # A run spans 2 x 120 s + 600 s of backoff = 14 min; */15 still puts 5 runs in an hour.
    assert (code, sent(api)) == (2, [])
    assert "rt-mp-users-15m: 5 runs x (1 + 1 retries) x 4 queries = 40" in out
    assert "rt-mp-events-hourly: 2 runs x (1 + 1 retries) x 4 queries = 16" in out
    assert "rt-mp-daily: 1 runs x (1 + 1 retries) x 4 queries = 8" in out
    assert "can spend 64 Export queries in one hour, over the budget of 60" in err


def test_the_worst_case_is_the_sum_of_each_jobs_worst_hour() -> None:
    specs = [parse_job(USERS), parse_job(EVENTS), parse_job("daily=/active-users@10 0 * * *")]
    budget = worst_hour(
        specs, retries=0, queries_per_run=4, spread_seconds=run_spread_seconds(120, 0, 600)
    )
    assert [c.queries for c in budget.costs] == [20, 8, 4]
    assert (budget.worst_case, budget.fits) == (32, True)


# -- answers from the API -------------------------------------------------------------------------


def test_already_exists_on_create_recovers_by_updating_every_managed_field(api, client) -> None:
    listing(api)
    api.add(
        responses.POST,
        JOBS,
        status=409,
        json={"error": {"code": 409, "message": "Job already exists.", "status": "ALREADY_EXISTS"}},
    )
    api.add(responses.PATCH, f"{JOBS}/rt-mp-users-15m", json=stored(USERS_BODY))

    code, out, err = run(client, "--job", USERS)

    assert (code, err) == (0, "")
    mask = "description,schedule,timeZone,httpTarget,retryConfig,attemptDeadline"
    assert [(m, q) for m, _, q, _ in sent(api)] == [
        ("GET", {}),
        ("POST", {}),
        ("PATCH", {"updateMask": [mask]}),
    ]
    assert "updated    rt-mp-users-15m  (it appeared since the listing: all managed fields)" in out


def test_not_found_on_update_recovers_by_creating(api, client) -> None:
    listing(api, stored(USERS_BODY, schedule="0 * * * *"))
    api.add(
        responses.PATCH,
        f"{JOBS}/rt-mp-users-15m",
        status=404,
        json={"error": {"code": 404, "message": "Job not found.", "status": "NOT_FOUND"}},
    )
    api.add(responses.POST, JOBS, json=stored(USERS_BODY))

    code, out, _ = run(client, "--job", USERS)

    assert code == 0
    assert [m for m, *_ in sent(api)] == ["GET", "PATCH", "POST"]
    assert sent(api)[2][3] == USERS_BODY
    assert "created    rt-mp-users-15m  (it was deleted since the listing)" in out


def test_not_found_on_delete_counts_as_deleted(api, client) -> None:
    listing(api, stored(EVENTS_BODY))
    api.add(
        responses.DELETE,
        f"{JOBS}/rt-mp-events-hourly",
        status=404,
        json={"error": {"code": 404, "message": "Job not found.", "status": "NOT_FOUND"}},
    )

    code, out, _ = run(client)

    assert code == 0
    assert "deleted    rt-mp-events-hourly  (it was already gone)" in out


def test_permission_denied_stops_with_a_clear_message_and_exit_1(api, client) -> None:
    listing(api)
    api.add(
        responses.POST,
        JOBS,
        status=403,
        json={
            "error": {
                "code": 403,
                "message": "The principal lacks iam.serviceAccounts.actAs",
                "status": "PERMISSION_DENIED",
            }
        },
    )

    code, out, err = run(client, "--job", USERS, "--job", EVENTS)

    assert code == 1
    # The first refusal stops the sync: the second job is not attempted.
    assert [m for m, *_ in sent(api)] == ["GET", "POST"]
    assert err.startswith("error: create rt-mp-users-15m failed: 403 POST ")
    assert "The principal lacks iam.serviceAccounts.actAs" in err
    assert "roles/cloudscheduler.admin on project p" in err
    assert f"roles/iam.serviceAccountUser on {INVOKER}" in err
    assert "created" not in out


def test_permission_denied_on_listing_changes_nothing(api, client) -> None:
    api.add(
        responses.GET,
        JOBS,
        status=403,
        json={"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
    )

    code, out, err = run(client, "--job", USERS)

    assert (code, out) == (1, "")
    assert err.startswith("error: cannot list the jobs in projects/p/locations/l: 403 GET ")
    assert "roles/cloudscheduler.admin" in err


def test_an_unknown_location_names_the_flags_to_check(api, client) -> None:
    api.add(
        responses.GET,
        JOBS,
        status=404,
        json={"error": {"code": 404, "message": "Location l not found", "status": "NOT_FOUND"}},
    )

    code, _, err = run(client, "--job", USERS)

    assert code == 1
    assert "Check --project and --location" in err


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attempt-deadline=100s"], "shorter than the service's deadline (120s)"),
        (["--attempt-deadline=31m"], "outside Scheduler's 15s-1800s"),
        (["--retries=6"], "--retries 6 must be 0 to 5"),
        (["--queries-per-hour=61"], "--queries-per-hour must be 1 to 60"),
        (["--prefix="], "--prefix '' must be 1 or more letters"),
        (["--invoker-sa=rt-mp-invoker"], "is not a service account email"),
        (["--time-zone=Mars/Olympus"], "not an IANA time zone"),
        (["--job", "bad=/events@61 * * * *"], "61 in '61' is outside 0-59"),
        (["--job", "users-15m=/events"], "expected NAME=PATH?QUERY@CRON"),
        (["--job", USERS, "--job", USERS], "'users-15m' is declared twice"),
        # Job targets, checked by the service's own parser: before, planned as written.
        (
            ["--job", "u=/distinct-user?minute=15@*/15 * * * *"],
            "job 'u': /distinct-user?minute=15: the service has no endpoint /distinct-user "
            "(it would answer 404); jobs can call /distinct-users, /events, /active-users, /check",
        ),
        (
            ["--job", "u=/distinct-users?minute=15@*/15 * * * *"],
            "job 'u': /distinct-users?minute=15: the service would refuse it (400): unknown "
            "parameter(s): 'minute'; allowed: days, event, from, lag, minutes, to",
        ),
        (["--job", "e=/events?minutes=20000@0 * * * *"], "minutes=20000 is out of range"),
        (["--job", "d=/active-users?date=yesterday@0 1 * * *"], "date='yesterday' is not a date"),
        (["--job", "c=/check?dry_run=1@*/15 * * * *"], "a scheduled dry run would spend"),
        (["--job", "c=/check?rules=a@*/15 * * * *"], "allowed: dry_run, rule"),
    ],
)
def test_bad_arguments_exit_2_before_any_request(api, client, args, message) -> None:
    code, out, err = run(client, *args)

    assert (code, out, sent(api)) == (2, "", [])
    assert message in err


def test_service_url_with_a_path_is_refused(api, client) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "--project=p",
        "--location=l",
        f"--service-url={SERVICE}/events",
        f"--invoker-sa={INVOKER}",
    ]
    assert main(argv, client=client, env={}, out=out, err=err) == 2
    assert "https base URL, with no path or query" in err.getvalue()


def test_defaults_follow_the_service_settings_in_the_environment(api, client) -> None:
    listing(api)
    out, err = io.StringIO(), io.StringIO()
    env = {"EXPORT_MAX_ATTEMPTS": "2", "EXPORT_DEADLINE_SECONDS": "60"}
    argv = [*TARGET_ARGS, "--job", USERS, "--dry-run"]

    assert main(argv, client=client, env=env, out=out, err=err) == 0
    assert "rt-mp-users-15m: 5 runs x (1 + 0 retries) x 2 queries = 10" in out.getvalue()


def test_days_jobs_need_the_services_ledger_and_follow_it_from_the_environment(api, client) -> None:
    week = "users-7d=/distinct-users?days=7@0 * * * *"
    code, _, err = run(client, "--job", week, "--dry-run")
    assert code == 2 and "set LEDGER_STORE" in err and "--ledger-store" in err
    listing(api)
    out, err = io.StringIO(), io.StringIO()
    argv = [*TARGET_ARGS, "--job", week, "--dry-run"]
    assert main(argv, client=client, env={"LEDGER_STORE": "gs://b/l"}, out=out, err=err) == 0
    assert "rt-mp-users-7d" in out.getvalue()
    listing(api)
    code, out_text, _ = run(client, "--job", week, "--ledger-store", "gs://b/l", "--dry-run")
    assert code == 0 and "rt-mp-users-7d" in out_text


def test_help_describes_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "collector.schedule", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for flag in ("--job NAME=PATH?QUERY@CRON", "--jobs-file", "--dry-run", "--queries-per-run"):
        assert flag in result.stdout
    assert "exit status: 0 done" in result.stdout


# -- the declared jobs and cron -------------------------------------------------------------------


def test_a_job_spec_keeps_its_query_in_order_with_repeats() -> None:
    spec = parse_job("signups=/events?event=Sign%20Up&event=Purchase&minutes=60@0 * * * *")
    assert spec == JobSpec(
        name="signups",
        path="/events",
        schedule="0 * * * *",
        query=(("event", "Sign Up"), ("event", "Purchase"), ("minutes", "60")),
    )
    assert spec.target == "/events?event=Sign+Up&event=Purchase&minutes=60"


def test_a_jobs_file_gives_the_same_specs_as_flags(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n"
        "  - name: users-15m\n"
        "    path: /distinct-users\n"
        "    query: {minutes: 15}\n"
        "    schedule: '*/15 * * * *'\n"
        "  - name: events-hourly\n"
        "    path: /events?minutes=60\n"
        "    query: {lag: 5}\n"
        "    schedule: '5 * * * *'\n"
        "    method: post\n"
    )
    users, events = load_jobs_file(path)
    assert users == parse_job(USERS)
    assert events == parse_job(EVENTS, method="POST")


def test_a_jobs_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs:\n  - {name: a, path: /events, schedule: '0 * * * *', cron: x}\n")
    with pytest.raises(JobSpecError, match=r"unknown keys \['cron'\]"):
        load_jobs_file(path)


@pytest.mark.parametrize(
    ("expression", "spread", "runs"),
    [
        ("*/15 * * * *", 0, 4),
        ("*/15 * * * *", 2, 5),  # a run at :00 can still query at :01 of the next hour's window
        ("*/7 * * * *", 0, 9),
        ("0,30 9-17 * * MON-FRI", 0, 2),
        ("*/20 9-17 * * *", 0, 3),
        ("5 * * * *", 2, 2),
        ("10 0 * * *", 2, 1),  # a daily run never meets its own next run
        ("0-4,55-59 * * * *", 0, 10),
        ("0 9,21 * JAN 1", 0, 1),
        ("* * * * *", 0, 60),
    ],
)
def test_runs_per_hour_counts_the_worst_rolling_hour(expression, spread, runs) -> None:
    assert runs_per_hour(expression, spread) == runs


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*/0 * * * *", "step"),
        ("60 * * * *", "outside 0-59"),
        ("0 24 * * *", "outside 0-23"),
        ("5-1 * * * *", "runs backwards"),
        ("* * *", "five fields"),
        ("@hourly", "five fields"),
        ("0 9 * FOO *", "not a number"),
    ],
)
def test_malformed_cron_is_rejected_with_the_field_named(expression, message) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression)


def test_the_rules_file_declares_the_check_job() -> None:
    from pathlib import Path

    from collector.schedule.jobs import JobSpec, load_jobs_file

    example = Path(__file__).resolve().parent.parent / "rules.example.yaml"
    assert load_jobs_file(example, optional=True) == [
        JobSpec(name="check", path="/check", schedule="*/15 * * * *")
    ]


def test_a_window_the_service_allows_with_its_max_window_days_is_accepted(api, client) -> None:
    listing(api)
    job = "w=/events?minutes=20000@0 0 * * *"
    code, out, _ = run(client, "--job", job, "--max-window-days=14", "--dry-run")
    assert code == 0 and "create     rt-mp-w" in out
    assert run(client, "--job", "c=/check?rule=signups-low@*/15 * * * *", "--dry-run")[0] == 0


def offline(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command with no Google credentials at all (nowhere to find any)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GOOGLE_", "CLOUDSDK_")) and k not in ("HOME",)
    }
    home = ROOT / ".pytest-no-home"  # never created: no ~/.config/gcloud
    return subprocess.run(
        [sys.executable, "-m", "collector.schedule", *TARGET_ARGS, *args],
        cwd=ROOT,
        env={**env, "HOME": str(home), "CLOUDSDK_CONFIG": str(home), "NO_GCE_CHECK": "True"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_dry_run_plans_and_checks_the_budget_without_credentials() -> None:
    # Before, it answered with the credentials error and printed no plan at all.
    done = offline("--job", USERS, "--job", EVENTS, "--dry-run")
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "plan for projects/p/locations/l (jobs with prefix 'rt-mp-'), declared jobs only:",
        f"  declared   rt-mp-users-15m  GET {SERVICE}/distinct-users?minutes=15"
        " at '*/15 * * * *' Etc/UTC",
        f"  declared   rt-mp-events-hourly  GET {SERVICE}/events?minutes=60&lag=5"
        " at '5 * * * *' Etc/UTC",
    ]
    assert lines[3].startswith(
        "  existing jobs were not compared (no Google credentials): with Application Default "
        "Credentials (gcloud auth application-default login) the plan also says"
    )
    assert lines[4:] == [
        "Export queries in the worst rolling hour: 28 of 60 (one run can query for up to 2 min)",
        "  rt-mp-users-15m: 5 runs x (1 + 0 retries) x 4 queries = 20",
        "  rt-mp-events-hourly: 2 runs x (1 + 0 retries) x 4 queries = 8",
        "dry run: nothing changed",
    ]


def test_without_credentials_a_budget_refusal_comes_first_and_applying_says_what_is_missing() -> (
    None
):
    done = offline("--job", "every-minute=/events?minutes=1@* * * * *", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.startswith("error: refused: this schedule can spend 248 Export queries")
    assert "credentials" not in done.stdout + done.stderr
    done = offline("--job", USERS)  # not a dry run: it must list and write, so it cannot
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: no Google credentials:")
    assert "gcloud auth application-default login" in done.stderr


EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "rules.example.yaml"
OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
TIMES = "\N{MULTIPLICATION SIGN}"  # the guide's


@pytest.fixture(scope="module")
def example_job_cost() -> tuple[int, int, int]:
    """What the sync counts for the example rules file's */15 job: runs in the worst rolling
    hour, queries per run, and their product (the real command, with no Scheduler retries)."""
    done = offline("--rules", str(EXAMPLE_RULES), "--dry-run")
    assert done.returncode == 0, done.stderr
    [counted] = [line.strip() for line in done.stdout.splitlines() if "rt-mp-check:" in line]
    counts = re.fullmatch(
        r"rt-mp-check: (\d+) runs x \(1 \+ 0 retries\) x (\d+) queries = (\d+)", counted
    )
    assert counts is not None, counted
    runs, per_run, total = map(int, counts.groups())
    return runs, per_run, total


def test_the_example_rules_file_states_the_cost_the_sync_counts_for_its_job(
    example_job_cost: tuple[int, int, int],
) -> None:
    # Before, its comment said a */15 job costs 16 queries an hour; the sync counts 20 (a run
    # can still be querying when the rolling hour turns: five runs).
    comment = " ".join(
        line.lstrip("# ") for line in EXAMPLE_RULES.read_text().splitlines() if line[:1] == "#"
    )
    said = re.search(
        r"One /check every 15 minutes costs at most (\d+) Export queries in a rolling hour: "
        r"(\d+) runs .* x EXPORT_MAX_ATTEMPTS \((\d+)\)",
        comment,
    )
    assert said is not None, comment
    runs, per_run, total = example_job_cost
    assert (int(said[1]), int(said[2]), int(said[3])) == (total, runs, per_run)


@pytest.mark.skipif(not OPERATIONS.exists(), reason="docs/ is not part of the build upload")
def test_the_operations_guide_states_the_same_cost(example_job_cost: tuple[int, int, int]) -> None:
    runs, per_run, total = example_job_cost
    text = " ".join(OPERATIONS.read_text().split())
    assert (
        f"`/check` every 15 minutes costs at most {runs} {TIMES} 1 {TIMES} 1 {TIMES} {per_run} = "
        f"{total} queries in a rolling hour" in text
    )
