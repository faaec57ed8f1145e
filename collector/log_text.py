"""Log entries as readable text lines, for a terminal (LOG_FORMAT=text).

JSON entries keep every field for Cloud Logging; a person reading a terminal wants one short
line per request instead: the method and path, the status and time, the answer, and only the
export figures that say how it was obtained. The start-up entry is the exception: its
configuration is shown whole, because that is what it is for.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import has_request_context, request

SUMMARY_CHARS = 300  # a request's line after its timestamp, level and logger
VALUE_CHARS = 120  # one field of any other entry
PATH_CHARS = 100
SUMMARY_EXPORT = ("attempts", "events", "duplicates", "bad_lines", "unreadable", "bytes")


class TextFormatter(logging.Formatter):
    """`time level logger: [METHOD path] message fields`, one line per entry."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields: dict[str, Any] | None = getattr(record, "json_fields", None)
        if not fields:
            return line
        head, _, tail = line.partition("\n")  # a traceback, if any, stays below
        if fields.get("summary"):
            head = _summary(head, record, fields)
        elif fields.get("startup"):
            head += " " + _pairs(fields.get("config", {}), limit=None)
        else:
            head += " " + _pairs(fields, limit=VALUE_CHARS)
        return head + ("\n" + tail if tail else "")


def _summary(head: str, record: logging.LogRecord, fields: dict[str, Any]) -> str:
    """A request's summary: where, how it ended, and the figures that matter."""
    prefix, _, message = head.partition(f"{record.name}: ")
    parts = [f"{_request()}{fields.get('status')} in {fields.get('seconds')}s: {message}"]
    export = fields.get("export")
    if isinstance(export, dict):
        parts += [f"{k}={export[k]}" for k in SUMMARY_EXPORT if k in export]
        kinds = [e.get("kind", "?") for e in export.get("errors", []) if isinstance(e, dict)]
        if kinds:
            parts.append("errors=" + ",".join(kinds))
    for key in ("queries", "states", "notifications", "note", "warnings"):
        if fields.get(key):
            parts.append(f"{key}={_short(fields[key], 80)}")
    text = " ".join(parts)
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1] + "…"
    return f"{prefix}{record.name}: {text}"


def _request() -> str:
    if not has_request_context():
        return ""
    path = request.path
    if request.query_string:
        path += "?" + request.query_string.decode("utf-8", "replace")
    return f"{request.method} {_short(path, PATH_CHARS)} -> "


def _pairs(fields: dict[str, Any], limit: int | None) -> str:
    return " ".join(f"{k}={_short(v, limit)}" for k, v in fields.items())


def _short(value: Any, limit: int | None) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ",".join(map(str, value)) or "[]"
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
