"""The one way a read ends: its figures settled, then an answer or an error with them.

Every outcome (a complete or partial answer, a 502 refusal, a 503) leaves through `finish`, so
each carries the same figures: the real seconds, attempts, bytes and events, every failure.
"""

from __future__ import annotations

import logging

from collector.errors import BudgetExhausted, UpstreamRefused, UpstreamUnavailable
from collector.export.attempt import AttemptResult
from collector.export.budget import STORE_FAILED, QueryBudget
from collector.export.decode import MAX_LINE_BYTES, LineStats
from collector.export.failures import AttemptFailed, Refused
from collector.export.report import ExportReport
from collector.export.retry import Failure, RetryPolicy
from collector.export.zone_probe import OffsetProbe
from collector.logs import redact

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


def unproven(outcome: AttemptResult, policy: RetryPolicy, attempt: int) -> RetryPolicy:
    """An attempt read to its end that still cannot be called complete is in the errors too,
    so that every attempt is either the complete one or an entry there."""
    if outcome.proven and not outcome.unreadable:
        return policy
    if not outcome.proven:
        kind, message = "unframed", "the body had no framing: its end cannot be proven"
    else:
        kind, message = "unreadable_lines", f"{outcome.unreadable} line(s) could not be read"
    stop = "stop: another attempt would read the same"
    return policy.increment(
        Failure(attempt, kind, message, bytes=outcome.bytes, events=outcome.events, next=stop)
    )


def settle(report: ExportReport, stats: LineStats, policy: RetryPolicy, redactions: list[str]):
    """Copy the run's figures into the report; log the bad-line samples once, redacted."""
    report.lines, report.bad_lines = stats.lines, stats.bad_lines
    report.unreadable, report.skipped = stats.unreadable, stats.skipped
    report.errors = list(policy.history)
    report.bad_line_samples = [redact(sample, redactions) for sample in stats.samples]
    if report.bad_line_samples:
        log.warning(
            "skipped %d bad lines (%d unreadable)",
            stats.bad_lines,
            stats.unreadable,
            extra={
                "json_fields": {
                    "bad_lines": stats.bad_lines,
                    "unreadable": stats.unreadable,
                    "samples": report.bad_line_samples,
                }
            },
        )


def finish(
    report: ExportReport,
    outcome: AttemptResult | None,
    ended: AttemptFailed | None,
    *,
    budget: QueryBudget,
    probe: OffsetProbe | None = None,
    where_refused: str | None = None,
) -> ExportReport:
    """The report if anything usable was read; else the error that says why not."""
    if where_refused is not None:
        report.warnings.append(WHERE_WARNING.format(text=where_refused[:200]))
    zone = probe.warning() if probe is not None else None
    if zone is not None:
        report.warnings.append(zone)
    if isinstance(ended, Refused):
        raise UpstreamRefused(
            f"Mixpanel refused the export query with {ended.status} {ended.reason}: "
            f"{ended.text.rstrip('.')}. Retrying cannot fix this: {ended.hint}.",
            upstream_status=ended.status or 0,
            upstream_error=ended.text,
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
    last = report.errors[-1] if report.errors else None
    if last is not None and last.kind == "budget":
        raise BudgetExhausted(
            last.message,
            retry_in=budget.hourly_wait(),
            export=report.as_dict(),
            store_failed=last.next == STORE_FAILED,
        )
    asked = ended.retry_after if ended is not None else None
    if asked is not None and asked > 0:
        raise UpstreamUnavailable(
            f"Mixpanel asked to wait {asked:.0f} s before the next query (Retry-After), longer "
            f"than this request could; try again in {asked:.0f} s",
            export=report.as_dict(),
            retry_in=asked,
        )
    raise UpstreamUnavailable(
        "nothing usable could be read from Mixpanel"
        + (f" (last error: {last.kind}: {last.message})" if last else "")
        + "; the export figures show each attempt. Try again later, or raise "
        "EXPORT_DEADLINE_SECONDS / EXPORT_MAX_ATTEMPTS if the export is merely slow.",
        export=report.as_dict(),
    )
