"""Logging: structured JSON for Cloud Logging on Cloud Run, readable text on a laptop.

google-cloud-logging's StructuredLogHandler writes one JSON object per line with `severity`,
`message`, the trace of the Flask request (`traceparent` / `X-Cloud-Trace-Context`) and our
`json_fields`; it needs no credentials and no network. Every handler redacts configured secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from collector.config import Settings
from collector.log_text import TextFormatter

REDACTED = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Last line of defence: no configured secret leaves the process in a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        fields = getattr(record, "json_fields", None)
        if fields:
            cleaned = redact(json.dumps(fields, default=str), self.secrets)
            record.json_fields = json.loads(cleaned)
        if record.exc_info:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
            record.exc_info = None
        return True


def protect(secrets: Iterable[str]) -> None:
    """Redact secrets learnt after start-up too (webhook URLs and keys from the rules file)."""
    fresh = [s for s in secrets if s and len(s) >= 4]
    for handler in logging.getLogger("collector").handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                f.secrets.extend(s for s in fresh if s not in f.secrets)


def setup_logging(settings: Settings, stream: Any = None) -> logging.Handler:
    """Install one handler on the `collector` logger (idempotent: replaces a previous one)."""
    logger = logging.getLogger("collector")
    for old in [h for h in logger.handlers if getattr(h, "_collector", False)]:
        logger.removeHandler(old)
    handler: logging.Handler
    if settings.log_format == "json":
        # Loaded only for JSON: the library is a large share of a process's start-up, and
        # text logs (a laptop, a command) do not need it.
        from google.cloud.logging.handlers import StructuredLogHandler

        # Cloud Run ingests stdout; the handler would default to stderr.
        handler = StructuredLogHandler(
            project_id=settings.google_cloud_project, stream=stream or sys.stdout
        )
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(TextFormatter())
    handler.addFilter(RedactingFilter(settings.secrets()))
    handler._collector = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(settings.log_level)
    logger.propagate = False
    return handler
