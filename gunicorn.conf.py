"""gunicorn settings for Cloud Run (read automatically from the working directory).

The worker timeout is off: it is what killed the predecessor (the arbiter aborts a worker that
is busy longer than `timeout`, mid-stream). Every request carries its own deadline instead
(EXPORT_DEADLINE_SECONDS), enforced by the reader.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 0
# Cloud Run sends SIGTERM and kills 10 s later: drain in less than that.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "8"))
keepalive = 5
# Cloud Run writes its own request log; gunicorn's errors still go to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn's control socket (for `gunicornc`) lives under $HOME/.gunicorn; the image's user has
# no home to write to, and nothing on Cloud Run would connect to it.
control_socket_disable = True


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    # On SIGTERM, reads in flight end within seconds and still answer (collector/shutdown.py);
    # a server hook, not a handler in the WSGI module, so gunicorn's own drain stays intact.
    from collector.shutdown import install

    install(worker)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from collector.shutdown import report

    report(worker)
