"""The Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from collector.config import Settings
from collector.errors import ConfigError
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.http.routes import bp, register_errors
from collector.logs import setup_logging

MAX_BODY_BYTES = 64 * 1024


@dataclass
class Runtime:
    """What the routes need, built once per process."""

    settings: Settings
    budget: QueryBudget
    reader: ExportReader
    now: Callable[[], datetime]


def create_app(
    settings: Settings | None = None,
    *,
    reader: ExportReader | None = None,
    now: Callable[[], datetime] | None = None,
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
    app.extensions["collector"] = Runtime(
        settings=settings,
        budget=budget,
        reader=reader or ExportReader(settings, budget, now=clock),
        now=clock,
    )
    app.register_blueprint(bp)
    register_errors(app)
    return app
