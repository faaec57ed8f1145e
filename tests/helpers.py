"""Shared test helpers: settings built the way the service builds them, from an environment."""

from __future__ import annotations

from typing import Any

from collector.config import Settings
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader, ExportReport

SA_USER = "collector-sa.0a1b2c.mp-service-account"
SA_SECRET = "sa-secret-Zq81xKp0Lm3"  # distinctive, so a leak is easy to find in any output
PROJECT_ID = "4242"


def make_settings(export_url: str = "http://127.0.0.1:9/api/2.0/export", **env: str) -> Settings:
    base = {
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SA_USER,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
        "MIXPANEL_PROJECT_ID": PROJECT_ID,
        "MIXPANEL_EXPORT_URL": export_url,
        "EXPORT_BACKOFF_BASE_SECONDS": "0.01",
        "EXPORT_BACKOFF_CAP_SECONDS": "0.05",
        "EXPORT_DEADLINE_SECONDS": "20",
        "EXPORT_READ_TIMEOUT_SECONDS": "5",
        "LOG_FORMAT": "text",
    }
    base.update(env)
    return Settings.from_env(base)


class CountingReader(ExportReader):
    """Answers every read with nothing, and counts: each call would be one Export query."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, QueryBudget(60, 3))
        self.calls = 0

    def read(self, query: Any, sink: Any) -> ExportReport:
        self.calls += 1
        sink.new_attempt()
        return ExportReport(complete=True, attempts=1)
