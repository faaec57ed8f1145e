"""The one resilient streaming reader every metric uses.

A read is a loop of attempts (`collector.export.attempt`), each one Export query read to its
end. Anything that ends an attempt early (network errors before or inside the body, 5xx, 429, a
body cut with or without an exception, Mixpanel's `terminated early`, a page that is not an
export body) is a failed attempt, and the retry policy (`collector.export.retry`) decides
whether and when to try again inside the total deadline. Rows of every attempt go to the same
sink, which is idempotent over re-reads (see `collector.metrics`). Every outcome, an answer or
an error, leaves through one path (`collector.export.finish`) with the same figures.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import requests

from collector.config import Settings
from collector.export.attempt import Attempt, AttemptResult, Progress, log_progress
from collector.export.batch import Batch
from collector.export.budget import QueryBudget
from collector.export.deadline import Deadline
from collector.export.decode import EventFilter, LineStats
from collector.export.failures import AttemptFailed, Refused
from collector.export.finish import finish, settle, unproven
from collector.export.query import ExportQuery, points_at_where, request_params, secret_forms
from collector.export.report import ExportReport
from collector.export.retry import RetryPolicy
from collector.export.transport import new_session, watchdog
from collector.export.zone_probe import OffsetProbe
from collector.shutdown import pause
from collector.window import ProjectTime

__all__ = ["ExportReader", "ExportReport", "Sink"]

log = logging.getLogger("collector.export")


class Sink(Protocol):
    """Where a read's rows go: an aggregator, or a fan-out of them."""

    def new_attempt(self) -> None: ...

    def add(self, rows: Batch) -> None: ...


class ExportReader:
    """Reads Export queries for one process: its settings, query budget and transport."""

    def __init__(
        self,
        settings: Settings,
        budget: QueryBudget,
        *,
        session_factory: Callable[[], requests.Session] = new_session,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = pause,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        progress: Callable[[Progress], None] = log_progress,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.session_factory = session_factory
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.rng = rng or random.Random()
        self.progress = progress  # every EXPORT_PROGRESS_SECONDS of a long read
        self.redactions = secret_forms(settings)
        self.where_refused: str | None = None  # Mixpanel's text, once it refused `where`

    def deadline(self) -> Deadline:
        """A new total deadline of EXPORT_DEADLINE_SECONDS, for a run of one or more reads."""
        return Deadline(self.settings.export_deadline_seconds, self.clock)

    def read(
        self, query: ExportQuery, sink: Sink, deadline: Deadline | None = None
    ) -> ExportReport:
        """Read the query into `sink`; a report if anything usable was read, else raise.

        `deadline` is the run's when one request reads several queries (a `/check`, a ledger
        answer): they share it, so the request ends within EXPORT_DEADLINE_SECONDS however many
        queries it needs. Without one, the read has a deadline of its own."""
        s = self.settings
        deadline = deadline or self.deadline()
        started = self.clock()
        policy = RetryPolicy(
            s.export_max_attempts, s.export_backoff_base_seconds, s.export_backoff_cap_seconds
        )
        stats, report = LineStats(), ExportReport()
        ptime = ProjectTime(s.project_timezone)
        probe = OffsetProbe() if ptime.is_utc else None
        outcome: AttemptResult | None = None
        ended: AttemptFailed | None = None  # the failure that ended the run, if one did
        session = self.session_factory()
        events = EventFilter(query.window, query.events, ptime, query.ranges)
        attempt = Attempt(
            s,
            session,
            events,
            _counting(sink, report),
            stats,
            deadline,
            self.redactions,
            probe,
            self.progress,
        )
        try:
            # One watchdog for the whole run, not one per attempt: the deadline is the run's,
            # and a retry may reuse the pooled keep-alive socket an earlier attempt registered.
            with watchdog(deadline):
                while True:
                    stop = self.budget.take(deadline, self.sleep)
                    if stop is not None:
                        policy = policy.increment(stop)
                        break
                    report.attempts += 1
                    sink.new_attempt()
                    where = self.where_refused is None
                    params = request_params(query, s, self.now(), where=where)
                    try:
                        outcome = attempt.run(params, report.attempts)
                        report.bytes += outcome.bytes
                        policy = unproven(outcome, policy, report.attempts)
                        break
                    except AttemptFailed as failed:
                        report.bytes += failed.bytes
                        policy = self._after(failed, policy, report.attempts, params, deadline)
                        if policy.wait is None:
                            ended = failed
                            break
                        self.sleep(policy.wait)
        finally:
            session.close()
            report.seconds = self.clock() - started
            settle(report, stats, policy, self.redactions)
        return finish(
            report,
            outcome,
            ended,
            budget=self.budget,
            probe=probe,
            where_refused=self.where_refused,
        )

    def _after(
        self,
        failed: AttemptFailed,
        policy: RetryPolicy,
        attempt: int,
        params: dict[str, str],
        deadline: Deadline,
    ) -> RetryPolicy:
        """The policy after a failed attempt, logged; a refused `where` is dropped at once."""
        retry_now = None
        if (
            isinstance(failed, Refused)
            and failed.status == 400
            and "where" in params
            and points_at_where(failed.text)
        ):
            # The `where` form is not in Mixpanel's documented grammar; the reader filters
            # every row anyway, so the query can go without it.
            self.where_refused = failed.text
            retry_now = "retry without where"
        policy = policy.after(failed, attempt, deadline.remaining(), self.rng, retry_now=retry_now)
        fields = policy.history[-1].as_dict()
        # `message` is the log entry's own text in Cloud Logging: the failure's goes in `error`.
        fields["error"] = fields.pop("message")
        log.warning(
            "export attempt %d failed: %s", attempt, failed.kind, extra={"json_fields": fields}
        )
        return policy


def _counting(sink: Sink, report: ExportReport) -> Callable[[Batch], None]:
    def add(batch: Batch) -> None:
        sink.add(batch)
        report.events += len(batch)

    return add
