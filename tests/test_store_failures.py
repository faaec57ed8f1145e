"""Stores on Cloud Storage that fail: no credentials, a bucket that is not there, nobody
listening. The real Google client libraries against fake-gcs-server (or against nothing).

The ledger is a store of what was read, never the only way to an answer: one that cannot be
read answers from the export, one that cannot be written keeps nothing, and either way the answer
is exact and says so in `ledger.error`. The budget and state stores answer 503 naming their
setting. Nothing answers 500, a command prints one line, and a store that does not answer costs
a part of the deadline, not its client's retries.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from collector.app import create_app
from collector.simulator import Simulator
from tests.conftest import sim_config
from tests.helpers import free_port, make_settings
from tests.test_ledger import BASE, DAY, Clock
from tests.test_ledger_http import app_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sim():
    with Simulator(sim_config(today=DAY + timedelta(days=9), events_per_minute=4)) as running:
        yield running


@pytest.fixture(scope="module")
def live():
    """A simulator whose today is today, for the minutes=N windows."""
    with Simulator(sim_config()) as running:
        yield running


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """An environment where google.auth finds no credentials, wherever the suite runs (a
    Cloud Build worker has a metadata server that would give some): GOOGLE_APPLICATION_CREDENTIALS
    names a key file that is not there, which google.auth reports at once, before any other
    source. For a new process, NO_GCE_CHECK (read at import) keeps it off the metadata server."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    return dict(os.environ)


def day_answer(http, sim: Simulator, clock: Clock) -> dict:
    body = http.get("/distinct-users?days=1&lag=0").get_json()
    assert body["value"] == sim.truth(clock.moment - timedelta(days=1), clock.moment).distinct_users
    assert body["complete"] is True
    return body


def test_a_ledger_without_credentials_answers_from_the_export_and_says_so(
    sim: Simulator, tmp_path: Path, no_credentials: dict
) -> None:
    clock = Clock(BASE + timedelta(days=7))
    http = app_for(sim, tmp_path, clock, LEDGER_STORE="gs://no-such-bucket/ledger").test_client()
    for _ in range(2):  # nothing was kept: the second answer reads the export again
        before = sim.queries
        body = day_answer(http, sim, clock)
        assert sim.queries - before == 1
        error = body["ledger"]["error"]
        assert "could not be read" in error and "LEDGER_STORE (gs://no-such-bucket/ledger)" in error
        assert "gcloud auth application-default login" in error


def test_a_ledger_that_cannot_be_written_keeps_nothing_but_the_answer_stands(
    sim: Simulator, tmp_path: Path, gcs_emulator: str
) -> None:
    """A bucket that is not there: every object reads as absent (404), every write fails."""
    clock = Clock(BASE + timedelta(days=7))
    missing = f"gone-{uuid.uuid4().hex[:8]}"
    http = app_for(sim, tmp_path, clock, LEDGER_STORE=f"gs://{missing}/ledger").test_client()
    first = day_answer(http, sim, clock)
    assert "could not be written" in first["ledger"]["error"]
    assert "the answer stands" in first["ledger"]["error"]
    assert first["ledger"]["queries"] == 1


@pytest.mark.timing
def test_a_ledger_store_nobody_answers_costs_part_of_the_deadline(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections refused: the client would retry each call for 30 s; the ledger gives its
    store a quarter of what is left of the deadline, then reads the export."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    clock = Clock(BASE + timedelta(days=7))
    http = app_for(
        sim, tmp_path, clock, LEDGER_STORE="gs://b/ledger", EXPORT_DEADLINE_SECONDS="4"
    ).test_client()
    started = time.monotonic()
    body = day_answer(http, sim, clock)
    assert time.monotonic() - started < 4
    assert "could not be read" in body["ledger"]["error"]


@pytest.mark.parametrize(
    ("env", "paths", "code", "names"),
    [
        (
            {"BUDGET_STORE": "gs://no-such-bucket/budget"},
            ["/distinct-users?minutes=10", "/events?minutes=10"],
            "budget_exhausted",
            "BUDGET_STORE=gs://no-such-bucket/budget",
        ),
        (
            {"STATE_STORE": "gs://no-such-bucket/state.json", "COLLECTOR_RULES": "x"},
            ["/check", "/check?dry_run=1", "/rules", "/status"],
            "state_store_unavailable",
            "gs://no-such-bucket/state.json",
        ),
    ],
)
def test_budget_and_state_stores_without_credentials_answer_503_naming_them(
    live: Simulator, no_credentials: dict, env: dict, paths: list, code: str, names: str
) -> None:
    if "COLLECTOR_RULES" in env:
        env = {**env, "COLLECTOR_RULES": str(ROOT / "rules.example.yaml")}
    app = create_app(make_settings(live.url, **env))
    http = app.test_client()
    for path in paths:
        r = http.get(path)
        assert r.status_code == 503, (path, r.data)
        if path == "/status":  # a page for the browser, saying the same
            page = html.unescape(r.get_data(as_text=True))
            body = {"code": code if f"<code>{code}</code>" in page else None, "error": page}
        else:
            body = r.get_json()
        assert body["code"] == code and names in body["error"]
        assert "gcloud auth application-default login" in body["error"]
    if "STATE_STORE" in env:  # the metric endpoints need no state
        assert http.get("/distinct-users?minutes=10").status_code == 200


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["backfill", "--days", "1"], {"LEDGER_STORE": "gs://no-such-bucket/ledger"}),
        (
            ["backfill", "--days", "1"],
            {"LEDGER_STORE": "{tmp}/ledger", "BUDGET_STORE": "gs://no-such-bucket/budget"},
        ),
        (
            ["check", "--dry-run", "--rules", str(ROOT / "rules.example.yaml")],
            {"STATE_STORE": "gs://no-such-bucket/state.json"},
        ),
    ],
)
def test_commands_without_credentials_print_one_line_and_exit_5(
    no_credentials: dict, command: list, env: dict, tmp_path: Path
) -> None:
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    run_env = {
        **no_credentials,
        **env,
        "MIXPANEL_API_SECRET": "not-used",
        "MIXPANEL_EXPORT_URL": "http://127.0.0.1:9/api/2.0/export",
    }
    done = subprocess.run(
        [sys.executable, "-m", "collector", *command],
        env=run_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gcloud auth application-default login" in errors[0]
    # The line names the store that failed (the one on Cloud Storage).
    [failing] = [v for v in env.values() if v.startswith("gs://")]
    assert failing in errors[0]
    assert "Traceback" not in done.stderr
