"""`collector backfill --days N`: fill the slice ledger (LEDGER_STORE) for past days.

    collector backfill --days N [--tasks N] [--deadline-seconds S]

Each of the N days before today (UTC) is read once, skipping the slices the ledger already has:
running it again redoes nothing. As a Cloud Run Job, the days are split between the job's tasks
by CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT; locally, --tasks N runs N processes with those
variables set. Every task spends from the query budget (shared across tasks with BUDGET_STORE)
and waits when it is spent.

Limits:
  --days            1 to LEDGER_RETENTION_DAYS (35 unless set): the ledger removes older days
                    as it rolls days up, so a longer backfill is refused before any query
  queries           one Export query per day not yet kept (more if a read is retried, up to
                    EXPORT_MAX_ATTEMPTS), from EXPORT_QUERIES_PER_HOUR (60, Mixpanel's limit
                    per project): 35 days take at least 35 of an hour's 60 queries
  --deadline-seconds  1 to 3500: the longest one day's read may take

Output: one JSON line per day on stdout, then one summary line (days read, already kept,
failed; queries, bytes, seconds). While a day is read, a `backfill progress` log entry on
stderr every EXPORT_PROGRESS_SECONDS gives its rows, bytes and seconds so far.

Exit status: 0 every day read completely (or already kept); 3 a day failed or could only be
read partially (run again: what was read is kept); 5 the ledger's store (or the budget's,
BUDGET_STORE) could not be read or written (the backfill stops: what it read would not be
kept, or no query could be counted); 2 a configuration or usage error (LEDGER_STORE unset,
--days past LEDGER_RETENTION_DAYS, bad task variables): nothing was read; 1 unexpected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from collector.app import build_budget
from collector.cli.args import command, positive, within
from collector.config import Settings
from collector.errors import BudgetExhausted, CollectorError, ConfigError, StoreError
from collector.export.reader import ExportReader
from collector.ledger.backfill import DayProgress, Tally, fill_day, past_retention, task_days
from collector.ledger.service import LedgerService, build_ledger
from collector.logs import setup_logging
from collector.shutdown import pause
from collector.stores import open_store, probe

OK, UNEXPECTED, CONFIG, PARTIAL, STORE = 0, 1, 2, 3, 5
MAX_DEADLINE_SECONDS = 3500  # EXPORT_DEADLINE_SECONDS' own limit


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `backfill` subcommand."""
    cmd = command(sub, "backfill", "fill the slice ledger for past days", __doc__, run)
    cmd.add_argument(
        "--days",
        type=positive,
        required=True,
        help="how many days before today, at most LEDGER_RETENTION_DAYS (35 unless set)",
    )
    cmd.add_argument(
        "--tasks", type=positive, default=1, help="run this many tasks as local processes (1)"
    )
    cmd.add_argument(
        "--deadline-seconds",
        type=within(1, MAX_DEADLINE_SECONDS),
        default=3000,
        help="EXPORT_DEADLINE_SECONDS for each day's read (3000: a day is a long read)",
    )


def run(args: argparse.Namespace) -> int:
    """Backfill; the exit status of the module's docstring."""
    try:
        settings = Settings.from_env(state_store_required=False)
    except ConfigError as exc:
        return _fail(exc.message, CONFIG)
    if not settings.ledger_store:
        return _fail("backfill fills the slice ledger: set LEDGER_STORE", CONFIG)
    refused = past_retention(args.days, settings.ledger_retention_days)
    if refused:
        return _fail(refused, CONFIG)
    if args.tasks > 1:
        return _processes(args)
    return _task(args, settings)


def _task(args: argparse.Namespace, settings: Settings) -> int:
    """One task's days (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT), one summary line."""
    started = time.monotonic()
    progress = DayProgress()
    try:
        index = int(os.environ.get("CLOUD_RUN_TASK_INDEX", "0"))
        count = int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1"))
        settings = replace(settings, export_deadline_seconds=float(args.deadline_seconds))
        setup_logging(settings, stream=sys.stderr)
        now = lambda: datetime.now(UTC)  # noqa: E731
        budget = build_budget(settings)  # shared with the service's with BUDGET_STORE
        reader = ExportReader(settings, budget, now=now, progress=progress)
        service = build_ledger(settings, reader, now)
        assert service is not None
        days = task_days(args.days, now().date(), index, count)
        stores = [("LEDGER_STORE", service.ledger.check_writable)]
        if settings.budget_store:  # what the budget needs, as the first query would find out
            budget_store = open_store(settings.budget_store, "BUDGET_STORE", check=False)
            stores.append(("BUDGET_STORE", lambda: probe(budget_store)))
        for setting, check in stores:
            try:
                check()
            except StoreError as exc:
                return _fail(f"{setting}: {exc.message}", STORE)
    except ValueError as exc:
        return _fail(f"CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT: {exc}", CONFIG)
    except ConfigError as exc:
        return _fail(exc.message, CONFIG)
    tally = Tally()
    try:
        return _days(service, days, index, progress, tally)
    finally:  # whatever ended the run, it ends with its summary
        _print({"task": index, **tally.line(time.monotonic() - started)})


def _days(
    service: LedgerService, days: list[Any], index: int, progress: DayProgress, tally: Tally
) -> int:
    status = OK
    for day in days:
        progress.day = day
        try:
            figures = fill_day(service, day, pause)
        except CollectorError as exc:
            spent = tally.failure(exc)
            if isinstance(exc, BudgetExhausted) and exc.store_failed:
                return _fail(exc.message, STORE)
            line = {"task": index, "day": day.isoformat(), "error": exc.message, "code": exc.code}
            _print({**line, "queries": spent})
            status = PARTIAL
            continue
        tally.day(figures)
        _print({"task": index, **figures})
        if "ledger_error" in figures:
            return _fail(figures["ledger_error"], STORE)
        if not figures["complete"]:
            status = PARTIAL
    return status


def _processes(args: argparse.Namespace) -> int:
    """--tasks N: the same command N times, as a Cloud Run Job's tasks would run; their day
    lines as they come, and one summary of them all."""
    started = time.monotonic()
    command = [sys.executable, "-m", "collector", "backfill", "--days", str(args.days)]
    command += ["--deadline-seconds", str(args.deadline_seconds)]
    env = {**os.environ, "CLOUD_RUN_TASK_COUNT": str(args.tasks)}
    procs = [
        subprocess.Popen(
            command,
            env={**env, "CLOUD_RUN_TASK_INDEX": str(i)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(args.tasks)
    ]
    tally = Tally()
    lock = threading.Lock()

    def relay(proc: subprocess.Popen[str]) -> None:
        for text in proc.stdout:  # type: ignore[union-attr]
            with lock:
                try:
                    line = json.loads(text)
                except ValueError:  # not one of ours: passed on as it came
                    line = None
                if not isinstance(line, dict):
                    print(text, end="", flush=True)
                    continue
                if "summary" in line:
                    tally.add(line)
                else:
                    _print(line)

    relays = [threading.Thread(target=relay, args=(p,)) for p in procs]
    for thread in relays:
        thread.start()
    codes = [p.wait() for p in procs]
    for thread in relays:
        thread.join()
    _print(tally.line(time.monotonic() - started, tasks=args.tasks))
    return tasks_status(codes)


def tasks_status(codes: list[int]) -> int:
    """The run's exit status from its tasks': the worst. A task killed by a signal (out of
    memory, SIGKILL) exits negative, which is no success."""
    return max(UNEXPECTED if code < 0 else code for code in codes)


def _print(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _fail(message: str, status: int) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return status
