"""`Fault`: how the next export query misbehaves. Values only; the server acts on them.

`after_bytes` counts body bytes written to the socket (after compression when the body is gzip),
with three approximations: `terminated_early` counts uncompressed bytes (the cut must land inside
a record), an uncompressed `cut_silent` moves a cut that falls on a line boundary a byte into the
record (else the body would look whole), and `gzip_corrupt` turns to garbage at the first
deflate block boundary after it.
When the body is shorter than `after_bytes`, reset / cut_chunked / stall still hit before the
final chunk (the client always sees them), terminated_early cuts the last record, and
cut_length / cut_silent / trickle deliver the whole body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# Mixpanel answers most errors with JSON carrying an `error` key; 5xx come from proxies as text.
_ERRORS = {
    400: "Bad request",
    401: "Invalid credentials",
    402: "Your plan does not allow API calls. Upgrade your plan to use this endpoint.",
    403: "You do not have permission to access this project.",
    404: "Not found",
    429: "Query rate limit exceeded",
}
_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


_UTF8_FIELDS = ("event", "distinct_id", "$insert_id")
FRAMINGS = ("chunked", "length", "close")


def _framing(value: Any) -> str:
    if value not in FRAMINGS:
        raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, got {value!r}")
    return str(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def _seconds(name: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Fault:
    kind: str
    after_bytes: int = 0
    seconds: float = 0.0
    interval: float = 0.0
    status_code: int = 0  # not `status`: that name is the constructor
    retry_after: int | str | None = None
    body: str | None = None
    rate: float = 0.0
    out_of_window: bool = False
    other_events: bool = False
    marker: str = "terminated early"
    newline: bool = True
    alone: bool = False
    content_type: str = ""
    framing: str = "chunked"
    field: str = ""
    count: int = 0

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def none(cls) -> Fault:
        """Serve normally; lets a script say "this attempt is fine"."""
        return cls("none")

    @classmethod
    def reset(cls, after_bytes: int) -> Fault:
        """Abort with a TCP RST after `after_bytes` of chunked body."""
        return cls("reset", after_bytes=_count("after_bytes", after_bytes))

    @classmethod
    def cut_chunked(cls, after_bytes: int) -> Fault:
        """Close cleanly without the terminating chunk."""
        return cls("cut_chunked", after_bytes=_count("after_bytes", after_bytes))

    @classmethod
    def cut_length(cls, after_bytes: int) -> Fault:
        """Announce the full Content-Length, send fewer bytes, close."""
        return cls("cut_length", after_bytes=_count("after_bytes", after_bytes))

    @classmethod
    def cut_silent(cls, after_bytes: int) -> Fault:
        """Close-delimited body (no length, no chunks) cut short: the client sees no error."""
        return cls("cut_silent", after_bytes=_count("after_bytes", after_bytes))

    @classmethod
    def terminated_early(
        cls,
        after_bytes: int,
        marker: str = "terminated early",
        newline: bool = True,
        alone: bool = False,
    ) -> Fault:
        """Cut a record near `after_bytes` (uncompressed), add the marker line, end properly.

        The marker has been seen as `terminated early` and `export terminated early`, with or
        without a trailing newline, and `alone` as the whole body.
        """
        if not isinstance(marker, str) or not marker.strip() or "\n" in marker:
            raise ValueError("marker must be one line of text")
        return cls(
            "terminated_early",
            after_bytes=_count("after_bytes", after_bytes),
            marker=marker,
            newline=bool(newline),
            alone=bool(alone),
        )

    @classmethod
    def html(cls, framing: str = "chunked") -> Fault:
        """A 200 with a captive-portal HTML page (text/html) instead of an export body."""
        return cls("html", framing=_framing(framing), content_type="text/html; charset=utf-8")

    @classmethod
    def raw_body(
        cls,
        body: str,
        content_type: str = "text/plain; charset=utf-8",
        framing: str = "chunked",
    ) -> Fault:
        """A 200 with exactly this body (a real export body, garbage), whatever was asked.

        The text is written as UTF-8 with surrogate escapes, so "\udcff" sends the raw byte
        0xFF (invalid UTF-8) and survives the JSON control endpoint.
        """
        if not isinstance(body, str) or not isinstance(content_type, str):
            raise ValueError("body and content_type must be strings")
        return cls("raw_body", body=body, content_type=content_type, framing=_framing(framing))

    @classmethod
    def invalid_utf8(cls, count: int = 1, field: str = "distinct_id") -> Fault:
        """A normal 200 where `count` lines (never the last) carry a raw 0xFF byte inside the
        string of `field` (`event`, `distinct_id` or `$insert_id`): unreadable lines."""
        if field not in _UTF8_FIELDS:
            raise ValueError(f"field must be one of {', '.join(_UTF8_FIELDS)}")
        return cls("invalid_utf8", count=_count("count", count), field=field)

    @classmethod
    def unframed(cls, after_bytes: int = 0) -> Fault:
        """A close-delimited body (no chunks, no Content-Length), cut exactly on a line boundary
        at the first one after `after_bytes` (0: the whole body): it looks whole to any reader.
        A gzip body is cut after `after_bytes` compressed bytes, as a proxy would cut it."""
        return cls("unframed", after_bytes=_count("after_bytes", after_bytes))

    @classmethod
    def stall(cls, after_bytes: int, seconds: float = 600) -> Fault:
        """Go silent for `seconds` mid-body, then close without finishing."""
        return cls(
            "stall",
            after_bytes=_count("after_bytes", after_bytes),
            seconds=_seconds("seconds", seconds),
        )

    @classmethod
    def trickle(cls, after_bytes: int, interval: float = 0.5) -> Fault:
        """One byte every `interval` seconds after `after_bytes`: read timeouts never fire."""
        return cls(
            "trickle",
            after_bytes=_count("after_bytes", after_bytes),
            interval=_seconds("interval", interval, positive=True),
        )

    @classmethod
    def stall_headers(cls, seconds: float) -> Fault:
        """Read the request, send nothing for `seconds`, close."""
        return cls("stall_headers", seconds=_seconds("seconds", seconds))

    @classmethod
    def status(
        cls, status: int, retry_after: int | str | None = None, body: str | None = None
    ) -> Fault:
        """Answer with this status; Mixpanel-style default body; optional Retry-After."""
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"status must be an HTTP status 200-599, got {status!r}")
        if retry_after is not None and not isinstance(retry_after, int | str):
            raise ValueError(f"retry_after must be int, str or None, got {retry_after!r}")
        if body is not None and not isinstance(body, str):
            raise ValueError("body must be a string")
        return cls("status", status_code=status, retry_after=retry_after, body=body)

    @classmethod
    def gzip_corrupt(cls, after_bytes: int) -> Fault:
        """Gzip body (whatever was asked) that turns to garbage after `after_bytes`."""
        return cls("gzip_corrupt", after_bytes=_count("after_bytes", after_bytes))

    @classmethod
    def duplicate_lines(cls, rate: float) -> Fault:
        """A normal 200 that also repeats this fraction of keyed lines (truth unchanged)."""
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"rate must be within [0, 1], got {rate!r}")
        return cls("duplicate_lines", rate=float(rate))

    @classmethod
    def leak(cls, out_of_window: bool = True, other_events: bool = True) -> Fault:
        """A normal 200 that ignores `where` and/or `event` (truth unchanged)."""
        return cls("leak", out_of_window=bool(out_of_window), other_events=bool(other_events))

    # -- (de)serialisation for the control endpoint ---------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """`{"kind": "reset", "after_bytes": 20000}` -> Fault; ValueError on anything unknown."""
        if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str):
            raise ValueError('a fault is an object with a string "kind"')
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(KINDS))}")
        params = {k: v for k, v in data.items() if k != "kind"}
        try:
            return getattr(cls, kind)(**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for {kind}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        defaults = Fault(self.kind)
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "kind" and value != getattr(defaults, f.name):
                if self.kind == "html" and f.name == "content_type":
                    continue
                out["status" if f.name == "status_code" else f.name] = value
        return out

    def response(self, request_target: str) -> tuple[bytes, str]:
        """Body and content type of a `status` fault."""
        if self.body is not None:
            try:
                json.loads(self.body)
                kind = "application/json"
            except ValueError:
                kind = "text/plain; charset=utf-8"
            return self.body.encode(), kind
        code = self.status_code
        if code >= 500:
            return _TEXT.get(code, "Internal Server Error").encode(), "text/plain; charset=utf-8"
        error: dict[str, str] = {"error": _ERRORS.get(code, "Request failed")}
        if code == 400:
            error = {"request": request_target, **error}
        return json.dumps(error).encode(), "application/json"


KINDS = frozenset(
    {
        "none",
        "reset",
        "cut_chunked",
        "cut_length",
        "cut_silent",
        "terminated_early",
        "stall",
        "trickle",
        "stall_headers",
        "status",
        "gzip_corrupt",
        "duplicate_lines",
        "leak",
        "html",
        "raw_body",
        "invalid_utf8",
        "unframed",
    }
)
