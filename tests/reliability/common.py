"""What every part of the reliability run shares: metrics, paths and a small simulator."""

from __future__ import annotations

import base64
from typing import Any

from flask import Flask

from collector.app import create_app
from collector.config import Settings
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.simulator import SimConfig
from tests.helpers import sim_config

METRICS = ("distinct_users", "events", "active_users")
NAMES = ("Page View", "Sign Up", "Purchase", "Search", "Add To Cart")
PATHS = {"distinct_users": "/distinct-users", "events": "/events", "active_users": "/active-users"}
# Entries in `errors` for an attempt that was never made (budget, or no time left to make it).
NOT_MADE = frozenset({"budget", "deadline", "shutdown"})


def small_sim_config(**overrides: Any) -> SimConfig:
    """Small bodies (a day is ~7 MB): many scenarios per second, still several blocks each."""
    base: dict[str, Any] = {"seed": 5, "events_per_minute": 6, "users": 400}
    return sim_config(**{**base, "malformed_per_query": 3, **overrides})


def unbudgeted_app() -> Flask:
    """`main:app` with no hourly query budget (the per-second limit stays): long load runs only.

    A process may spend 60 Export queries an hour (Mixpanel's limit); a load run against the
    simulator spends that in a minute and would measure nothing but refusals after.
    """
    settings = Settings.from_env()
    budget = QueryBudget(10**9, settings.export_queries_per_second)
    return create_app(settings, reader=ExportReader(settings, budget))


def secret_forms(settings_secrets: list[str], user: str | None = None) -> list[str]:
    """Each secret as given and as it travels in a Basic Authorization header."""
    forms = list(settings_secrets)
    for secret in settings_secrets:
        for pair in (f"{user}:{secret}", f"{secret}:") if user else (f"{secret}:",):
            forms.append(base64.b64encode(pair.encode()).decode())
    return [f for f in forms if f]
