"""What every part of the reliability run shares: the simulator setup and real gunicorn."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests
from flask import Flask

from collector.app import create_app
from collector.config import Settings
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.simulator import SimConfig, Simulator

ROOT = Path(__file__).resolve().parent.parent.parent
METRICS = ("distinct_users", "events", "active_users")
NAMES = ("Page View", "Sign Up", "Purchase", "Search", "Add To Cart")
PATHS = {"distinct_users": "/distinct-users", "events": "/events", "active_users": "/active-users"}
# Entries in `errors` for an attempt that was never made (budget, or no time left to make it).
NOT_MADE = frozenset({"budget", "deadline", "shutdown"})
# Distinctive, so that a leak is found by a plain substring search of any output.
SA_USER = "reliability-sa.5d1c9e.mp-service-account"
SA_SECRET = "rel-sa-secret-Q7w2Vx9LpK4"


def sim_config(**overrides: Any) -> SimConfig:
    """Small bodies (a day is ~7 MB): many scenarios per second, still several blocks each."""
    base: dict[str, Any] = {
        "seed": 5,
        "events_per_minute": 6,
        "users": 400,
        "malformed_per_query": 3,
        "username": SA_USER,
        "secret": SA_SECRET,
        "project_id": "77",
    }
    base.update(overrides)
    return SimConfig(**base)


def service_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    """The service's environment for this simulator's credentials; overrides win."""
    cfg = sim.config
    env = {
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": cfg.username,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": cfg.secret,
        "MIXPANEL_PROJECT_ID": cfg.project_id,
        "MIXPANEL_EXPORT_URL": sim.url,
        "EXPORT_BACKOFF_BASE_SECONDS": "0.05",
        "EXPORT_BACKOFF_CAP_SECONDS": "0.2",
        "LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env


# -- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def booted(self) -> int:
        return self.log_text().count("Booting worker")


def unbudgeted_app() -> Flask:
    """`main:app` with no hourly query budget (the per-second limit stays): long load runs only.

    A process may spend 60 Export queries an hour (Mixpanel's limit); a load run against the
    simulator spends that in a minute and would measure nothing but refusals after.
    """
    settings = Settings.from_env()
    budget = QueryBudget(10**9, settings.export_queries_per_second)
    return create_app(settings, reader=ExportReader(settings, budget))


@contextmanager
def gunicorn(
    env: Mapping[str, str],
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    entry: str = "main:app",
) -> Iterator[Service]:
    """The container's command (gunicorn with the shipped gunicorn.conf.py) on a free port."""
    port = free_port()
    full = {
        **os.environ,
        **env,
        "PORT": str(port),
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"]
    with log.open("w") as out:  # stdout and stderr both: everything the platform would keep
        proc = subprocess.Popen(
            [*command, entry], cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", proc, log)
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("gunicorn exited: " + service.log_text()[-2000:])
            try:
                if requests.get(f"{service.base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:  # not listening yet, or still booting
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not serve: " + service.log_text()[-2000:])
        yield service
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def json_entries(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def secret_forms(settings_secrets: list[str], user: str | None = None) -> list[str]:
    """Each secret as given and as it travels in a Basic Authorization header."""
    forms = list(settings_secrets)
    for secret in settings_secrets:
        for pair in (f"{user}:{secret}", f"{secret}:") if user else (f"{secret}:",):
            forms.append(base64.b64encode(pair.encode()).decode())
    return [f for f in forms if f]
