"""Filling the ledger for past days: one Export query per day at most, nothing read twice.

The days before today are split between tasks by index (`CLOUD_RUN_TASK_INDEX` of
`CLOUD_RUN_TASK_COUNT`, as a Cloud Run Job sets them): task i takes every day whose position is
i modulo the count. A day's slices already kept are not read again, so a retried task redoes
nothing. A spent query budget is waited out rather than turned into 429s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.errors import BudgetExhausted
from collector.ledger.service import LedgerService
from collector.metrics.service import MetricRequest
from collector.window import Window

log = logging.getLogger("collector.ledger")

MAX_BUDGET_WAIT_SECONDS = 60.0  # one wait at a time: the budget is asked again after it


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
            body = service.compute(request)
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
    ledger = body["ledger"]
    figures = {
        "day": day.isoformat(),
        "complete": body["complete"],
        "events": body["value"],
        "slices_read_now": ledger["slices_read_now"],
        "slices_from_ledger": ledger["slices_from_ledger"],
        "queries": ledger["queries"],
        "bytes": body["export"]["bytes"],
        "waited_seconds": waited,
    }
    if "error" in ledger:
        figures["ledger_error"] = ledger["error"]
    return figures
