"""The backfill command: days split between tasks, filled once, a second run redoes nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from collector.cli.backfill import tasks_status
from collector.ledger.backfill import task_days
from collector.simulator import Fault, Simulator
from collector.stores.directory import DirBlobStore
from tests.conftest import sim_config
from tests.helpers import PROJECT_ID, ROOT, SA_SECRET, SA_USER, clean_env


def run_backfill(
    sim: Simulator, store: Path, *args: str, **env: str
) -> subprocess.CompletedProcess:
    base = clean_env()
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
        lines, summary = days_and_summary(done.stdout)
        assert sorted(line["task"] for line in lines) == [0, 1, 2]
        assert (summary["tasks"], summary["days_read"], summary["queries"]) == (3, 3, 3)
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
        lines, summary = days_and_summary(again.stdout)
        assert all(line["slices_read_now"] == 0 for line in lines)
        assert (summary["days_kept"], summary["days_read"], summary["queries"]) == (3, 0, 0)


def days_and_summary(stdout: str) -> tuple[list[dict], dict]:
    """A run's day lines, and its one summary line: the last."""
    *days, summary = (json.loads(line) for line in stdout.splitlines())
    assert "summary" in summary and not [d for d in days if "summary" in d]
    return days, summary


def test_a_backfill_past_the_retention_is_refused_before_any_query(tmp_path: Path) -> None:
    # Before, --days 400 read every day (one Export query each) and then deleted the 365 days
    # older than the retention as it rolled them up.
    with Simulator(sim_config()) as sim:
        done = run_backfill(sim, tmp_path, "--days", "400")
        tasks = run_backfill(sim, tmp_path, "--days", "400", "--tasks", "3")
        short = run_backfill(sim, tmp_path, "--days", "3", LEDGER_RETENTION_DAYS="2")
        assert sim.queries == 0
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: --days 400 reaches past LEDGER_RETENTION_DAYS=35: the ledger removes what is "
        "older than 35 days as it rolls days up, so the 365 oldest days would each spend an "
        "Export query only to be deleted. Nothing was read. Run with --days 35 or fewer, or "
        "raise LEDGER_RETENTION_DAYS (at most 400) for the service and the backfill alike.\n"
    )
    assert (tasks.returncode, tasks.stdout, tasks.stderr) == (2, "", done.stderr)  # said once
    assert short.returncode == 2 and "--days 3 reaches past LEDGER_RETENTION_DAYS=2" in short.stderr
    assert "--days 2 or fewer" in short.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written either


def test_the_help_gives_the_limits() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collector", "backfill", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "at most LEDGER_RETENTION_DAYS (35 unless set)" in text
    assert "EXPORT_QUERIES_PER_HOUR" in text and "1 to 3500" in text
    assert "2 a configuration or usage error (LEDGER_STORE unset, --days past" in text


PROGRESS = re.compile(
    r"backfill progress day=(\S+) attempt=(\d+) rows=(\d+) bytes=(\d+) seconds=([\d.]+)$"
)


def progress_lines(stderr: str) -> list[tuple[str, int, int, float]]:
    found = [PROGRESS.search(line) for line in stderr.splitlines()]
    return [(m[1], int(m[3]), int(m[4]), float(m[5])) for m in found if m]


def test_progress_within_a_day_and_one_summary_line_with_the_runs_figures(tmp_path: Path) -> None:
    env = {
        "LOG_LEVEL": "info",
        "EXPORT_PROGRESS_SECONDS": "0.1",
        "EXPORT_MAX_ATTEMPTS": "1",
        "LEDGER_RETENTION_DAYS": "3",  # --days 3 is within it
    }
    with Simulator(sim_config(events_per_minute=60)) as sim:
        sim.script([Fault.status(500)])  # the first day read (yesterday) fails
        first = run_backfill(sim, tmp_path, "--days", "2", **env)
        spent = sim.queries
        second = run_backfill(sim, tmp_path, "--days", "3", **env)
        spent_again = sim.queries - spent

    assert first.returncode == 3, first.stderr[-2000:]  # a day failed: run again
    [failed, read], summary = days_and_summary(first.stdout)
    assert failed["code"] == "upstream_unavailable" and failed["queries"] == 1
    assert read["complete"] and read["queries"] == 1 and spent == 2
    assert summary == {
        "task": 0,
        "tasks": 1,
        "summary": f"2 days: 1 read, 0 already kept, 1 failed; 2 queries, {read['bytes']:,} bytes"
        f" in {summary['seconds']} s",
        "days": 2,
        "days_read": 1,
        "days_kept": 0,
        "days_failed": 1,
        "queries": 2,
        "bytes": read["bytes"],
        "seconds": summary["seconds"],
    }

    assert second.returncode == 0, second.stderr[-2000:]
    days, summary = days_and_summary(second.stdout)
    assert [(d["slices_read_now"] > 0, d["queries"]) for d in days] == [
        (True, 1),  # yesterday, failed the first time
        (False, 0),  # kept by the first run
        (True, 1),
    ]
    assert (summary["days"], summary["days_read"], summary["days_kept"]) == (3, 2, 1)
    assert (summary["days_failed"], summary["queries"]) == (0, spent_again) == (0, 2)
    assert summary["bytes"] == sum(d["bytes"] for d in days)

    # Progress inside each day read: its rows and bytes so far, never more than the day's.
    for run, read_days in ((first, [read]), (second, [days[0], days[2]])):
        progress = progress_lines(run.stderr)
        assert {p[0] for p in progress} == {d["day"] for d in read_days}, run.stderr[-2000:]
        for day in read_days:
            mine = [p for p in progress if p[0] == day["day"]]
            assert mine, day
            for _, rows, size, _ in mine:
                assert 0 < rows <= day["rows"] and 0 < size <= day["bytes"]
            assert [p[1:] for p in mine] == sorted(p[1:] for p in mine)  # they only grow


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


@pytest.mark.parametrize(
    ("codes", "status"),
    [([0, 0, 0], 0), ([0, 3, 0], 3), ([0, 5, 3], 5), ([0, -9, 0], 1), ([-15, 2], 2)],
)
def test_a_run_of_tasks_exits_with_the_worst_and_a_killed_task_is_no_success(
    codes: list[int], status: int
) -> None:
    # A task the kernel killed for memory exits -9: the run must not say 0 beside others' 0.
    assert tasks_status(codes) == status
