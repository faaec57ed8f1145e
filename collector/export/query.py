"""What one Export query asks for: URL, parameters, auth and headers."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from collector.config import Settings
from collector.window import ProjectTime, Window, export_days, where_clause

USER_AGENT = "rt-mp-collector/0.1"


@dataclass(frozen=True)
class ExportQuery:
    """What one Export query asks for: a window (or several inside it) and event names.

    `ranges`, when given, are the only parts of `window` wanted: one query then serves several
    pieces of time (the slices a ledger lacks), narrowed on the server by one `where` of them
    all, and filtered on the client to exactly them.
    """

    window: Window
    events: tuple[str, ...] = ()
    ranges: tuple[Window, ...] = ()


def request_params(
    query: ExportQuery, settings: Settings, now: datetime, *, where: bool = True
) -> dict[str, str]:
    """The query string; `where=False` leaves out the server-side narrowing."""
    ptime = ProjectTime(settings.project_timezone)
    first, last = export_days(query.window, ptime, now)
    params = {"from_date": first.isoformat(), "to_date": last.isoformat()}
    if where:
        params["where"] = (
            " or ".join(f"({where_clause(w, ptime)})" for w in query.ranges)
            if len(query.ranges) > 1
            else where_clause(query.window, ptime)
        )
    if query.events:
        params["event"] = json.dumps(list(query.events))
    if settings.project_id:
        params["project_id"] = settings.project_id
    return params


def request_auth(settings: Settings) -> tuple[str, str]:
    if settings.service_account_username and settings.service_account_secret:
        return settings.service_account_username, settings.service_account_secret.reveal()
    if settings.api_secret:
        return settings.api_secret.reveal(), ""
    # Settings.from_env refuses this; a hand-built Settings must not fall back to anything.
    raise ValueError("no Mixpanel credentials configured")


def secret_forms(settings: Settings) -> list[str]:
    """The secrets, and the Basic credentials that carry them: a proxy's error page may echo
    the Authorization header, which plain redaction would miss."""
    forms = settings.secrets()
    try:
        user, password = request_auth(settings)
    except ValueError:
        return forms
    return [*forms, base64.b64encode(f"{user}:{password}".encode()).decode()]


def request_headers(settings: Settings) -> dict[str, str]:
    return {
        "Accept-Encoding": "gzip" if settings.export_gzip else "identity",
        "User-Agent": USER_AGENT,
    }


REFUSAL_HINTS = {
    400: "check the window and event parameters; 'Unable to authenticate request' means "
    "MIXPANEL_PROJECT_ID or the credentials are wrong",
    401: "check MIXPANEL_SERVICE_ACCOUNT_USERNAME / MIXPANEL_SERVICE_ACCOUNT_SECRET "
    "(or MIXPANEL_API_SECRET)",
    402: "the Mixpanel plan of this project does not include API access",
    403: "give the service account access to the project named by MIXPANEL_PROJECT_ID",
    404: "check MIXPANEL_EXPORT_URL and MIXPANEL_REGION",
}


LATER_THAN_TODAY = "cannot be later than today"
WHERE_WORDS = ("where", "expression", "datetime", "selector", "segmentation", "$time")


def refusal_hint(status: int, text: str) -> str:
    """What to check after Mixpanel refused a query with `status` and error `text`."""
    if status == 400 and LATER_THAN_TODAY in text.lower():
        return (
            "the project's day is behind UTC: a project created before 2023 exports days in "
            "its own time zone; set MIXPANEL_PROJECT_TIMEZONE to it (an IANA name such as "
            "America/Los_Angeles)"
        )
    return REFUSAL_HINTS.get(status, "check the query and the credentials")


def points_at_where(text: str) -> bool:
    """True if a 400's text blames the `where` expression (then the query can go without it)."""
    lowered = text.lower()
    return any(word in lowered for word in WHERE_WORDS)


def upstream_error_text(body: bytes) -> str:
    """Mixpanel's error text: the `error` key of a JSON body, else the text itself (bounded)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"])[:500]
    return text[:500]
