"""The Flask application factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from collector.alerting.check import Checker
from collector.alerting.notification import Notifier
from collector.alerting.notify import build_notifier
from collector.alerting.rules import RuleSet, load_rules
from collector.config import Settings
from collector.errors import ConfigError
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.export.shared_budget import SharedBudget
from collector.http.auth import install as require_oidc
from collector.http.check import bp as check_bp
from collector.http.routes import bp, register_errors
from collector.http.rules import bp as rules_bp
from collector.http.status import bp as status_bp
from collector.ledger.service import build_ledger
from collector.logs import protect, setup_logging
from collector.metrics.answer import Answering
from collector.metrics.answering import ExportAnswering
from collector.startup import load_settings, log_started, refuse
from collector.stores import DocumentStore as StateStore
from collector.stores import open_document, open_store

MAX_BODY_BYTES = 64 * 1024


@dataclass
class Runtime:
    """What the routes need, built once per process."""

    settings: Settings
    budget: QueryBudget
    reader: ExportReader
    now: Callable[[], datetime]
    answering: Answering  # the export's, or with LEDGER_STORE the ledger's (kept slices)
    checker: Checker | None = None


@dataclass
class Alerting:
    """The alert rules as loaded at start-up: rules, their notifiers, the state store."""

    rules: RuleSet
    notifiers: dict[str, Notifier]
    store: StateStore


def load_alerting(
    settings: Settings, rules: RuleSet | None = None, store: StateStore | None = None
) -> Alerting | None:
    """The rules, if any are configured; a bad rules file, a notifier that cannot be built or
    a state store that cannot be written stops start-up (ConfigError)."""
    if rules is None:
        if not settings.collector_rules:
            return None
        rules = load_rules(settings.collector_rules, os.environ)
    protect(rules.secrets())
    notifiers = {}
    for name, cfg in rules.notifiers.items():
        try:
            notifiers[name] = build_notifier(cfg, timeout=settings.notify_timeout_seconds)
        except ValueError as exc:  # the message never holds the URL or the key
            raise ConfigError(f"invalid rules file {rules.source}: {exc}") from None
    return Alerting(rules, notifiers, store or _store(settings))


def check_stores(settings: Settings) -> None:
    """Open every store the settings name, as the factory will, probing each directory once:
    ConfigError naming the setting if one cannot be written. For gunicorn's arbiter, before
    any worker starts (the rule state's is checked with the rules)."""
    for setting, url in (
        ("BUDGET_STORE", settings.budget_store),
        ("LEDGER_STORE", settings.ledger_store),
    ):
        if url:
            open_store(url, setting)


def build_answering(
    settings: Settings, reader: ExportReader, now: Callable[[], datetime]
) -> Answering:
    """What answers metrics: the slice ledger with LEDGER_STORE (its store probed now), else
    the export alone."""
    ledger = build_ledger(settings, reader, now)
    if ledger is not None:
        return ledger
    return ExportAnswering(reader, settings.exact_distinct_cap, settings.max_window_days)


def build_checker(
    settings: Settings,
    answering: Answering,
    now: Callable[[], datetime],
    rules: RuleSet | None = None,
    store: StateStore | None = None,
) -> Checker | None:
    """The alert-rule runner, if rules are configured (see `load_alerting`)."""
    alerting = load_alerting(settings, rules, store)
    if alerting is None:
        return None
    return Checker(settings, alerting.rules, answering, alerting.store, alerting.notifiers, now)


def build_budget(settings: Settings) -> QueryBudget:
    """The Export query budget: the project's, shared through BUDGET_STORE when it is set
    (a directory is probed now: ConfigError if it cannot be written), else this process's own."""
    per_hour, per_second = settings.export_queries_per_hour, settings.export_queries_per_second
    if not settings.budget_store:
        return QueryBudget(per_hour, per_second)
    return SharedBudget(open_store(settings.budget_store, "BUDGET_STORE"), per_hour, per_second)


def _store(settings: Settings) -> StateStore:
    if not settings.state_store:
        raise ConfigError("alert rules need a state store: set STATE_STORE")
    return open_document(settings.state_store, "STATE_STORE")


def create_app(
    settings: Settings | None = None,
    *,
    reader: ExportReader | None = None,
    now: Callable[[], datetime] | None = None,
    rules: RuleSet | None = None,
    store: StateStore | None = None,
) -> Flask:
    """The service: routes, reader and (with rules) the checker. Logs one start-up entry; a
    ConfigError stops start-up with one CRITICAL entry naming what to fix."""
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            refuse(exc.message)
            raise
    setup_logging(settings)
    clock = now or (lambda: datetime.now(UTC))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    try:
        budget = reader.budget if reader else build_budget(settings)
        reader = reader or ExportReader(settings, budget, now=clock)
        answering = build_answering(settings, reader, clock)
        checker = build_checker(settings, answering, clock, rules, store)
    except ConfigError as exc:
        refuse(exc.message, settings)
        raise
    log_started(settings, checker.rules if checker else None)
    app.extensions["collector"] = Runtime(
        settings=settings,
        budget=budget,
        reader=reader,
        now=clock,
        answering=answering,
        checker=checker,
    )
    app.register_blueprint(bp)
    app.register_blueprint(check_bp)
    app.register_blueprint(rules_bp)
    app.register_blueprint(status_bp)
    register_errors(app)
    require_oidc(app, settings)  # off unless AUTH_OIDC_AUDIENCE is set
    return app
