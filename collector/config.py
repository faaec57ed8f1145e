"""One typed settings object, read from the environment and validated once at start-up."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.env_names import rules_file_variables, unknown_settings
from collector.errors import ConfigError
from collector.stores.location import parse_location

REGION_URLS = {
    "us": "https://data.mixpanel.com/api/2.0/export",
    "eu": "https://data-eu.mixpanel.com/api/2.0/export",
    "in": "https://data-in.mixpanel.com/api/2.0/export",
}

T = TypeVar("T")

# Mixpanel's Export limits per project: queries an hour, and a second.
MIXPANEL_QUERIES_PER_HOUR, MIXPANEL_QUERIES_PER_SECOND = 60, 3
# What an export on this machine (the simulator, which enforces no limit) may be given instead.
LOOPBACK_QUERIES_PER_HOUR, LOOPBACK_QUERIES_PER_SECOND = 100_000, 1_000


class Secret:
    """A string that never shows itself in a repr, a log line or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    export_url: str
    region: str = "us"
    service_account_username: str | None = None
    service_account_secret: Secret | None = None
    project_id: str | None = None
    api_secret: Secret | None = None
    project_timezone: str = "UTC"
    export_deadline_seconds: float = 120.0
    export_max_attempts: int = 4
    export_connect_timeout_seconds: float = 10.0
    export_read_timeout_seconds: float = 30.0
    export_queries_per_hour: int = 60
    export_queries_per_second: int = 3
    export_backoff_base_seconds: float = 1.0
    export_backoff_cap_seconds: float = 30.0
    export_gzip: bool = True
    export_progress_seconds: float = 10.0
    window_minutes: int = 60
    window_lag_minutes: int = 5
    max_window_days: int = 7
    exact_distinct_cap: int = 2_000_000
    log_format: str = "text"
    log_level: str = "INFO"
    google_cloud_project: str | None = None
    collector_rules: str | None = None
    notify_deadline_seconds: float = 30.0  # all notifications of one /check together
    notify_timeout_seconds: float = 10.0  # one notification, in all (not per socket read)
    state_store: str | None = None  # required with rules: file:/abs/path or gs://bucket/object
    # The slice ledger (collector/ledger): off unless LEDGER_STORE is set.
    ledger_store: str | None = None
    ledger_slice_minutes: int = 5
    ledger_refresh_hours: tuple[float, ...] = (1.0, 24.0)
    ledger_retention_days: int = 35
    state_store_allow_file: bool = False  # a file: store on Cloud Run (per instance, not durable)
    auth_oidc_audience: str | None = None  # set: in-app OIDC check (collector/http/auth.py)
    auth_oidc_invokers: tuple[str, ...] = ()
    budget_store: str | None = None  # set: one query budget for every process sharing it

    @property
    def auth_mode(self) -> str:
        return "service_account" if self.service_account_username else "api_secret"

    def secrets(self) -> list[str]:
        """Every configured secret value, for redaction and for tests that prove none leaks."""
        found = [s.reveal() for s in (self.service_account_secret, self.api_secret) if s]
        return [s for s in found if s]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, state_store_required: bool = True
    ) -> Settings:
        """The settings, validated; ConfigError names every problem at once. Rules need a
        STATE_STORE, except for a dry run (`state_store_required=False`), which saves nothing."""
        return _load(os.environ if env is None else env, state_store_required)


class _Reader:
    """Reads typed values and collects every problem, so start-up reports them all at once."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.read: set[str] = set()  # every name asked for: the settings there are

    def text(self, name: str) -> str | None:
        self.read.add(name)
        value = self.env.get(name, "").strip()
        return value or None

    def number(
        self,
        name: str,
        default: T,
        parse: Callable[[str], T],
        low: float,
        high: float,
        why: str = "",
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        if not low <= value <= high:  # type: ignore[operator]
            because = f" ({why})" if why else ""
            self.problems.append(
                f"{name}={raw} is out of range: allowed {low:g} to {high:g}{because}"
            )
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (use true or false)")
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = (self.text(name) or default).lower()
        if raw not in allowed:
            self.problems.append(f"{name}={raw!r} is not one of {', '.join(allowed)}")
            return default
        return raw


def setting_names() -> frozenset[str]:
    """Every variable Settings reads (gunicorn's are in collector.env_names)."""
    r = _Reader({})
    _build(r)
    return frozenset(r.read)


def _load(env: Mapping[str, str], state_store_required: bool = True) -> Settings:
    r = _Reader(env)
    settings = _build(r, state_store_required)
    r.problems += unknown_settings(env, r.read, rules_file_variables(settings.collector_rules))
    if r.problems:
        raise ConfigError("invalid configuration: " + "; ".join(r.problems))
    return settings


def _build(r: _Reader, state_store_required: bool = True) -> Settings:
    """The settings as read, every problem collected in `r.problems` (none raised here)."""
    region = r.choice("MIXPANEL_REGION", "us", tuple(REGION_URLS))
    export_url = r.text("MIXPANEL_EXPORT_URL") or REGION_URLS[region]
    try:
        parsed = urlparse(export_url)
        host = parsed.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket: http://[::1
        parsed, host = urlparse(""), None
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        r.problems.append(f"MIXPANEL_EXPORT_URL={export_url!r} is not an http(s) URL")

    username = r.text("MIXPANEL_SERVICE_ACCOUNT_USERNAME")
    sa_secret = r.text("MIXPANEL_SERVICE_ACCOUNT_SECRET")
    project_id = r.text("MIXPANEL_PROJECT_ID")
    api_secret = r.text("MIXPANEL_API_SECRET")
    _check_auth(r, username, sa_secret, project_id, api_secret)

    tz = r.text("MIXPANEL_PROJECT_TIMEZONE") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        r.problems.append(
            f"MIXPANEL_PROJECT_TIMEZONE={tz!r} is not an IANA time zone (e.g. America/Los_Angeles)"
        )

    deadline = r.number("EXPORT_DEADLINE_SECONDS", 120.0, float, 1, 3500)
    read_timeout = r.number("EXPORT_READ_TIMEOUT_SECONDS", 30.0, float, 0.1, 600)
    connect_timeout = r.number("EXPORT_CONNECT_TIMEOUT_SECONDS", 10.0, float, 0.1, 120)
    backoff_base = r.number("EXPORT_BACKOFF_BASE_SECONDS", 1.0, float, 0, 60)
    backoff_cap = r.number("EXPORT_BACKOFF_CAP_SECONDS", 30.0, float, 0, 600)
    if backoff_cap < backoff_base:
        r.problems.append("EXPORT_BACKOFF_CAP_SECONDS must be at least EXPORT_BACKOFF_BASE_SECONDS")

    log_format = r.choice("LOG_FORMAT", "auto", ("auto", "json", "text"))
    if log_format == "auto":
        # K_SERVICE is set by Cloud Run: structured JSON there, readable text on a laptop.
        log_format = "json" if r.text("K_SERVICE") else "text"

    oidc_audience = r.text("AUTH_OIDC_AUDIENCE")
    oidc_invokers = tuple(
        e.strip().lower() for e in (r.text("AUTH_OIDC_INVOKERS") or "").split(",") if e.strip()
    )
    if bool(oidc_audience) != bool(oidc_invokers):
        r.problems.append(
            "AUTH_OIDC_AUDIENCE and AUTH_OIDC_INVOKERS go together: set both for the in-app "
            "token check, or neither behind Cloud Run IAM"
        )
    if oidc_audience and "?" in oidc_audience:
        r.problems.append("AUTH_OIDC_AUDIENCE must be the service's base URL, without a query")
    if [e for e in oidc_invokers if "@" not in e]:
        r.problems.append("AUTH_OIDC_INVOKERS must be comma-separated service-account emails")

    allow_file = r.flag("STATE_STORE_ALLOW_FILE", False)
    return Settings(
        export_url=export_url,
        region=region,
        service_account_username=username,
        service_account_secret=Secret(sa_secret) if sa_secret else None,
        project_id=project_id,
        api_secret=Secret(api_secret) if api_secret else None,
        project_timezone=tz,
        export_deadline_seconds=deadline,
        export_max_attempts=r.number("EXPORT_MAX_ATTEMPTS", 4, int, 1, 20),
        export_connect_timeout_seconds=connect_timeout,
        export_read_timeout_seconds=read_timeout,
        **_query_budget(r, host),
        export_backoff_base_seconds=backoff_base,
        export_backoff_cap_seconds=backoff_cap,
        export_gzip=r.flag("EXPORT_GZIP", True),
        export_progress_seconds=r.number("EXPORT_PROGRESS_SECONDS", 10.0, float, 0.1, 3600),
        window_minutes=r.number("WINDOW_MINUTES", 60, int, 1, 60 * 24 * 31),
        window_lag_minutes=r.number("WINDOW_LAG_MINUTES", 5, int, 0, 60 * 24),
        max_window_days=r.number("MAX_WINDOW_DAYS", 7, int, 1, 366),
        exact_distinct_cap=r.number("EXACT_DISTINCT_CAP", 2_000_000, int, 0, 1_000_000_000),
        log_format=log_format,
        log_level=r.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        google_cloud_project=r.text("GOOGLE_CLOUD_PROJECT"),
        collector_rules=r.text("COLLECTOR_RULES"),
        notify_deadline_seconds=r.number("NOTIFY_DEADLINE_SECONDS", 30.0, float, 0.1, 600),
        notify_timeout_seconds=r.number("NOTIFY_TIMEOUT_SECONDS", 10.0, float, 0.1, 120),
        state_store=_state_store(r, allow_file, state_store_required),
        state_store_allow_file=allow_file,
        auth_oidc_audience=oidc_audience,
        auth_oidc_invokers=oidc_invokers,
        **_ledger(r),
        budget_store=_store_place(r, "BUDGET_STORE"),
    )


def _query_budget(r: _Reader, host: str | None) -> dict[str, int]:
    """EXPORT_QUERIES_PER_HOUR / _PER_SECOND: at most Mixpanel's limits, which it enforces per
    project; more only for an export on this machine (a loopback MIXPANEL_EXPORT_URL, such as
    the simulator), which enforces none."""
    local = _loopback(host)
    out = {}
    for unit, mixpanel, loopback in (
        ("hour", MIXPANEL_QUERIES_PER_HOUR, LOOPBACK_QUERIES_PER_HOUR),
        ("second", MIXPANEL_QUERIES_PER_SECOND, LOOPBACK_QUERIES_PER_SECOND),
    ):
        why = (
            f"Mixpanel's limit per project; only an export on this machine, a loopback "
            f"MIXPANEL_EXPORT_URL such as the simulator, may be given up to {loopback}"
        )
        out[f"export_queries_per_{unit}"] = r.number(
            f"EXPORT_QUERIES_PER_{unit.upper()}",
            mixpanel,
            int,
            1,
            loopback if local else mixpanel,
            why="" if local else why,
        )
    return out


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SLICE_MINUTES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)  # those that cut an hour evenly


def _ledger(r: _Reader) -> dict[str, Any]:
    store = _store_place(r, "LEDGER_STORE")
    minutes = r.number("LEDGER_SLICE_MINUTES", 5, int, 1, 60)
    if minutes not in SLICE_MINUTES:
        r.problems.append(
            f"LEDGER_SLICE_MINUTES={minutes} must cut an hour evenly: "
            + ", ".join(map(str, SLICE_MINUTES))
        )
    retention = r.number("LEDGER_RETENTION_DAYS", 35, int, 1, 400)
    raw = r.text("LEDGER_REFRESH_HOURS")
    refresh: tuple[float, ...] = (1.0, 24.0)
    if raw is not None:
        try:
            refresh = tuple(sorted(float(v) for v in raw.split(",") if v.strip()))
        except ValueError:
            r.problems.append(f"LEDGER_REFRESH_HOURS={raw!r} is not a list of hours (1,24)")
        if any(h <= 0 or h > retention * 24 for h in refresh):
            r.problems.append(
                f"LEDGER_REFRESH_HOURS={raw!r}: every age must be above 0 and within "
                f"LEDGER_RETENTION_DAYS={retention}"
            )
    return {
        "ledger_store": store,
        "ledger_slice_minutes": minutes,
        "ledger_refresh_hours": refresh,
        "ledger_retention_days": retention,
    }


def _store_place(r: _Reader, setting: str) -> str | None:
    """A store's setting, checked for being a place (where it is opened and probed is the
    factory's business: settings do no I/O)."""
    url = r.text(setting)
    if url is not None:
        try:
            parse_location(url, setting)
        except ValueError as exc:
            r.problems.append(str(exc))
    return url


def _state_store(r: _Reader, allow_file: bool, required: bool = True) -> str | None:
    """STATE_STORE, checked against where it would run. Rules need it: their state (who is
    firing, what is owed) must outlive the process, and be the same for every process."""
    url = r.text("STATE_STORE")
    rules = r.text("COLLECTOR_RULES")
    if url is None:
        if rules and required:
            r.problems.append(
                "COLLECTOR_RULES is set but STATE_STORE is not: rule state needs a durable "
                "place; set STATE_STORE=gs://<bucket>/<object> (on Cloud Run) or "
                "STATE_STORE=file:/absolute/path.json (one machine)"
            )
        return None
    if not (url.startswith(("file:", "gs://")) and len(url) > len("file:")):
        r.problems.append(f"STATE_STORE={url!r} must be file:<path> or gs://<bucket>/<object>")
        return url
    try:
        where = parse_location(url, "STATE_STORE", document=True)
    except ValueError as exc:
        r.problems.append(str(exc))
        return url
    if where.bucket is None and rules:
        if not where.path.startswith("/"):
            r.problems.append(
                f"STATE_STORE={url!r} must be an absolute path (file:/var/lib/collector/"
                "state.json): a relative one moves with the working directory"
            )
        elif r.text("K_SERVICE") and not allow_file:
            r.problems.append(
                f"STATE_STORE={url!r} is a local file on Cloud Run: each instance would keep "
                "its own rule state and lose it on every restart (alerts fire again, owed "
                "notifications are lost); set STATE_STORE=gs://<bucket>/<object>, or "
                "STATE_STORE_ALLOW_FILE=true to accept that"
            )
    return url


def _check_auth(
    r: _Reader,
    username: str | None,
    sa_secret: str | None,
    project_id: str | None,
    api_secret: str | None,
) -> None:
    sa_any = bool(username or sa_secret)
    if sa_any and api_secret:
        r.problems.append(
            "both a service account (MIXPANEL_SERVICE_ACCOUNT_*) and the legacy "
            "MIXPANEL_API_SECRET are set: unset one of them"
        )
    elif sa_any:
        missing = [
            name
            for name, value in (
                ("MIXPANEL_SERVICE_ACCOUNT_USERNAME", username),
                ("MIXPANEL_SERVICE_ACCOUNT_SECRET", sa_secret),
                ("MIXPANEL_PROJECT_ID", project_id),
            )
            if not value
        ]
        if missing:
            r.problems.append(f"service account auth needs {', '.join(missing)}")
    elif not api_secret:
        r.problems.append(
            "no Mixpanel credentials: set MIXPANEL_SERVICE_ACCOUNT_USERNAME, "
            "MIXPANEL_SERVICE_ACCOUNT_SECRET and MIXPANEL_PROJECT_ID "
            "(or the legacy MIXPANEL_API_SECRET)"
        )
