"""`GET /status`: the rules at a glance as a small read-only HTML page (the data of /rules).

No script at all: the page refreshes itself every minute with a meta tag, and its Content
Security Policy allows nothing but its own inline style, so even a value that slipped past the
escaping could not run. Every value is escaped by Jinja's autoescaping (rule names are safe by
the rules file's grammar, but a receiver's error text, kept as `last_error`, is anyone's HTML).
Links are relative, so the page also works behind `gcloud run services proxy`. Times read
`3 min ago`, with the UTC time on hover. A failure (no rules, a state store that cannot be read,
a parameter) is a page too, with the status and code of the JSON answer of /rules; a 503 page
refreshes like the page itself, so it shows the rules again once the cause is fixed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template_string

from collector import __version__
from collector.alerting.message import number
from collector.errors import CollectorError
from collector.http.errors import status_of
from collector.http.params import no_params
from collector.http.relative_time import shown, utc_text
from collector.http.rules import rules_view
from collector.http.status_page import ERROR_PAGE, PAGE

bp = Blueprint("status", __name__)
REFRESH_SECONDS = 60
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@bp.route("/status", methods=["GET"])
def status() -> Any:
    try:
        no_params("/status")
        view = rules_view()
    except CollectorError as exc:
        return _error_page(exc)
    now = current_app.extensions["collector"].now()
    rules = [_shown(r, now) for r in view["rules"]]
    html = render_template_string(
        PAGE,
        view=view,
        rules=rules,
        firing=sum(r["firing"] for r in rules),
        read_at=utc_text(now),
        version=__version__,
        refresh=REFRESH_SECONDS,
    )
    return Response(html, mimetype="text/html", headers=HEADERS)


def _error_page(exc: CollectorError) -> Response:
    code = status_of(exc)
    unavailable = code >= 500
    html = render_template_string(
        ERROR_PAGE,
        title="Rule status unavailable" if unavailable else "Rule status: bad request",
        error=exc.message,
        status=code,
        code=exc.code,
        version=__version__,
        refresh=REFRESH_SECONDS if unavailable else None,  # a bad request fails the same again
    )
    return Response(html, status=code, mimetype="text/html", headers=HEADERS)


def _shown(rule: dict[str, Any], now: Any) -> dict[str, Any]:
    value = rule["value"]
    return {
        **rule,
        "shown_value": "—" if value is None else number(value),
        "since_shown": shown(rule["since"], now),
        "checked_shown": shown(rule["checked_at"], now),
    }
