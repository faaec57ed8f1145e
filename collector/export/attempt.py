"""One attempt: one Export query, its body streamed into the sink, and its end checked.

An attempt proves the end of its body or fails. The end is proven when the stream ended
without an error, the last line is an event, no early-end marker was seen, and the framing
(chunked, Content-Length, or the gzip trailer) shows the server sent everything it meant to. A
body with none of these framings is read, but its end cannot be proven: the attempt says so
(`proven` false) rather than fail, since another attempt could not prove it either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import requests
import urllib3

from collector.config import Settings
from collector.export.batch import Batch
from collector.export.deadline import Deadline
from collector.export.decode import (
    BodyEnd,
    EventFilter,
    LineSplitter,
    LineStats,
    first_line_kind,
)
from collector.export.failures import (
    AttemptFailed,
    DeadlineReached,
    NotExportBody,
    RateLimited,
    Refused,
    ServerError,
    ShuttingDown,
    TerminatedEarly,
    Truncated,
    classify,
)
from collector.export.query import refusal_hint, request_auth, request_headers, upstream_error_text
from collector.export.retry import parse_retry_after, retryable_status
from collector.export.zone_probe import OffsetProbe
from collector.logs import redact

log = logging.getLogger("collector.export")

# Bytes asked of the stream per read. Plain, 2 MiB read /events' 1M-event benchmark body in
# 1.27 s against 1.48 s with 1 MiB (the same with 4 MiB, 1.43 s with 8 MiB): half as many reads
# and batches, each of which costs as well as its bytes (docs/benchmarks.md). An encoded (gzip)
# body gains nothing from it, as inflating bounds it, and a bigger read holds more: the inflated
# piece and the compressed bytes urllib3 keeps for the next one. It keeps 1 MiB reads.
CHUNK_BYTES = 2 * 1024 * 1024
ENCODED_CHUNK_BYTES = 1024 * 1024
ERROR_BODY_BYTES = 4096
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)


@dataclass(frozen=True)
class Progress:
    """How far a long read has come, every EXPORT_PROGRESS_SECONDS: the attempt's rows and
    bytes so far, and the seconds since its run began."""

    attempt: int
    rows: int
    bytes: int
    seconds: float


def log_progress(progress: Progress) -> None:
    """The reader's own progress entry, when its caller has no other use for the figures."""
    log.info(
        "export progress",
        extra={
            "json_fields": {
                "attempt": progress.attempt,
                "bytes": progress.bytes,
                "events": progress.rows,
                "elapsed": round(progress.seconds, 1),
            }
        },
    )


@dataclass
class AttemptResult:
    """An attempt that read its body to the end."""

    bytes: int
    events: int
    proven: bool  # the framing shows the body is whole
    unreadable: int  # lines of this attempt that could not be read


class Attempt:
    """Runs attempts of one read: the request is the same each time, only the sink fills."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session,
        event_filter: EventFilter,
        sink_add: Callable[[Batch], None],
        stats: LineStats,
        deadline: Deadline,
        redactions: list[str],
        probe: OffsetProbe | None = None,
        progress: Callable[[Progress], None] = log_progress,
    ) -> None:
        self.settings = settings
        self.session = session
        self.filter = event_filter
        self.sink_add = sink_add
        self.stats = stats
        self.deadline = deadline
        self.redactions = redactions
        self.probe = probe
        self.progress = progress

    def run(self, params: dict[str, str], number: int) -> AttemptResult:
        """Attempt `number`; raises an `AttemptFailed` (with its bytes and events) if it fails."""
        counted = AttemptResult(bytes=0, events=0, proven=False, unreadable=0)
        try:
            return self._run(params, number, counted)
        except AttemptFailed as exc:
            failed = exc
            if self.deadline.expired() and failed.retryable:
                failed = self._deadline_failure(" while reading the body")
        except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as exc:
            if self.deadline.expired():
                failed = self._deadline_failure("")
            else:
                failed = classify(exc)
                failed.message = redact(failed.message, self.redactions)[:300]
        failed.bytes, failed.events = counted.bytes, counted.events
        raise failed

    def _run(self, params: dict[str, str], number: int, counted: AttemptResult) -> AttemptResult:
        s = self.settings
        remaining = max(0.05, self.deadline.remaining())
        response = self.session.get(
            s.export_url,
            params=params,
            auth=request_auth(s),
            headers=request_headers(s),
            stream=True,
            timeout=(
                min(s.export_connect_timeout_seconds, remaining),
                min(s.export_read_timeout_seconds, remaining),
            ),
        )
        with response:
            if response.status_code != 200:
                raise self._status_failure(response)
            if "html" in response.headers.get("Content-Type", "").lower():
                raise NotExportBody(
                    "Mixpanel's address answered 200 with an HTML page"
                    f"{self._title(response)}, not an export body: a proxy or captive portal "
                    "is in the way; check MIXPANEL_EXPORT_URL and the network path"
                )
            end = self._stream(response, number, counted)
        return self._check_end(response, end, counted)

    # -- the body -------------------------------------------------------------------------------

    def _stream(self, response: requests.Response, number: int, counted: AttemptResult) -> BodyEnd:
        splitter = LineSplitter()
        end = BodyEnd()
        every = self.settings.export_progress_seconds
        next_progress = self.deadline.elapsed() + every
        size = ENCODED_CHUNK_BYTES if _encoded(response) else CHUNK_BYTES
        for chunk in response.iter_content(size):
            counted.bytes += len(chunk)
            # A chunk gives the line it finishes and the lines it holds: one batch for the sink,
            # which pays per batch as well as per row.
            self._add(Batch.join([self._block(b, end) for b in splitter.feed(chunk)]), counted)
            if self.deadline.elapsed() >= next_progress:
                next_progress += every
                elapsed = self.deadline.elapsed()
                self.progress(Progress(number, counted.events, counted.bytes, elapsed))
        self.stats.bad_lines += splitter.dropped
        self.stats.unreadable += splitter.dropped
        end.unreadable += splitter.dropped
        if splitter.dropping:
            raise Truncated("the body ended inside an over-long line: it was cut")
        tail = splitter.tail()
        if tail:
            self._tail(tail, end, counted)
        return end

    def _block(self, block: bytes | memoryview, end: BodyEnd) -> Batch:
        if not end.started and first_line_kind(block) == "other":
            raise NotExportBody(
                "the body is not JSON lines (its first line is not a JSON object): "
                f"{self._snippet(block)}; a proxy or captive portal may be in the way"
            )
        if self.probe is not None and not self.probe.full:
            self.probe.feed(block)
        return self.filter.decode_block(block, self.stats, end)

    def _add(self, batch: Batch, counted: AttemptResult) -> None:
        if len(batch):
            self.sink_add(batch)
        counted.events += len(batch)

    def _tail(self, tail: bytes, end: BodyEnd, counted: AttemptResult) -> None:
        """A last line without its newline: an event if it reads as one, else a cut."""
        kind = first_line_kind(tail)
        if kind == "marker":
            end.marker = True
        elif kind == "other" and not end.started:
            raise NotExportBody(
                f"the body is not JSON lines: {self._snippet(tail)}; a proxy or captive "
                "portal may be in the way"
            )
        else:
            # A prefix of a JSON object is never a whole one: a cut line cannot pass as an event.
            probe = BodyEnd()
            self.filter.decode_block(tail, LineStats(), probe)
            if probe.unreadable or not probe.last_ok:
                raise Truncated("the body ended inside a line: it was cut with no error")
            self._add(self._block(tail + b"\n", end), counted)

    def _check_end(
        self, response: requests.Response, end: BodyEnd, counted: AttemptResult
    ) -> AttemptResult:
        if self.deadline.expired():
            raise self._deadline_failure(" while reading the body")
        if end.marker:
            raise TerminatedEarly("Mixpanel ended the body early ('terminated early')")
        if not end.last_ok:
            raise Truncated("the last line of the body is not an event: it was cut")
        gzip_end = _gzip_end(response)
        if gzip_end is False:
            raise Truncated("the gzip stream stopped before its end marker: the body was cut")
        counted.proven = bool(gzip_end) or _framing(response) != "close"
        counted.unreadable = end.unreadable
        return counted

    # -- other answers --------------------------------------------------------------------------

    def _status_failure(self, response: requests.Response) -> AttemptFailed:
        status = response.status_code
        text = redact(upstream_error_text(self._head(response)), self.redactions)
        if retryable_status(status):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            kind = RateLimited if status == 429 else ServerError
            return kind(
                f"Mixpanel answered {status}: {text}", status=status, retry_after=retry_after
            )
        if 200 <= status < 300:
            return NotExportBody(f"Mixpanel answered {status} instead of 200 with a body")
        return Refused(
            f"Mixpanel answered {status}: {text}",
            status=status,
            reason=response.reason or "",
            text=text,
            hint=refusal_hint(status, text),
        )

    @staticmethod
    def _head(response: requests.Response) -> bytes:
        try:
            return response.raw.read(ERROR_BODY_BYTES, decode_content=True) or b""
        except (OSError, requests.RequestException, urllib3.exceptions.HTTPError):
            return b""  # the status alone decides; the body is only a detail

    def _title(self, response: requests.Response) -> str:
        found = _TITLE.search(self._head(response))
        if not found:
            return ""
        title = " ".join(found.group(1).decode("utf-8", "replace").split())[:80]
        return f" ('{redact(title, self.redactions)}')" if title else ""

    def _snippet(self, data: bytes | memoryview) -> str:
        text = bytes(data[:200]).decode("utf-8", "replace")
        return repr(redact(" ".join(text.split())[:80], self.redactions))

    def _deadline_failure(self, where: str) -> AttemptFailed:
        if self.deadline.drained:
            return ShuttingDown(
                "the service is shutting down (SIGTERM): the read was cut short to answer in time"
                + where
            )
        return DeadlineReached("the total deadline passed (EXPORT_DEADLINE_SECONDS)" + where)


def _encoded(response: requests.Response) -> bool:
    """Whether urllib3 inflates the body (gzip, or any other Content-Encoding but identity)."""
    return response.headers.get("Content-Encoding", "").strip().lower() not in ("", "identity")


def _gzip_end(response: requests.Response) -> bool | None:
    """Whether a gzip body reached the gzip trailer (None: not gzip, or nothing to inflate).

    A gzip stream cut inside valid framing raises nothing and may even end on a whole line;
    only the decompressor knows it never saw the end. The trailer (CRC and length) in turn
    proves the end of a body that has no other framing. urllib3 keeps the decompressor on the
    response.
    """
    if "gzip" not in response.headers.get("Content-Encoding", "").lower():
        return None
    decoder = getattr(response.raw, "_decoder", None)
    zobj = getattr(decoder, "_obj", None)
    if zobj is None:
        return None
    return bool(getattr(zobj, "eof", False))


def _framing(response: requests.Response) -> str:
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return "chunked"
    return "length" if "Content-Length" in response.headers else "close"
