"""`/check` on the container's command: gunicorn with a rules file, a state store and loopback
webhook receivers (tests/webhook_receiver.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from collector.simulator import Simulator
from tests.helpers import Service, gunicorn, json_entries, service_env
from tests.webhook_receiver import WebhookReceiver

KEY = "signing-key-for-service-tests-0042"


def firing_rule(name: str, *notify: str) -> dict[str, Any]:
    """A rule that fires on the first run (any event in the last half hour) and never reminds."""
    return {
        "name": name,
        "metric": "events",
        "window_minutes": 30,
        "lag_minutes": 0,
        "above": 0,
        "repeat_minutes": 0,
        "notify": list(notify),
    }


def rules_env(
    tmp_path: Path, rules: list[dict[str, Any]], hooks: Mapping[str, str]
) -> dict[str, str]:
    """Write the rules file (one signed webhook notifier per `hooks` name -> URL); its env."""
    env = {"COLLECTOR_RULES": str(tmp_path / "rules.yaml"), "HOOK_KEY": KEY}
    notifiers = {}
    for i, (name, url) in enumerate(hooks.items()):
        env[f"HOOK_URL_{i}"] = url
        notifiers[name] = {
            "type": "webhook",
            "url_env": f"HOOK_URL_{i}",
            "signing_key_env": "HOOK_KEY",
        }
    doc = {"notifiers": notifiers, "rules": rules}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(doc))
    return env


@contextmanager
def check_service(
    sim: Simulator,
    tmp_path: Path,
    rules: list[dict[str, Any]],
    hooks: Mapping[str, str],
    store: str,
    *,
    log: str = "gunicorn.log",
    workers: int = 1,
    threads: int = 4,
    **env: str,
) -> Iterator[Service]:
    full = service_env(
        sim,
        **rules_env(tmp_path, rules, hooks),
        STATE_STORE=store,
        EXPORT_DEADLINE_SECONDS="10",
        EXPORT_READ_TIMEOUT_SECONDS="2",
        **env,
    )
    with gunicorn(full, tmp_path / log, workers=workers, threads=threads) as service:
        yield service


def get_check(service: Service, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    r = requests.get(service.base + "/check", timeout=timeout)
    return r.status_code, r.json()


def summaries(service: Service) -> list[dict[str, Any]]:
    return [e for e in json_entries(service.log_text()) if e.get("summary")]


def delivered(*receivers: WebhookReceiver) -> list[str]:
    """The notification ids the receivers accepted (answered 2xx), in order."""
    return [
        r["headers"]["x-collector-notification-id"]
        for rx in receivers
        for r in rx.received
        if 200 <= r["status"] < 300
    ]
