"""The one resilient streaming reader every metric uses.

A read is a loop of attempts (`collector.export.attempt`), each one Export query read to its
end. Anything that ends an attempt early (network errors before or inside the body, 5xx, 429, a
body cut with or without an exception, Mixpanel's `terminated early`, a page that is not an
export body) is a failed attempt, and the retry policy (`collector.export.retry`) decides
whether and when to try again inside the total deadline. Rows of every attempt go to the same
sink, which is idempotent over re-reads (see `collector.metrics`). Every outcome, an answer or
an error, leaves through one path with the same figures.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import requests

from collector.config import Settings
from collector.errors import BudgetExhausted, UpstreamRefused, UpstreamUnavailable
from collector.export.attempt import Attempt, AttemptResult
from collector.export.batch import Batch
from collector.export.budget import QueryBudget
from collector.export.deadline import Deadline, new_session, pause, watchdog
from collector.export.decode import MAX_LINE_BYTES, EventFilter, LineStats
from collector.export.failures import AttemptFailed, Refused
from collector.export.query import ExportQuery, points_at_where, request_auth, request_params
from collector.export.report import ExportReport
from collector.export.retry import Failure, RetryPolicy
from collector.export.zone_probe import OffsetProbe
from collector.logs import redact
from collector.window import ProjectTime

__all__ = ["ExportReader", "ExportReport", "Sink"]

log = logging.getLogger("collector.export")

PARTIAL_NOTE = (
    "partial: the export stream was not read to its end, so every count is a lower bound "
    "(never more than the truth); see export.errors"
)
UNFRAMED_NOTE = (
    "partial: the body had neither chunked nor Content-Length framing (something between the "
    "collector and Mixpanel, such as a proxy, drops it), so its end cannot be proven and every "
    "count is a lower bound. Fix the proxy, or point MIXPANEL_EXPORT_URL past it"
)
UNREADABLE_NOTE = (
    "partial: {n} line(s) could not be read (not JSON, invalid UTF-8, or over the "
    f"{MAX_LINE_BYTES // (1024 * 1024)} MiB line cap); each may have been an event, so every "
    "count is a lower bound; see the logged samples"
)
WHERE_WARNING = (
    "Mixpanel refused the `where` narrowing ({text}): this process now asks for whole days "
    "without it and filters every row itself (the same answer, more bytes)"
)


class Sink(Protocol):
    """Where a read's rows go: an aggregator, or a fan-out of them."""

    def new_attempt(self) -> None: ...

    def add(self, rows: Batch) -> None: ...


class ExportReader:
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
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.session_factory = session_factory
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.rng = rng or random.Random()
        self.redactions = _secret_forms(settings)
        self.where_refused: str | None = None  # Mixpanel's text, once it refused `where`

    def read(self, query: ExportQuery, sink: Sink) -> ExportReport:
        """Read the query into `sink`; a report if anything usable was read, else raise."""
        s = self.settings
        deadline = Deadline(s.export_deadline_seconds, self.clock)
        policy = RetryPolicy(
            s.export_max_attempts, s.export_backoff_base_seconds, s.export_backoff_cap_seconds
        )
        stats = LineStats()
        report = ExportReport()
        ptime = ProjectTime(s.project_timezone)
        probe = OffsetProbe() if ptime.is_utc else None
        outcome: AttemptResult | None = None
        ended: AttemptFailed | None = None  # the failure that ended the run, if one did
        session = self.session_factory()
        attempt = Attempt(
            s,
            session,
            EventFilter(query.window, query.events, ptime),
            _counting(sink, report),
            stats,
            deadline,
            self.redactions,
            probe,
        )
        try:
            # One watchdog for the whole run, not one per attempt: the deadline is the run's,
            # and a retry may reuse the pooled keep-alive socket an earlier attempt registered.
            with watchdog(deadline):
                while True:
                    stop = self._take_budget(deadline, report.attempts + 1)
                    if stop is not None:
                        policy = policy.increment(stop)
                        break
                    report.attempts += 1
                    sink.new_attempt()
                    params = request_params(query, s, self.now(), where=self.where_refused is None)
                    try:
                        outcome = attempt.run(params, report.attempts)
                        report.bytes += outcome.bytes
                        policy = _unproven(outcome, policy, report.attempts)
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
            self._figures(report, stats, policy, sink, deadline)
        return self._end(report, policy, outcome, ended, probe)

    # -- between attempts -----------------------------------------------------------------------

    def _after(
        self,
        failed: AttemptFailed,
        policy: RetryPolicy,
        attempt: int,
        params: dict[str, str],
        deadline: Deadline,
    ) -> RetryPolicy:
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
            "export attempt %d failed: %s",
            attempt,
            failed.kind,
            extra={"json_fields": fields},
        )
        return policy

    def _take_budget(self, deadline: Deadline, attempt: int) -> Failure | None:
        """None once a query may go out; else the reason none may (no query is spent)."""
        while True:
            if deadline.expired():
                # A drain (SIGTERM) or a wait that used the last of the time: spend no query.
                drained = deadline.drained
                return Failure(
                    attempt,
                    deadline.cause,
                    (
                        "the service is shutting down (SIGTERM): the read was cut short to "
                        "answer in time"
                        if drained
                        else "the total deadline passed (EXPORT_DEADLINE_SECONDS)"
                    )
                    + ": no further attempt",
                    next=f"stop: {'shutting down' if drained else 'deadline reached'}",
                )
            wait = self.budget.try_acquire()
            if wait <= 0:
                return None
            hourly = self.budget.hourly_wait()
            if hourly > 0:
                message = (
                    f"the Export query budget of this process is spent "
                    f"(EXPORT_QUERIES_PER_HOUR={self.settings.export_queries_per_hour}); "
                    f"a query is free again in {hourly:.0f} s"
                )
                log.warning(message, extra={"json_fields": {"retry_in_seconds": round(hourly)}})
                return Failure(attempt, "budget", message, next="stop: budget spent")
            if wait >= deadline.remaining():
                return Failure(
                    attempt,
                    "deadline",
                    "deadline reached waiting for the per-second budget",
                    next="stop: deadline reached",
                )
            self.sleep(wait)  # the per-second limit frees within a second

    # -- the one way out ------------------------------------------------------------------------

    def _figures(
        self,
        report: ExportReport,
        stats: LineStats,
        policy: RetryPolicy,
        sink: Sink,
        deadline: Deadline,
    ) -> None:
        report.seconds = deadline.elapsed()
        report.lines, report.bad_lines, report.unreadable, report.skipped = (
            stats.lines,
            stats.bad_lines,
            stats.unreadable,
            stats.skipped,
        )
        report.errors = list(policy.history)
        samples = [redact(sample, self.redactions) for sample in stats.samples]
        report.bad_line_samples = samples
        if samples:
            log.warning(
                "skipped %d bad lines (%d unreadable)",
                stats.bad_lines,
                stats.unreadable,
                extra={
                    "json_fields": {
                        "bad_lines": stats.bad_lines,
                        "unreadable": stats.unreadable,
                        "samples": samples,
                    }
                },
            )

    def _end(
        self,
        report: ExportReport,
        policy: RetryPolicy,
        outcome: AttemptResult | None,
        ended: AttemptFailed | None,
        probe: OffsetProbe | None,
    ) -> ExportReport:
        if self.where_refused is not None:
            report.warnings.append(WHERE_WARNING.format(text=self.where_refused[:200]))
        zone = probe.warning() if probe is not None else None
        if zone is not None:
            report.warnings.append(zone)
        if isinstance(ended, Refused):
            refusal = ended
            raise UpstreamRefused(
                f"Mixpanel refused the export query with {refusal.status} {refusal.reason}: "
                f"{refusal.text.rstrip('.')}. Retrying cannot fix this: {refusal.hint}.",
                upstream_status=refusal.status or 0,
                upstream_error=refusal.text,
                export=report.as_dict(),
            )
        if outcome is not None:
            report.complete = outcome.proven and not outcome.unreadable
            if not outcome.proven:
                report.note = UNFRAMED_NOTE
                report.warnings.append(UNFRAMED_NOTE.removeprefix("partial: "))
            elif outcome.unreadable:
                report.note = UNREADABLE_NOTE.format(n=outcome.unreadable)
        else:
            report.note = PARTIAL_NOTE
        if outcome is not None or report.lines > 0:
            return report
        last = policy.history[-1] if policy.history else None
        if last is not None and last.kind == "budget":
            raise BudgetExhausted(
                last.message, retry_in=self.budget.hourly_wait(), export=report.as_dict()
            )
        raise UpstreamUnavailable(
            "nothing usable could be read from Mixpanel"
            + (f" (last error: {last.kind}: {last.message})" if last else "")
            + "; the export figures show each attempt. Try again later, or raise "
            "EXPORT_DEADLINE_SECONDS / EXPORT_MAX_ATTEMPTS if the export is merely slow.",
            export=report.as_dict(),
        )


def _unproven(outcome: AttemptResult, policy: RetryPolicy, attempt: int) -> RetryPolicy:
    """An attempt read to its end that still cannot be called complete is in the errors too,
    so that every attempt is either the complete one or an entry there."""
    if outcome.proven and not outcome.unreadable:
        return policy
    if not outcome.proven:
        kind, message = "unframed", "the body had no framing: its end cannot be proven"
    else:
        kind, message = "unreadable_lines", f"{outcome.unreadable} line(s) could not be read"
    return policy.increment(
        Failure(
            attempt,
            kind,
            message,
            bytes=outcome.bytes,
            events=outcome.events,
            next="stop: another attempt would read the same",
        )
    )


def _counting(sink: Sink, report: ExportReport) -> Callable[[Batch], None]:
    def add(batch: Batch) -> None:
        sink.add(batch)
        report.events += len(batch)

    return add


def _secret_forms(settings: Settings) -> list[str]:
    """The secrets, and the Basic credentials that carry them: a proxy's error page may echo
    the Authorization header, which plain redaction would miss."""
    forms = settings.secrets()
    try:
        user, password = request_auth(settings)
    except ValueError:
        return forms
    return [*forms, base64.b64encode(f"{user}:{password}".encode()).decode()]
