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


# Every secret this process knows, in one list that every redacting filter and stream reads:
# a secret learnt after start-up (a webhook URL from the rules file) is then redacted from
# gunicorn's lines as well as the service's.
_SECRETS: list[str] = []


def known_secrets(more: Iterable[str] = ()) -> list[str]:
    """The process's secrets (the list itself, which only grows), with `more` added."""
    _SECRETS.extend(s for s in more if s and len(s) >= 4 and s not in _SECRETS)
    return _SECRETS


class RedactingFilter(logging.Filter):
    """Last line of defence: no configured secret leaves the process in a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = known_secrets(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        for extra in ("json_fields", "http_request"):  # http_request: an access entry's URL
            fields = getattr(record, extra, None)
            if fields:
                cleaned = redact(json.dumps(fields, default=str), self.secrets)
                setattr(record, extra, json.loads(cleaned))
        if record.exc_info:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
            record.exc_info = None
        return True


def redact_first(handler: logging.Handler, secrets: Iterable[str]) -> None:
    """Make redaction `handler`'s first filter: Cloud Logging's own filter copies a record's
    `http_request` aside before later filters see it."""
    handler.filters.insert(0, RedactingFilter(secrets))


def protect(secrets: Iterable[str]) -> None:
    """Redact secrets learnt after start-up too (webhook URLs and keys from the rules file),
    wherever this process logs: the service's entries, gunicorn's, and stderr."""
    known_secrets(secrets)


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
    redact_first(handler, settings.secrets())
    handler._collector = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(settings.log_level)
    logger.propagate = False
    return handler
