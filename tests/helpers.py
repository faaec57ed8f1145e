"""Shared test helpers: settings built the way the service builds them, from an environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

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


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn_service(
    export_url: str, tmp_path: Path, workers: int, threads: int, deadline: float, **env: str
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """The container's command (gunicorn with the shipped config) against `export_url`."""
    port = free_port()
    full_env = {
        **os.environ,
        "PORT": str(port),
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "MIXPANEL_EXPORT_URL": export_url,
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SA_USER,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
        "MIXPANEL_PROJECT_ID": PROJECT_ID,
        "EXPORT_DEADLINE_SECONDS": str(deadline),
        "EXPORT_READ_TIMEOUT_SECONDS": "1",
        "EXPORT_BACKOFF_BASE_SECONDS": "0.05",
        "EXPORT_BACKOFF_CAP_SECONDS": "0.2",
        "LOG_FORMAT": "json",
        **env,
    }
    log_path = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(gunicorn), "--config", "gunicorn.conf.py", "main:app"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # The arbiter binds before its workers have imported the app (slow on a cold checkout):
        # a probe may be refused or just not answered yet.
        ready_by = time.monotonic() + 60
        while time.monotonic() < ready_by:
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start: " + log_path.read_text()[-2000:])
        yield base, proc, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=15)
