"""Reading request parameters (query string or JSON body) and validating them into a
MetricRequest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app, request

from collector.config import Settings
from collector.errors import BadRequest
from collector.metrics.answer import MetricRequest
from collector.metrics.registry import metric
from collector.window import EmptyWindow, Window, floor_minute, iso, parse_instant

MAX_EVENT_NAMES = 100
MAX_EVENT_NAME_CHARS = 255
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Mixpanel's `time` is epoch seconds: nothing before
WINDOW_PARAMS = frozenset({"from", "to", "minutes", "lag", "days", "event"})
DATE_PARAMS = frozenset({"date"})
CHECK_PARAMS = frozenset({"rule", "dry_run"})
FLAG_PARAMS = frozenset({"dry_run"})  # booleans: true/false in a JSON body, 1/0 in a query
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode's control characters (Cc)
TRUE, FALSE = frozenset({"", "1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def request_params() -> dict[str, list[str]]:
    """The current request's parameters: its query string and, for a POST, its JSON body."""
    body = None
    # A chunked body has no Content-Length; ignoring it would answer a window nobody asked for.
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.method == "POST" and (request.content_length or chunked):
        if not request.is_json:
            raise BadRequest(
                "send parameters as a JSON object (Content-Type: application/json) "
                "or in the query string"
            )
        body = _json_body()
    return merge_params(request.args.to_dict(flat=False), body)


def no_params(path: str) -> None:
    """Refuse any parameter: for the endpoints that take none (/healthz, /rules, /status)."""
    _check_known(request_params(), frozenset(), path)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys; the same key twice in a query string is a 400.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _NotJson(ValueError):
    """NaN, Infinity or -Infinity: Python's parser takes them, JSON has no such values."""


def _no_constant(name: str) -> Any:
    raise _NotJson(name)


def _json_body() -> Any:
    # Through the app's JSON provider, which turns nesting past the parser's limit into an
    # error of the body instead of a crash.
    try:
        body = current_app.json.loads(
            request.get_data(), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except _NotJson as exc:
        raise BadRequest(
            f"the JSON body holds {exc.args[0]}, which JSON does not allow: give a number"
        ) from None
    except _DuplicateKey as exc:
        raise BadRequest(
            f"key {exc.key[:40]!r} is given more than once in the JSON body: give each "
            'parameter once (several values as a list: {"event": ["Sign Up", "Purchase"]})'
        ) from None
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest("the request body is not valid JSON") from None
    if body is None:
        raise BadRequest('the JSON body must be an object, e.g. {"minutes": 60}')
    return body


def merge_params(args: Mapping[str, list[str]], body: Any) -> dict[str, list[str]]:
    """One multi-valued view of the query string and a JSON object body."""
    merged: dict[str, list[str]] = {k: list(v) for k, v in args.items()}
    for key, values in merged.items():
        if not _is_text(key) or not all(map(_is_text, values)):
            shown = key.encode("utf-8", "replace").decode()[:40]
            raise BadRequest(
                f"parameter {shown!r} is not valid UTF-8: percent-encode the UTF-8 bytes of "
                "the text (%C3%A9 for é)"
            )
    if body is None:
        return merged
    if not isinstance(body, dict):
        raise BadRequest('the JSON body must be an object, e.g. {"minutes": 60}')
    for key, value in body.items():
        if key in merged:
            raise BadRequest(f"parameter {key!r} is given both in the query string and the body")
        values = value if isinstance(value, list) else [value]
        merged[key] = [_body_value(key, v) for v in values]
    return merged


def _body_value(key: str, value: Any) -> str:
    """One value of a JSON body as the query string would carry it; true and false only where
    a flag is, where they mean what 1 and 0 mean."""
    if isinstance(value, bool):
        if key in FLAG_PARAMS:
            return "true" if value else "false"
    elif isinstance(value, str | int | float):
        return str(value)
    if key in FLAG_PARAMS:
        raise BadRequest(f"{key} must be a boolean, not {_json_kind(value)}: {_flag_hint(key)}")
    raise BadRequest(
        f"parameter {key[:40]!r} takes a string or a number, not {_json_kind(value)} "
        f"(true and false are for {', '.join(sorted(FLAG_PARAMS))})"
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return "an object" if isinstance(value, dict) else "a list inside a list"


def _flag_hint(name: str) -> str:
    return f'use {name}=1 or {name}=0, or "{name}": true or false in a JSON body'


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} is given more than once")
    return values[0]


def _integer(raw: str, name: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}={value} is out of range: allowed {low} to {high}")
    return value


def _check_known(params: dict[str, list[str]], allowed: frozenset[str], path: str = "") -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        takes = f"{path} takes no parameters"
        if allowed:
            takes = f"allowed: {', '.join(sorted(allowed))}"
        raise BadRequest(
            f"unknown parameter(s): {', '.join(repr(u[:40]) for u in unknown[:5])}; {takes}"
        )


def _events(params: dict[str, list[str]]) -> tuple[str, ...]:
    names = params.get("event", [])
    if len(names) > MAX_EVENT_NAMES:
        raise BadRequest(f"too many event names ({len(names)}); at most {MAX_EVENT_NAMES}")
    for name in names:
        if not name.strip() or len(name) > MAX_EVENT_NAME_CHARS:
            raise BadRequest(f"event names must be 1 to {MAX_EVENT_NAME_CHARS} characters")
        if not _is_text(name):
            # A lone surrogate ("\ud800" in a JSON body) is no event name, and no log line
            # can carry it: the request's summary entry would be lost.
            raise BadRequest(f"event name {name[:40]!r} is not valid Unicode text")
        control = CONTROL.search(name)
        if control:
            raise BadRequest(
                f"event name {name[:40]!r} holds a control character "
                f"(U+{ord(control.group()):04X}): event names are printable text, as Mixpanel "
                "shows them"
            )
    return tuple(dict.fromkeys(names))  # keep order, drop repeats


def window_request(
    metric: str, params: dict[str, list[str]], settings: Settings, now: datetime
) -> MetricRequest:
    _check_known(params, WINDOW_PARAMS)
    raw_from, raw_to = _single(params, "from"), _single(params, "to")
    raw_minutes, raw_lag = _single(params, "minutes"), _single(params, "lag")
    raw_days = _single(params, "days")
    # With the ledger, a window may reach back as far as it keeps slices.
    max_days = settings.ledger_retention_days if settings.ledger_store else settings.max_window_days
    max_minutes = max_days * 24 * 60
    if raw_days is not None:
        if raw_from is not None or raw_to is not None or raw_minutes is not None:
            raise BadRequest("'days' is a window of its own: not with 'from'/'to' or 'minutes'")
        if not settings.ledger_store:
            raise BadRequest(
                "'days' answers from the slice ledger, which is off: set LEDGER_STORE, or ask "
                "for 'minutes' (up to MAX_WINDOW_DAYS)"
            )
        raw_minutes = str(_integer(raw_days, "days", 1, max_days) * 24 * 60)
    if raw_from is not None or raw_to is not None:
        if raw_from is None or raw_to is None:
            raise BadRequest("give both 'from' and 'to', or neither (then 'minutes' applies)")
        if raw_minutes is not None or raw_lag is not None:
            raise BadRequest("'minutes' and 'lag' cannot be combined with 'from'/'to'")
        start, end = _instant(raw_from, "from"), _instant(raw_to, "to")
    else:
        minutes = (
            _integer(raw_minutes, "minutes", 1, max_minutes)
            if raw_minutes is not None
            else settings.window_minutes
        )
        lag = (
            _integer(raw_lag, "lag", 0, 24 * 60)
            if raw_lag is not None
            else settings.window_lag_minutes
        )
        end = floor_minute(now) - timedelta(minutes=lag)
        start = end - timedelta(minutes=minutes)
    try:
        window = Window(start, end)
    except EmptyWindow as exc:
        raise BadRequest(str(exc)) from None
    if end - start > timedelta(days=max_days):
        limit = (
            f"LEDGER_RETENTION_DAYS={max_days}"
            if settings.ledger_store
            else f"MAX_WINDOW_DAYS={max_days} (LEDGER_STORE allows longer ones)"
        )
        raise BadRequest(
            f"window of {(end - start).total_seconds() / 86400:.2f} days is longer than "
            f"{limit}; ask for a shorter one"
        )
    if start > now:
        raise BadRequest(f"the window starts in the future ({iso(start)}); nothing to count yet")
    if start < EPOCH:
        raise BadRequest(f"the window starts before 1970 ({iso(start)}); Mixpanel has no events")
    return MetricRequest(metric, window, _events(params))


def _instant(raw: str, name: str) -> datetime:
    try:
        return parse_instant(raw, name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except OverflowError:
        # A valid ISO date whose offset pushes it past year 1 or 9999 (9999-12-31T23:00-05:00).
        raise BadRequest(f"{name}={raw[:60]!r} is out of range: years 1970 to 9999") from None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def metric_request(
    name: str, params: dict[str, list[str]], settings: Settings, now: datetime
) -> MetricRequest:
    """The request for metric `name` from its parameters, by the kind it takes (the
    registry's): a window, or a UTC day. BadRequest on anything wrong."""
    if metric(name).params == "day":
        return date_request(params, now, name)
    return window_request(name, params, settings, now)


def date_request(params: dict[str, list[str]], now: datetime, name: str) -> MetricRequest:
    """A UTC day's request (`date`, default today: up to now)."""
    _check_known(params, DATE_PARAMS)
    raw = _single(params, "date")
    today = now.astimezone(UTC).date()
    if raw is None:
        day = today
    else:
        try:
            day = date.fromisoformat(raw.strip())
        except ValueError:
            raise BadRequest(f"date={raw!r} is not a date: use YYYY-MM-DD (UTC)") from None
    if day > today:
        raise BadRequest(f"date={day.isoformat()} is in the future")
    if day < EPOCH.date():
        raise BadRequest(f"date={day.isoformat()} is before 1970: Mixpanel has no events then")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = min(start + timedelta(days=1), now.astimezone(UTC))
    if end <= start:
        raise BadRequest("the day has only just begun: nothing to count yet")
    return MetricRequest(name, Window(start, end))


@dataclass(frozen=True)
class CheckRequest:
    """What a /check asks for: some rules (none: all), and whether it is only a dry run."""

    rules: list[str]
    dry_run: bool = False


def check_request(params: dict[str, list[str]]) -> CheckRequest:
    _check_known(params, CHECK_PARAMS)
    raw = _single(params, "dry_run")
    if raw is None or raw.strip().lower() in FALSE:
        return CheckRequest(params.get("rule", []))
    if raw.strip().lower() in TRUE:  # `?dry_run` alone counts as asking for it
        return CheckRequest(params.get("rule", []), dry_run=True)
    raise BadRequest(f"dry_run={raw[:20]!r} is not a boolean: {_flag_hint('dry_run')}")
