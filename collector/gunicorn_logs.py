"""gunicorn's own log lines written as the service's are: structured JSON entries when the
service logs JSON (LOG_FORMAT=json, or K_SERVICE set: Cloud Run), gunicorn's text otherwise,
and configured secrets redacted either way.

gunicorn writes through two loggers: `gunicorn.error` (start, workers booting and exiting,
errors with their tracebacks) and `gunicorn.access` (one line per request, when an access log
is asked for, e.g. GUNICORN_CMD_ARGS=--access-logfile=-). `GunicornLogger` gives each the
service's handler on the stream gunicorn chose, so that on Cloud Run a worker that fails to
boot is an ERROR entry with its traceback, not lines of text without a severity. A worker that
fails also prints the error bare to stderr, outside any logger: `capture_stderr` makes such
lines entries too (and redacts them).
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import traceback
from typing import Any, TextIO

from gunicorn import glogging

from collector.logs import known_secrets, redact, redact_first
from collector.startup import log_settings


class GunicornLogger(glogging.Logger):
    """gunicorn's logger (`logger_class`), its handlers made the service's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        settings = log_settings()
        for log in (self.error_log, self.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                stream = getattr(handler, "stream", None)
                if isinstance(stream, _Lines):  # set up again (a reload) after capture_stderr
                    handler.setStream(stream.stream)  # type: ignore[attr-defined]
                if settings.log_format == "json" and type(handler) is logging.StreamHandler:
                    # Loaded only for JSON, as the service's own handler is (collector/logs.py).
                    from google.cloud.logging.handlers import StructuredLogHandler

                    structured = StructuredLogHandler(
                        project_id=settings.google_cloud_project, stream=handler.stream
                    )
                    structured._gunicorn = True  # type: ignore[attr-defined]
                    log.removeHandler(handler)
                    log.addHandler(structured)
                    handler = structured
                redact_first(handler, settings.secrets())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One entry per request, at the severity Cloud Run's request log gives its status,
        with the request as `httpRequest`."""
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        status = int(str(atoms["s"])) if str(atoms["s"]).isdigit() else 0
        level = (
            logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        )
        request = {
            "requestMethod": environ.get("REQUEST_METHOD"),
            "requestUrl": environ.get("RAW_URI"),
            "status": status,
            "responseSize": str(getattr(resp, "sent", 0) or 0),
            "userAgent": environ.get("HTTP_USER_AGENT"),
            "remoteIp": environ.get("REMOTE_ADDR"),
            "protocol": environ.get("SERVER_PROTOCOL"),
            "latency": f"{request_time.total_seconds():.6f}s",
        }
        extra = {"http_request": {k: v for k, v in request.items() if v is not None}}
        try:
            self.access_log.log(level, self.cfg.access_log_format, atoms, extra=extra)
        except Exception:  # as gunicorn's own: a bad access_log_format is an error entry
            self.error(traceback.format_exc())


class _Lines(io.TextIOBase):
    """A text stream that passes on whole lines: to a logger at ERROR (JSON logs), or to the
    stream it replaces with secrets redacted (text logs)."""

    def __init__(self, stream: TextIO, log: logging.Logger | None, secrets: list[str]) -> None:
        self.stream, self.log, self.secrets = stream, log, secrets
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.stream.errors

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._pending = self._pending, ""
        if line:
            self._emit(line)
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def _emit(self, line: str) -> None:
        if self.log is not None:
            if line.strip():
                self.log.error("%s", line)
        else:
            self.stream.write(redact(line, self.secrets) + "\n")


def capture_stderr(log: logging.Logger) -> None:
    """Route what is printed to stderr (by gunicorn, outside its loggers) through `log` when
    the logs are JSON; else only redact it. For the arbiter, before it starts any worker."""
    if isinstance(sys.stderr, _Lines):
        return
    settings = log_settings()
    to_log = log if settings.log_format == "json" else None
    sys.stderr = _Lines(sys.stderr, to_log, known_secrets(settings.secrets()))
