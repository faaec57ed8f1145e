"""`collector backfill --days N`: fill the slice ledger (LEDGER_STORE) for past days.

    collector backfill --days N [--tasks N] [--deadline-seconds S]

Each of the N days before today (UTC) is read once, skipping the slices the ledger already has:
running it again redoes nothing. As a Cloud Run Job, the days are split between the job's tasks
by CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT; locally, --tasks N runs N processes with those
variables set. Every task spends from the query budget (shared across tasks with BUDGET_STORE)
and waits when it is spent. Prints one JSON line per day.

Exit status: 0 every day read completely; 3 a day could only be read partially (run again);
5 the ledger's store (or the budget's, BUDGET_STORE) could not be read or written (the
backfill stops: what it read would not be kept, or no query could be counted); 2 a
configuration or usage error (LEDGER_STORE unset, bad task variables); 1 unexpected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

from collector.app import build_budget
from collector.blobs import blob_store_from_url
from collector.cli.args import command, positive
from collector.config import Settings
from collector.errors import BudgetExhausted, CollectorError, ConfigError, StoreError
from collector.export.reader import ExportReader
from collector.export.shared_budget import check_writable
from collector.ledger.backfill import fill_day, task_days
from collector.ledger.service import build_ledger
from collector.logs import setup_logging
from collector.shutdown import pause

OK, UNEXPECTED, CONFIG, PARTIAL, STORE = 0, 1, 2, 3, 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `backfill` subcommand."""
    cmd = command(sub, "backfill", "fill the slice ledger for past days", __doc__, run)
    cmd.add_argument("--days", type=positive, required=True, help="how many days before today")
    cmd.add_argument(
        "--tasks", type=positive, default=1, help="run this many tasks as local processes (1)"
    )
    cmd.add_argument(
        "--deadline-seconds",
        type=positive,
        default=3000,
        help="EXPORT_DEADLINE_SECONDS for each day's read (3000: a day is a long read)",
    )


def run(args: argparse.Namespace) -> int:
    """Backfill; the exit status of the module's docstring."""
    if args.tasks > 1:
        return _processes(args)
    try:
        index = int(os.environ.get("CLOUD_RUN_TASK_INDEX", "0"))
        count = int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1"))
        settings = Settings.from_env(state_store_required=False)
        if not settings.ledger_store:
            return _fail("backfill fills the slice ledger: set LEDGER_STORE", CONFIG)
        settings = replace(settings, export_deadline_seconds=float(args.deadline_seconds))
        setup_logging(settings, stream=sys.stderr)
        now = lambda: datetime.now(UTC)  # noqa: E731
        budget = build_budget(settings)  # shared with the service's with BUDGET_STORE
        service = build_ledger(settings, ExportReader(settings, budget, now=now), now)
        assert service is not None
        days = task_days(args.days, now().date(), index, count)
        stores = [("LEDGER_STORE", service.ledger.check_writable)]
        if settings.budget_store:  # what the budget needs, as the first query would find out
            budget_store = blob_store_from_url(settings.budget_store, "BUDGET_STORE")
            stores.append(("BUDGET_STORE", lambda: check_writable(budget_store)))
        for setting, check in stores:
            try:
                check()
            except StoreError as exc:
                return _fail(f"{setting}: {exc.message}", STORE)
    except ValueError as exc:
        return _fail(f"CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT: {exc}", CONFIG)
    except ConfigError as exc:
        return _fail(exc.message, CONFIG)
    status = OK
    for day in days:
        try:
            figures = fill_day(service, day, pause)
        except BudgetExhausted as exc:
            if exc.store_failed:
                return _fail(exc.message, STORE)
            print(json.dumps({"day": day.isoformat(), "error": exc.message, "code": exc.code}))
            status = PARTIAL
            continue
        except CollectorError as exc:
            print(json.dumps({"day": day.isoformat(), "error": exc.message, "code": exc.code}))
            status = PARTIAL
            continue
        print(json.dumps({"task": index, **figures}), flush=True)
        if "ledger_error" in figures:
            return _fail(figures["ledger_error"], STORE)
        if not figures["complete"]:
            status = PARTIAL
    return status


def _processes(args: argparse.Namespace) -> int:
    """--tasks N: the same command N times, as a Cloud Run Job's tasks would run."""
    command = [sys.executable, "-m", "collector", "backfill", "--days", str(args.days)]
    command += ["--deadline-seconds", str(args.deadline_seconds)]
    env = {**os.environ, "CLOUD_RUN_TASK_COUNT": str(args.tasks)}
    procs = [
        subprocess.Popen(command, env={**env, "CLOUD_RUN_TASK_INDEX": str(i)})
        for i in range(args.tasks)
    ]
    codes = [p.wait() for p in procs]
    return max(codes)


def _fail(message: str, status: int) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return status
