"""The WSGI application gunicorn serves: `collector.wsgi:app` (and `main:app`)."""

from collector.app import create_app
from collector.errors import ConfigError
from collector.startup import EXIT_CONFIG

try:
    app = create_app()
except ConfigError:
    # Already logged as one CRITICAL entry that says what to fix; a traceback would only repeat
    # it. This exit status makes gunicorn stop instead of starting another worker.
    raise SystemExit(EXIT_CONFIG) from None
