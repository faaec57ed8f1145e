"""Shared test support: settings built the way the service builds them, the simulator's
configuration, and the container's command (gunicorn with the shipped config) on loopback.

`bench/` imports from here for its reliability figures; nothing here imports `bench/`, which
`gcloud builds submit` does not upload.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from collector.cli.serve import serving, stop
from collector.config import Settings
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader, ExportReport
from collector.simulator import SimConfig, Simulator

SA_USER = "collector-sa.0a1b2c.mp-service-account"
SA_SECRET = "sa-secret-Zq81xKp0Lm3"  # distinctive, so a leak is easy to find in any output
PROJECT_ID = "4242"
ROOT = Path(__file__).resolve().parent.parent


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


def sim_config(**overrides: object) -> SimConfig:
    """The simulator most tests use, with the credentials of `make_settings`."""
    base: dict[str, object] = {
        "seed": 7,
        "events_per_minute": 30,
        "users": 300,
        "username": SA_USER,
        "secret": SA_SECRET,
        "project_id": PROJECT_ID,
    }
    base.update(overrides)
    return SimConfig(**base)  # type: ignore[arg-type]


class CountingReader(ExportReader):
    """Answers every read with nothing, and counts: each call would be one Export query."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, QueryBudget(60, 3))
        self.calls = 0

    def read(self, query: Any, sink: Any, deadline: Any = None) -> ExportReport:
        self.calls += 1
        sink.new_attempt()
        return ExportReport(complete=True, attempts=1)


def compute(request: Any, reader: Any, exact_cap: int = 0) -> dict[str, Any]:
    """The JSON answer to `request` read from the export (as the routes give it without a
    ledger)."""
    from collector.metrics.answering import ExportAnswering

    return ExportAnswering(reader, exact_cap).answer(request).as_dict()


def state_path(document: Any) -> Path:
    """Where a rule-state document on a directory keeps its bytes."""
    return Path(document.store.root) / document.name


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment less every variable of the service's (its prefixes:
    MIXPANEL_, COLLECTOR_, STATE_, GUNICORN_, ...), so that nothing of this machine's reaches a
    child; then `overrides`."""
    from collector.env_names import PREFIXES

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)},
        **overrides,
    }


def code_blocks(text: str, language: str = "") -> list[str]:
    """The fenced code blocks of a Markdown text, of `language` only if given."""
    fence = re.escape(language) if language else "[a-z]*"
    return re.findall(rf"```{fence}\n(.*?)```", text, re.S)


def collector_command(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real `python -m collector ARGS`, in the checkout, with this environment added to
    the process's, less any setting of this machine's (`clean_env`)."""
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installed(*names: str, needed_for: str) -> str:
    """The first of `names` on PATH. Without any, the test fails under CI (.ci/run installs or
    checks for each such tool first) and is skipped elsewhere, `needed_for` saying why."""
    import pytest

    for name in names:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail(needed_for)
    pytest.skip(needed_for)


@contextmanager
def wsgi_server(app: Any, **options: Any) -> Iterator[Any]:
    """`app` served on a free loopback port by werkzeug, a thread per request, until the block
    ends; `options` go to werkzeug's make_server (ssl_context=...)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)


def json_entries(text: str) -> list[dict[str, Any]]:
    """The JSON log entries in a process's output; other lines (gunicorn's own) are skipped."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


# -- the container's command ------------------------------------------------------------------


def service_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    """The service's environment for this simulator's credentials; overrides win."""
    cfg = sim.config
    return _env(sim.url, cfg.username, cfg.secret, cfg.project_id, overrides)


def _env(
    export_url: str, username: str, secret: str, project_id: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    return {
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": username,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": secret,
        "MIXPANEL_PROJECT_ID": project_id,
        "MIXPANEL_EXPORT_URL": export_url,
        "EXPORT_BACKOFF_BASE_SECONDS": "0.05",
        "EXPORT_BACKOFF_CAP_SECONDS": "0.2",
        "LOG_FORMAT": "json",
        **overrides,
    }


@dataclass
class Service:
    """A running gunicorn: its base URL, the arbiter's process, and its log (stdout + stderr)."""

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


@contextmanager
def gunicorn(
    env: Mapping[str, str],
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    entry: str = "main:app",
    port: int | None = None,
) -> Iterator[Service]:
    """The container's command (gunicorn with the shipped gunicorn.conf.py) on a free port.

    Raises RuntimeError if gunicorn exits before it serves (a worker that cannot boot).
    """
    port = port or free_port()
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
        if not serving(proc, service.base, 60):  # slow on a cold checkout
            what = "exited" if proc.poll() is not None else "did not serve"
            raise RuntimeError(f"gunicorn {what}: " + service.log_text()[-2000:])
        yield service
    finally:
        stop(proc)


@contextmanager
def gunicorn_service(
    export_url: str, tmp_path: Path, workers: int, threads: int, deadline: float, **env: str
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`gunicorn()` against `export_url` with these tests' credentials and a short deadline."""
    overrides = {
        "EXPORT_DEADLINE_SECONDS": str(deadline),
        "EXPORT_READ_TIMEOUT_SECONDS": "1",
        **env,
    }
    full = _env(export_url, SA_USER, SA_SECRET, PROJECT_ID, overrides)
    log = tmp_path / "gunicorn.log"
    with gunicorn(full, log, workers=workers, threads=threads) as service:
        yield service.base, service.proc, service.log


# -- `collector serve` ----------------------------------------------------------------------------

BANNER_END = "Ctrl-C stops it."


def read_banner(
    proc: subprocess.Popen[str], seconds: float = 90, log: list[str] | None = None
) -> list[str]:
    """What `collector serve` prints before it serves, up to BANNER_END. Its stderr (gunicorn's
    log) goes into `log` meanwhile and after, so that a full pipe never stops the service."""
    lines: queue.Queue[str | None] = queue.Queue()
    log = [] if log is None else log

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def drain() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            log.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    threading.Thread(target=drain, daemon=True).start()
    banner: list[str] = []
    ready_by = time.monotonic() + seconds
    while time.monotonic() < ready_by:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        banner.append(line)
        if line == BANNER_END:
            return banner
    raise AssertionError(f"no banner: {banner} {log[-30:]}")
