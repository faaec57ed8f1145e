"""Filling the ledger for past days: one Export query per day at most, nothing read twice.

The days before today are split between tasks by index (`CLOUD_RUN_TASK_INDEX` of
`CLOUD_RUN_TASK_COUNT`, as a Cloud Run Job sets them): task i takes every day whose position is
i modulo the count. A day's slices already kept are not read again, so a retried task redoes
nothing. A spent query budget is waited out rather than turned into 429s. Days older than the
ledger's retention are refused before anything is read: they would be deleted as soon as kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.errors import BudgetExhausted, CollectorError
from collector.export.attempt import Progress
from collector.ledger.service import LedgerService
from collector.metrics.answer import MetricRequest
from collector.window import Window

log = logging.getLogger("collector.ledger")

MAX_BUDGET_WAIT_SECONDS = 60.0  # one wait at a time: the budget is asked again after it


def past_retention(days: int, retention: int) -> str | None:
    """Why `days` days cannot be backfilled under a retention of `retention` days (None: they
    can). The ledger keeps the `retention` days before today and removes older ones whenever a
    day is rolled up: reading them would spend the query budget on days about to be deleted."""
    if days <= retention:
        return None
    return (
        f"--days {days} reaches past LEDGER_RETENTION_DAYS={retention}: the ledger removes what "
        f"is older than {retention} days as it rolls days up, so the {days - retention} oldest "
        "days would each spend an Export query only to be deleted. Nothing was read. Run with "
        f"--days {retention} or fewer, or raise LEDGER_RETENTION_DAYS (at most 400) for the "
        "service and the backfill alike."
    )


def task_days(days: int, today: date, index: int, count: int) -> list[date]:
    """The days of task `index` of `count`, newest first, among the `days` before `today`."""
    if not 0 <= index < count:
        raise ValueError(f"task index {index} is not within 0..{count - 1}")
    every = [today - timedelta(days=k) for k in range(1, days + 1)]
    return [d for k, d in enumerate(every) if k % count == index]


def fill_day(
    service: LedgerService,
    day: date,
    sleep: Callable[[float], None],
    give_up_after: float = 3 * 3600.0,
) -> dict[str, Any]:
    """Read what the ledger lacks of one UTC day; its figures (complete or not)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    request = MetricRequest("events", Window(start, start + timedelta(days=1)))
    waited = 0.0
    while True:
        try:
            answer = service.compute(request)
            break
        except BudgetExhausted as exc:
            if exc.store_failed or waited >= give_up_after:
                raise
            wait = min(max(exc.retry_in, 1.0), MAX_BUDGET_WAIT_SECONDS)
            log.info(
                "backfill %s: query budget spent, waiting %.0f s",
                day,
                wait,
                extra={"json_fields": {"day": day.isoformat(), "wait": wait}},
            )
            sleep(wait)
            waited += wait
    ledger = answer.ledger
    assert ledger is not None, "a ledger answer has ledger figures"
    figures = {
        "day": day.isoformat(),
        "complete": answer.complete,
        "events": answer.value,
        "slices_read_now": ledger.slices_read_now,
        "slices_from_ledger": ledger.slices_from_ledger,
        "queries": ledger.queries,
        "rows": answer.export["events"],
        "bytes": answer.export["bytes"],
        "waited_seconds": waited,
    }
    if ledger.error is not None:
        figures["ledger_error"] = ledger.error
    return figures


class DayProgress:
    """The backfill's progress entries: the reader's figures, every EXPORT_PROGRESS_SECONDS of
    a long read, naming the day being read (`day` is set before each)."""

    def __init__(self) -> None:
        self.day: date | None = None

    def __call__(self, progress: Progress) -> None:
        day = self.day.isoformat() if self.day else None
        log.info(
            "backfill progress",
            extra={
                "json_fields": {
                    "day": day,
                    "attempt": progress.attempt,
                    "rows": progress.rows,
                    "bytes": progress.bytes,
                    "seconds": round(progress.seconds, 1),
                }
            },
        )


@dataclass
class Tally:
    """A backfill's days and what they cost, for its one summary line."""

    read: int = 0  # read now, completely (some of their slices may have been kept already)
    kept: int = 0  # every slice already kept: no query
    failed: int = 0  # not read, or only partially: run again
    queries: int = 0
    bytes: int = 0

    def day(self, figures: dict[str, Any]) -> None:
        """Count a day that `fill_day` answered."""
        if not figures["complete"] or "ledger_error" in figures:
            self.failed += 1
        elif figures["queries"] == 0 and figures["slices_read_now"] == 0:
            self.kept += 1
        else:
            self.read += 1
        self.queries += figures["queries"]
        self.bytes += figures["bytes"]

    def failure(self, error: CollectorError) -> int:
        """Count a day whose read failed; the queries it spent."""
        export = error.export if isinstance(error.export, dict) else {}
        spent = int(export.get("attempts", 0))
        self.failed += 1
        self.queries += spent
        self.bytes += int(export.get("bytes", 0))
        return spent

    def add(self, line: dict[str, Any]) -> None:
        """Add another task's summary line (local --tasks)."""
        self.read += line["days_read"]
        self.kept += line["days_kept"]
        self.failed += line["days_failed"]
        self.queries += line["queries"]
        self.bytes += line["bytes"]

    def line(self, seconds: float, tasks: int = 1) -> dict[str, Any]:
        """The summary line: a sentence for a person, and its figures."""
        days = self.read + self.kept + self.failed
        seconds = round(seconds, 1)
        return {
            "summary": (
                f"{days} days: {self.read} read, {self.kept} already kept, {self.failed} "
                f"failed; {self.queries} queries, {self.bytes:,} bytes in {seconds} s"
            ),
            "tasks": tasks,
            "days": days,
            "days_read": self.read,
            "days_kept": self.kept,
            "days_failed": self.failed,
            "queries": self.queries,
            "bytes": self.bytes,
            "seconds": seconds,
        }
