"""The backfill command: days split between tasks, filled once, a second run redoes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from collector.blobs import DirBlobStore
from collector.ledger.backfill import task_days
from collector.simulator import Simulator
from tests.conftest import sim_config
from tests.helpers import PROJECT_ID, ROOT, SA_SECRET, SA_USER


def run_backfill(
    sim: Simulator, store: Path, *args: str, **env: str
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MIXPANEL_", "LEDGER_"))}
    base.update(
        {
            "MIXPANEL_EXPORT_URL": sim.url,
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SA_USER,
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
            "MIXPANEL_PROJECT_ID": PROJECT_ID,
            "LEDGER_STORE": str(store),
            "LEDGER_SLICE_MINUTES": "60",
            "LOG_LEVEL": "warning",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "collector", "backfill", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_days_are_split_between_tasks_without_overlap() -> None:
    today = datetime(2026, 12, 1, tzinfo=UTC).date()
    split = [task_days(7, today, i, 3) for i in range(3)]
    assert sorted(d for days in split for d in days) == [
        today - timedelta(days=k) for k in range(7, 0, -1)
    ]
    assert split[0] == [
        today - timedelta(days=1),
        today - timedelta(days=4),
        today - timedelta(days=7),
    ]
    with pytest.raises(ValueError):
        task_days(7, today, 3, 3)


def test_three_local_tasks_fill_each_day_once_and_a_second_run_reads_nothing(
    tmp_path: Path,
) -> None:
    with Simulator(sim_config(events_per_minute=5)) as sim:
        done = run_backfill(sim, tmp_path, "--days", "3", "--tasks", "3")
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert sorted(line["task"] for line in lines) == [0, 1, 2]
        assert all(line["complete"] and line["queries"] == 1 for line in lines)
        for line in lines:
            day = datetime.fromisoformat(line["day"]).replace(tzinfo=UTC)
            assert line["events"] == sim.truth(day, day + timedelta(days=1)).events
        assert sim.queries == 3  # one query a day
        # The two older days are settled (past the 24 h refresh) and rolled up; yesterday is not.
        blobs = DirBlobStore(tmp_path)
        assert len(blobs.names("days/")) == 2 and len(blobs.names("hours/")) == 3 * 24
        again = run_backfill(sim, tmp_path, "--days", "3")
        assert again.returncode == 0
        assert sim.queries == 3  # a retried task redoes nothing
        assert all(json.loads(x)["slices_read_now"] == 0 for x in again.stdout.splitlines())


def test_backfill_without_a_ledger_says_which_setting_to_set(tmp_path: Path) -> None:
    with Simulator(sim_config()) as sim:
        done = run_backfill(sim, tmp_path, "--days", "1", LEDGER_STORE="")
        bad = run_backfill(
            sim, tmp_path, "--days", "1", CLOUD_RUN_TASK_INDEX="5", CLOUD_RUN_TASK_COUNT="2"
        )
    assert done.returncode == 2 and "set LEDGER_STORE" in done.stderr
    assert bad.returncode == 2 and "CLOUD_RUN_TASK_INDEX" in bad.stderr


def test_the_job_definition_runs_the_backfill_from_the_service_image() -> None:
    job = yaml.safe_load((ROOT / "ops" / "backfill-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "collector"]
    assert container["args"][:2] == ["backfill", "--days"]
    names = {e["name"] for e in container["env"]}
    assert {"LEDGER_STORE", "BUDGET_STORE", "MIXPANEL_SERVICE_ACCOUNT_SECRET"} <= names
