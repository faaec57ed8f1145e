"""gunicorn settings, for Cloud Run and for a laptop (`gunicorn.conf.py` at the root and
`collector serve` both read this module).

The worker timeout is off: it is what killed the predecessor (the arbiter aborts a worker that
is busy longer than `timeout`, mid-stream). Every request carries its own deadline instead
(EXPORT_DEADLINE_SECONDS), enforced by the reader.

The bind address is loopback unless the service runs on Cloud Run (K_SERVICE is set, and the
platform's front end must reach it) or GUNICORN_HOST says otherwise: on a laptop, a service
that reads a Mixpanel project should not listen on every network it joins.
"""

import os


def _whole(name: str, default: int, least: int) -> int:
    """A whole-number setting; a bad one stops gunicorn with one entry naming it (exit 3, as a
    bad setting of the service does)."""
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        value = least - 1
    if value < least:
        # One CRITICAL entry, as a bad setting of the service is: JSON on Cloud Run.
        from collector.startup import EXIT_CONFIG, refuse

        refuse(f"{name}={raw!r} must be a whole number, at least {least}")
        raise SystemExit(EXIT_CONFIG)
    return value


_ON_CLOUD_RUN = bool(os.environ.get("K_SERVICE"))
_HOST = os.environ.get("GUNICORN_HOST", "").strip() or ("0.0.0.0" if _ON_CLOUD_RUN else "127.0.0.1")
_PORT = os.environ.get("PORT", "").strip() or "8080"

bind = f"[{_HOST}]:{_PORT}" if ":" in _HOST and not _HOST.startswith("[") else f"{_HOST}:{_PORT}"
worker_class = "gthread"
workers = _whole("GUNICORN_WORKERS", 1, 1)
threads = _whole("GUNICORN_THREADS", 8, 1)
timeout = 0
# Cloud Run sends SIGTERM and kills 10 s later: drain in less than that.
graceful_timeout = _whole("GUNICORN_GRACEFUL_TIMEOUT", 8, 0)
keepalive = 5
# Cloud Run writes its own request log; gunicorn's errors still go to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn's own lines as the service's: JSON entries with a severity on Cloud Run, its text on
# a laptop; secrets redacted either way. An access log, if asked for, is JSON there too.
logger_class = "collector.gunicorn_logs.GunicornLogger"
# gunicorn's control socket (for `gunicornc`) lives under $HOME/.gunicorn; the image's user has
# no home to write to, and nothing on Cloud Run would connect to it.
control_socket_disable = True


def on_starting(server):  # type: ignore[no-untyped-def]
    # The arbiter checks the configuration once, before any worker: a bad setting is one
    # entry that says what to fix, not a traceback and a refusal per worker.
    from collector.gunicorn_logs import capture_stderr
    from collector.startup import validate_or_exit

    validate_or_exit()
    # What gunicorn prints bare to stderr (a worker's boot error) becomes an entry too.
    capture_stderr(server.log.error_log)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    # On SIGTERM, reads in flight end within seconds and still answer (collector/shutdown.py);
    # a server hook, not a handler in the WSGI module, so gunicorn's own drain stays intact.
    from collector.shutdown import install

    install(worker)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from collector.shutdown import report

    report(worker)
