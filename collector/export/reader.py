"""The one resilient streaming reader every metric uses.

An attempt is one Export query read to its end. Anything that ends an attempt early (network
errors before or inside the body, 5xx, 429, a body cut with or without an exception, Mixpanel's
`terminated early`) is a failed attempt, retried with capped full-jitter backoff inside the total
deadline. 4xx other than 429 cannot be fixed by retrying and fail at once. Rows of every attempt
go to the same aggregator, which is idempotent over re-reads (see `collector.metrics`).
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3

from collector.config import Settings
from collector.errors import BudgetExhausted, UpstreamRefused, UpstreamUnavailable
from collector.export.batch import Batch
from collector.export.budget import QueryBudget
from collector.export.deadline import Deadline, new_session, pause, watchdog
from collector.export.decode import EventFilter, LineSplitter, LineStats
from collector.export.parallel import DecodePool
from collector.export.query import (
    REFUSAL_HINTS,
    ExportQuery,
    request_auth,
    request_headers,
    request_params,
    upstream_error_text,
)
from collector.export.retry import Failure, RetryPolicy, parse_retry_after
from collector.logs import redact
from collector.metrics.aggregators import Aggregator
from collector.window import ProjectTime

log = logging.getLogger("collector.export")

CHUNK_BYTES = 1024 * 1024
DECODE_AFTER_BYTES = 4 * CHUNK_BYTES  # body read before decode helpers are started
ERROR_BODY_BYTES = 4096
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass
class ExportReport:
    complete: bool = False
    attempts: int = 0
    lines: int = 0
    events: int = 0
    skipped: int = 0
    bad_lines: int = 0
    duplicates: int = 0
    bytes: int = 0
    seconds: float = 0.0
    decode_helpers: int = 0  # most helper processes decoding in any attempt (0: this one alone)
    errors: list[Failure] = field(default_factory=list)
    bad_line_samples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "attempts": self.attempts,
            "events": self.events,
            "duplicates": self.duplicates,
            "bad_lines": self.bad_lines,
            "skipped": self.skipped,
            "lines": self.lines,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "decode_helpers": self.decode_helpers,
            "errors": [f.as_dict() for f in self.errors],
        }
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class _Fold:
    """Folds decoded blocks into the sink and the attempt's figures."""

    def __init__(
        self, sink: Aggregator, stats: LineStats, report: ExportReport, counted: dict[str, int]
    ) -> None:
        self.sink, self.stats, self.report, self.counted = sink, stats, report, counted
        self.terminated = False

    def __call__(self, batch: Batch, marker: bool, block_stats: LineStats | None = None) -> None:
        if block_stats is not None:  # decoded in a helper: its line figures are its own
            self.stats.merge(block_stats)
        self.terminated = self.terminated or marker
        if len(batch):
            self.sink.add(batch)
        self.counted["events"] += len(batch)
        self.report.events += len(batch)


class _AttemptFailed(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


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
        decode_after_bytes: int = DECODE_AFTER_BYTES,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.session_factory = session_factory
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.rng = rng or random.Random()
        self.decode_after_bytes = decode_after_bytes
        self.redactions = _secret_forms(settings)

    def read(self, query: ExportQuery, sink: Aggregator) -> ExportReport:
        """Read the query into `sink`; a report if anything usable was read, else raise."""
        s = self.settings
        deadline = Deadline(s.export_deadline_seconds, self.clock)
        policy = RetryPolicy(
            s.export_max_attempts, s.export_backoff_base_seconds, s.export_backoff_cap_seconds
        )
        stats = LineStats()
        report = ExportReport()
        event_filter = EventFilter(query.window, query.events, ProjectTime(s.project_timezone))
        params = request_params(query, s, self.now())
        session = self.session_factory()
        try:
            # One watchdog for the whole run, not one per attempt: the deadline is the run's,
            # and a retry may reuse the pooled keep-alive socket an earlier attempt registered.
            with watchdog(deadline):
                while True:
                    if not self._take_budget(deadline, report):
                        break
                    report.attempts += 1
                    sink.new_attempt()
                    try:
                        self._attempt(session, params, event_filter, sink, stats, report, deadline)
                        report.complete = True
                        break
                    except _AttemptFailed as failed:
                        policy = self._after_failure(failed, policy, report, deadline)
                        if policy is None:
                            break
        finally:
            session.close()
            report.seconds = deadline.elapsed()
            report.lines, report.bad_lines, report.skipped = (
                stats.lines,
                stats.bad_lines,
                stats.skipped,
            )
            report.bad_line_samples = stats.samples
            report.duplicates = _duplicates(sink)
        if stats.samples:
            log.warning(
                "skipped %d malformed lines",
                stats.bad_lines,
                extra={"json_fields": {"bad_lines": stats.bad_lines, "samples": stats.samples}},
            )
        if report.complete or stats.lines > 0:
            return report
        last = report.errors[-1] if report.errors else None
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

    # -- budget ---------------------------------------------------------------------------

    def _take_budget(self, deadline: Deadline, report: ExportReport) -> bool:
        while True:
            if deadline.expired():
                # A drain (SIGTERM) or a wait that used the last of the time: spend no query.
                report.errors.append(
                    Failure(
                        report.attempts + 1,
                        deadline.cause,
                        _ended(deadline) + ": no further attempt",
                        next=f"stop: {_stop_reason(deadline)}",
                    )
                )
                return False
            wait = self.budget.try_acquire()
            if wait <= 0:
                return True
            hourly = self.budget.hourly_wait()
            if hourly > 0:
                message = (
                    f"the Export query budget of this process is spent "
                    f"(EXPORT_QUERIES_PER_HOUR={self.settings.export_queries_per_hour}); "
                    f"a query is free again in {hourly:.0f} s"
                )
                report.errors.append(
                    Failure(report.attempts + 1, "budget", message, next="stop: budget spent")
                )
                log.warning(message, extra={"json_fields": {"retry_in_seconds": round(hourly)}})
                return False
            if wait >= deadline.remaining():
                report.errors.append(
                    Failure(
                        report.attempts + 1,
                        "deadline",
                        "deadline reached waiting for the per-second budget",
                        next="stop: deadline reached",
                    )
                )
                return False
            self.sleep(wait)  # the per-second limit frees within a second

    # -- one attempt ----------------------------------------------------------------------

    def _attempt(
        self,
        session: requests.Session,
        params: dict[str, str],
        event_filter: EventFilter,
        sink: Aggregator,
        stats: LineStats,
        report: ExportReport,
        deadline: Deadline,
    ) -> None:
        s = self.settings
        counted = {"bytes": 0, "events": 0}
        try:
            remaining = max(0.05, deadline.remaining())
            timeout = (
                min(s.export_connect_timeout_seconds, remaining),
                min(s.export_read_timeout_seconds, remaining),
            )
            response = session.get(
                s.export_url,
                params=params,
                auth=request_auth(s),
                headers=request_headers(s),
                stream=True,
                timeout=timeout,
            )
            with response:
                if response.status_code != 200:
                    self._refuse_or_fail(response, report)
                self._stream(response, event_filter, sink, stats, report, deadline, counted)
        except _AttemptFailed as failed:
            failed.bytes_events = counted  # type: ignore[attr-defined]
            raise
        except (requests.RequestException, OSError) as exc:
            kind = deadline.cause if deadline.expired() else _classify(exc)
            failed = _AttemptFailed(
                kind, self._describe(exc, deadline), retryable=kind != "request_error"
            )
            failed.bytes_events = counted  # type: ignore[attr-defined]
            raise failed from None

    def _stream(
        self,
        response: requests.Response,
        event_filter: EventFilter,
        sink: Aggregator,
        stats: LineStats,
        report: ExportReport,
        deadline: Deadline,
        counted: dict[str, int],
    ) -> None:
        splitter = LineSplitter()
        fold = _Fold(sink, stats, report, counted)
        processes = self.settings.export_decode_processes
        pool: DecodePool | None = None
        next_progress = deadline.elapsed() + self.settings.export_progress_seconds
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                counted["bytes"] += len(chunk)
                report.bytes += len(chunk)
                if pool is None and processes and counted["bytes"] > self.decode_after_bytes:
                    # Only a long body is worth a fork; most reads end before this.
                    pool = DecodePool(event_filter, processes)
                    report.decode_helpers = max(report.decode_helpers, len(pool.helpers))
                for block in splitter.feed(chunk):
                    if pool is not None and isinstance(block, memoryview) and pool.submit(block):
                        continue
                    batch, marker = event_filter.decode_block(block, stats)
                    fold(batch, marker)
                if pool is not None:
                    for done in pool.ready():
                        fold(done.batch, done.terminated, done.stats)
                if deadline.elapsed() >= next_progress:
                    next_progress += self.settings.export_progress_seconds
                    log.info(
                        "export progress",
                        extra={
                            "json_fields": {
                                "attempt": report.attempts,
                                "bytes": counted["bytes"],
                                "events": counted["events"],
                                "elapsed": round(deadline.elapsed(), 1),
                            }
                        },
                    )
        finally:
            if pool is not None:
                # Blocks handed out were read in this attempt, cut or not: count them.
                try:
                    for done in pool.ready(wait=True):
                        fold(done.batch, done.terminated, done.stats)
                finally:
                    pool.close()
        terminated = fold.terminated
        stats.bad_lines += splitter.dropped
        if deadline.expired():
            raise _AttemptFailed(deadline.cause, _ended(deadline) + " while reading the body")
        if terminated:
            raise _AttemptFailed(
                "terminated_early", "Mixpanel ended the body early ('terminated early')"
            )
        if splitter.unfinished:
            raise _AttemptFailed(
                "truncated", "the body ended inside a line: it was cut with no error"
            )
        if _gzip_cut(response):
            raise _AttemptFailed(
                "truncated", "the gzip stream stopped before its end marker: the body was cut"
            )
        if _framing(response) == "close":
            # Chunked or length framing proves the end; a close-delimited body cut exactly on a
            # line boundary would look whole, so say that its end was checked from data only.
            report.warnings.append(UNFRAMED_WARNING)

    def _refuse_or_fail(self, response: requests.Response, report: ExportReport) -> None:
        status = response.status_code
        body = b""
        try:
            body = response.raw.read(ERROR_BODY_BYTES, decode_content=True) or b""
        except (OSError, requests.RequestException, urllib3.exceptions.HTTPError):
            body = b""  # the status alone decides; the body is only a detail
        text = redact(upstream_error_text(body), self.redactions)
        if status in RETRYABLE_STATUS or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            kind = "http_429" if status == 429 else "http_5xx"
            raise _AttemptFailed(
                kind, f"Mixpanel answered {status}: {text}", status=status, retry_after=retry_after
            )
        hint = REFUSAL_HINTS.get(status, "check the query and the credentials")
        report.errors.append(
            Failure(
                report.attempts,
                f"http_{status}",
                f"Mixpanel answered {status}: {text}",
                status=status,
                next="stop: not retryable",
            )
        )
        raise UpstreamRefused(
            f"Mixpanel refused the export query with {status} {response.reason}: "
            f"{text.rstrip('.')}. "
            f"Retrying cannot fix this: {hint}.",
            upstream_status=status,
            upstream_error=text,
            export=report.as_dict(),
        )

    # -- after a failed attempt -----------------------------------------------------------

    def _after_failure(
        self, failed: _AttemptFailed, policy: RetryPolicy, report: ExportReport, deadline: Deadline
    ) -> RetryPolicy | None:
        counted = getattr(failed, "bytes_events", {"bytes": 0, "events": 0})
        wait: float | None = None
        stop_reason = ""
        attempt = report.attempts
        if not failed.retryable:
            stop_reason = "not retryable"
        elif failed.kind in ("deadline", "shutdown") or deadline.expired():
            stop_reason = _stop_reason(deadline)
        elif attempt >= policy.max_attempts:
            stop_reason = f"EXPORT_MAX_ATTEMPTS={policy.max_attempts} reached"
        else:
            wait = policy.backoff(self.rng, failed.retry_after)
            if wait >= deadline.remaining():
                stop_reason = (
                    f"the next wait ({wait:.1f} s) would cross the deadline "
                    f"({deadline.remaining():.1f} s left)"
                )
                wait = None
        failure = Failure(
            attempt,
            failed.kind,
            failed.message,
            bytes=counted["bytes"],
            events=counted["events"],
            status=failed.status,
            wait=wait,
            next="retry" if wait is not None else f"stop: {stop_reason}",
        )
        report.errors.append(failure)
        fields = failure.as_dict()
        # `message` is the log entry's own text in Cloud Logging: the failure's goes in `error`.
        fields["error"] = fields.pop("message")
        log.warning(
            "export attempt %d failed: %s", attempt, failed.kind, extra={"json_fields": fields}
        )
        if wait is None:
            return None
        self.sleep(wait)
        return policy.increment(failure)

    def _describe(self, exc: BaseException, deadline: Deadline) -> str:
        if deadline.expired():
            return _ended(deadline)
        text = f"{type(exc).__name__}: {exc}"
        return redact(text, self.redactions)[:300]


def _secret_forms(settings: Settings) -> list[str]:
    """The secrets, and the Basic credentials that carry them: a proxy's error page may echo
    the Authorization header, which plain redaction would miss."""
    forms = settings.secrets()
    try:
        user, password = request_auth(settings)
    except ValueError:
        return forms
    return [*forms, base64.b64encode(f"{user}:{password}".encode()).decode()]


def _ended(deadline: Deadline) -> str:
    if deadline.drained:
        return "the service is shutting down (SIGTERM): the read was cut short to answer in time"
    return "the total deadline passed (EXPORT_DEADLINE_SECONDS)"


def _stop_reason(deadline: Deadline) -> str:
    return "shutting down" if deadline.drained else "deadline reached"


UNFRAMED_WARNING = (
    "the body had neither chunked nor Content-Length framing: its end was checked from the "
    "data only (last line whole, no 'terminated early')"
)


def _gzip_cut(response: requests.Response) -> bool:
    """True if a gzip body ended before the gzip trailer.

    A gzip stream cut inside valid framing raises nothing and may even end on a whole line;
    only the decompressor knows it never saw the end. urllib3 keeps it on the response.
    """
    if "gzip" not in response.headers.get("Content-Encoding", "").lower():
        return False
    decoder = getattr(response.raw, "_decoder", None)
    zobj = getattr(decoder, "_obj", None)
    return zobj is not None and not getattr(zobj, "eof", True)


def _framing(response: requests.Response) -> str:
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return "chunked"
    return "length" if "Content-Length" in response.headers else "close"


def _classify(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection_broken"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "content_decoding"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower():
        # A read timeout inside the body surfaces as ConnectionError("Read timed out."), not
        # Timeout; both are the same failure to us.
        return "read_timeout"
    if isinstance(exc, requests.exceptions.ConnectionError | OSError):
        return "connection_error"
    return "request_error"


def _duplicates(sink: Aggregator) -> int:
    counter = getattr(sink, "duplicates", None)
    return int(counter()) if callable(counter) else 0
