"""Start-up: one entry that shows what runs, or one entry that says why it cannot.

A process that starts logs its version and its effective configuration once (secrets only as
set or unset). A configuration that does not load is one CRITICAL entry, structured on Cloud Run
as the service's logs would have been, with any configured secret redacted, and nothing else:
under gunicorn the arbiter checks the configuration before it starts any worker
(`validate_or_exit`, from the gunicorn configuration), so neither a traceback nor one refusal
per worker follows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from collector import __version__
from collector.alerting.rules import RuleSet, load_rules
from collector.config import Secret, Settings
from collector.errors import ConfigError
from collector.logs import setup_logging

log = logging.getLogger("collector")
# gunicorn stops (instead of starting another worker) when a worker exits with 3.
EXIT_CONFIG = 3


def effective_config(settings: Settings, rules: RuleSet | None = None) -> dict[str, Any]:
    """Every setting as it applies, defaults included; a secret only as "set" or "unset"."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Secret) or f.name.endswith("secret"):
            value = "set" if value else "unset"
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    if rules is not None:
        out["rules"] = [r.name for r in rules.rules]
        out["notifiers"] = {name: cfg.type for name, cfg in rules.notifiers.items()}
    return out


def log_started(settings: Settings, rules: RuleSet | None = None) -> None:
    """The start-up entry of this process."""
    log.info(
        "rt-mp-collector %s started (pid %d)",
        __version__,
        os.getpid(),
        extra={
            "json_fields": {
                "startup": True,
                "version": __version__,
                "pid": os.getpid(),
                "config": effective_config(settings, rules),
            }
        },
    )


def refuse(message: str, settings: Settings | None = None) -> None:
    """The one CRITICAL entry of a configuration that did not load, logged as `settings` say
    or, if they did not load either, as they would have (see `_fallback_settings`)."""
    setup_logging(settings or _fallback_settings(os.environ))
    log.critical(
        "%s",
        message,
        extra={"json_fields": {"config_error": True, "version": __version__}},
    )


def load_settings(
    env: Mapping[str, str] | None = None, *, state_store_required: bool = True
) -> Settings:
    """The settings (`Settings.from_env`). A refusal names the rules file's problems too, so
    that one message names every problem of the configuration rather than one part per try."""
    env = os.environ if env is None else env
    try:
        return Settings.from_env(env, state_store_required=state_store_required)
    except ConfigError as exc:
        rules = env.get("COLLECTOR_RULES", "").strip()
        if not rules:
            raise
        try:
            load_rules(rules, env)
        except ConfigError as also:
            raise ConfigError(f"{exc.message}; {also.message}") from None
        raise


def validate_or_exit() -> None:
    """Load the configuration as a worker would (settings, stores, rules); if it does not
    load, log the refusal once and exit with EXIT_CONFIG. For gunicorn's arbiter."""
    # Imported here: the application factory pulls in the reader and Flask, which the
    # gunicorn configuration does not need to import when it is only read.
    from collector.app import check_stores, load_alerting

    settings = None
    try:
        settings = load_settings()
        check_stores(settings)
        load_alerting(settings)
    except ConfigError as exc:
        refuse(exc.message, settings)
        raise SystemExit(EXIT_CONFIG) from None


def log_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings logs are written with: the service's, or if they do not load, as they
    would have been. gunicorn's own lines follow them too (collector/gunicorn_logs.py)."""
    env = os.environ if env is None else env
    try:
        return Settings.from_env(env, state_store_required=False)
    except ConfigError:
        return _fallback_settings(env)


def _fallback_settings(env: Mapping[str, str]) -> Settings:
    """Logging settings for a configuration that did not load: JSON on Cloud Run as it would
    have been, and every secret the environment holds known for redaction."""
    fmt = env.get("LOG_FORMAT", "auto").strip().lower()
    json_logs = fmt == "json" or (fmt in ("", "auto") and bool(env.get("K_SERVICE")))
    secrets = {
        name: Secret(value)
        for name in ("service_account_secret", "api_secret")
        if (value := env.get(f"MIXPANEL_{name.upper()}", "").strip())
    }
    return Settings(export_url="", log_format="json" if json_logs else "text", **secrets)  # type: ignore[arg-type]
