"""Authentication and parameter checks of one export query, with Mixpanel's error shapes."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from collector.simulator.config import SimConfig

MAX_LIMIT = 100_000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = r"properties\s*\[\s*[\"']\$time[\"']\s*\]"
# The one `where` form exporters use to narrow a day to a sub-day window.
_WHERE = re.compile(
    rf"\s*{_TIME}\s*>=\s*datetime\s*\(\s*(-?\d+)\s*\)"
    rf"\s+and\s+{_TIME}\s*<\s*datetime\s*\(\s*(-?\d+)\s*\)\s*",
    re.IGNORECASE,
)


_OR = re.compile(r"(?<=\))\s+or\s+(?=\()", re.IGNORECASE)


class QueryError(Exception):
    """A refused query: status plus the JSON body Mixpanel would send."""

    def __init__(self, status: int, body: dict[str, str]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


_Refuse = Callable[[str], QueryError]


@dataclass(frozen=True)
class ExportQuery:
    from_date: date
    to_date: date
    events: frozenset[str] | None  # names asked for; None: all
    where: tuple[tuple[int, int], ...] | None  # [lo, hi) ranges on `time` as written
    limit: int | None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticate(header: str | None, params: dict[str, str], cfg: SimConfig, target: str) -> str:
    """ "service_account" or "api_secret"; QueryError 401 (credentials) or 400 (project_id)."""
    refused = QueryError(401, {"error": "Invalid credentials"})
    if not header or not header.startswith("Basic "):
        raise refused
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise refused from None
    if cfg.api_secret and _same(user, cfg.api_secret) and password == "":
        return "api_secret"
    if not (_same(user, cfg.username) and _same(password, cfg.secret)):
        raise refused
    if params.get("project_id") != cfg.project_id:
        # Mixpanel cannot tie a service account to a project without a (right) project_id.
        raise QueryError(400, {"request": target, "error": "Unable to authenticate request"})
    return "service_account"


def parse(params: dict[str, str], today: date, target: str) -> ExportQuery:
    def bad(message: str) -> QueryError:
        return QueryError(400, {"request": target, "error": message})

    days = []
    for name in ("from_date", "to_date"):
        value = params.get(name)
        if not value:
            raise bad(f"'{name}' is a required parameter")
        if not _DATE.fullmatch(value):
            raise bad(f"'{name}' must be a date formatted as yyyy-mm-dd, got {value!r}")
        try:
            days.append(date.fromisoformat(value))
        except ValueError:
            raise bad(f"'{name}' is not a valid date: {value!r}") from None
    from_date, to_date = days
    if from_date > to_date:
        raise bad("'from_date' cannot be later than 'to_date'")
    if to_date > today:
        raise bad("to_date cannot be later than today")
    return ExportQuery(
        from_date=from_date,
        to_date=to_date,
        events=_events(params.get("event"), bad),
        where=_where(params.get("where"), bad),
        limit=_limit(params.get("limit"), bad),
    )


def _events(raw: str | None, bad: _Refuse) -> frozenset[str] | None:
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        raise bad(f"'event' must be a JSON array of event names, got {raw!r}") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad(f"'event' must be a non-empty JSON array of strings, got {raw!r}")
    return frozenset(names)


def _where(raw: str | None, bad: _Refuse) -> tuple[tuple[int, int], ...] | None:
    """The ranges of `where`: one range, or several joined by `or`, each in parentheses."""
    if raw is None or not raw.strip():
        return None
    parts = [raw] if not re.search(r"\)\s+or\s+\(", raw, re.I) else _OR.split(raw.strip())
    ranges = []
    for part in parts:
        text = part.strip()
        if len(parts) > 1 and text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
        match = _WHERE.fullmatch(text)
        if not match:
            raise bad(f"unable to parse 'where' expression: {raw!r}")
        ranges.append((int(match.group(1)), int(match.group(2))))
    return tuple(ranges)


def _limit(raw: str | None, bad: _Refuse) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad(f"'limit' must be an integer between 1 and {MAX_LIMIT}")
    return int(raw)
