"""Why an attempt ended before proving the end of its body: one small class per meaning.

The retry policy asks only two things of a failure: is it `retryable`, and does the server ask
for a wait (`retry_after`). `classify` turns what requests and urllib3 raise into these.
"""

from __future__ import annotations

import requests


class AttemptFailed(Exception):
    """One attempt (one Export query) ended early; `kind` names the failure in the answer."""

    kind = "attempt_failed"
    retryable = True
    stop_reason = "not retryable"  # said when a failure that is not retryable ends the run

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.bytes = 0  # how far the attempt got, filled in by the attempt
        self.events = 0


class ConnectionBroken(AttemptFailed):
    kind = "connection_broken"


class ConnectionFailed(AttemptFailed):
    kind = "connection_error"


class ConnectTimeout(AttemptFailed):
    kind = "connect_timeout"


class ReadTimeout(AttemptFailed):
    kind = "read_timeout"


class ContentDecoding(AttemptFailed):
    kind = "content_decoding"


class ServerError(AttemptFailed):
    kind = "http_5xx"


class RateLimited(AttemptFailed):
    kind = "http_429"


class Truncated(AttemptFailed):
    """The body ended, with no error, where its data shows it was cut."""

    kind = "truncated"


class TerminatedEarly(AttemptFailed):
    """Mixpanel's own early-end marker (`terminated early`) was in the body."""

    kind = "terminated_early"


class NotExportBody(AttemptFailed):
    """A 200 whose body is not JSON lines (an HTML proxy or captive-portal page, garbage)."""

    kind = "not_export_body"


class DeadlineReached(AttemptFailed):
    kind = "deadline"
    retryable = False
    stop_reason = "deadline reached"


class ShuttingDown(AttemptFailed):
    kind = "shutdown"
    retryable = False
    stop_reason = "shutting down"


class RequestFailed(AttemptFailed):
    """The request could not even be made (a bad URL, say): retrying cannot help."""

    kind = "request_error"
    retryable = False


class Refused(AttemptFailed):
    """Mixpanel answered 4xx (not 429): the query or the credentials are wrong."""

    retryable = False

    def __init__(self, message: str, *, status: int, reason: str, text: str, hint: str) -> None:
        super().__init__(message, status=status)
        self.reason = reason  # the HTTP reason phrase
        self.text = text  # Mixpanel's error text, redacted
        self.hint = hint  # which setting or parameter to check

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"http_{self.status}"


def classify(exc: BaseException) -> AttemptFailed:
    """The failure a requests or socket error stands for."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return ConnectionBroken(text)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return ContentDecoding(text)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectTimeout(text)
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower():
        # A read timeout inside the body surfaces as ConnectionError("Read timed out."), not
        # Timeout; both are the same failure to us.
        return ReadTimeout(text)
    if isinstance(exc, requests.exceptions.ConnectionError | OSError):
        return ConnectionFailed(text)
    return RequestFailed(text)
