"""The Flask application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from collector.alerting.check import Checker
from collector.alerting.notify import build_notifier
from collector.alerting.rules import RuleSet, load_rules
from collector.alerting.store import StateStore, store_from_url
from collector.config import Settings
from collector.errors import ConfigError
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.http.auth import install as require_oidc
from collector.http.check import bp as check_bp
from collector.http.routes import bp, register_errors
from collector.logs import protect, setup_logging

MAX_BODY_BYTES = 64 * 1024


@dataclass
class Runtime:
    """What the routes need, built once per process."""

    settings: Settings
    budget: QueryBudget
    reader: ExportReader
    now: Callable[[], datetime]
    checker: Checker | None = None


def build_checker(
    settings: Settings,
    reader: ExportReader,
    now: Callable[[], datetime],
    rules: RuleSet | None = None,
    store: StateStore | None = None,
) -> Checker | None:
    """The alert-rule runner, if rules are configured; a bad rules file stops start-up."""
    if rules is None:
        if not settings.collector_rules:
            return None
        rules = load_rules(settings.collector_rules, os.environ)
    protect(rules.secrets())
    notifiers = {name: build_notifier(cfg) for name, cfg in rules.notifiers.items()}
    return Checker(
        settings, rules, reader, store or store_from_url(settings.state_store), notifiers, now
    )


def create_app(
    settings: Settings | None = None,
    *,
    reader: ExportReader | None = None,
    now: Callable[[], datetime] | None = None,
    rules: RuleSet | None = None,
    store: StateStore | None = None,
) -> Flask:
    if settings is None:
        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            logging.getLogger("collector").critical("%s", exc.message)
            raise
    setup_logging(settings)
    clock = now or (lambda: datetime.now(UTC))
    budget = (
        reader.budget
        if reader
        else QueryBudget(settings.export_queries_per_hour, settings.export_queries_per_second)
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    reader = reader or ExportReader(settings, budget, now=clock)
    app.extensions["collector"] = Runtime(
        settings=settings,
        budget=budget,
        reader=reader,
        now=clock,
        checker=build_checker(settings, reader, clock, rules, store),
    )
    app.register_blueprint(bp)
    app.register_blueprint(check_bp)
    register_errors(app)
    require_oidc(app, settings)  # off unless AUTH_OIDC_AUDIENCE is set
    return app
