"""gunicorn's own lines (its arbiter and workers: start, boot failures, worker exits; and its
access lines when asked for) are structured JSON entries like the service's when the service
logs JSON (LOG_FORMAT=json, or K_SERVICE set, as on Cloud Run): a severity Cloud Logging reads,
the message, the logger's name in the labels, and for an access line its `httpRequest`. Real
gunicorn with the shipped configuration; everything it writes is read back line by line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from collector.simulator import Simulator
from tests.helpers import ROOT, SA_SECRET, gunicorn, service_env

LABELS = "logging.googleapis.com/labels"
BROKEN = "broken_app:app"


def every_line_as_json(text: str) -> list[dict[str, Any]]:
    """Each non-empty line as a JSON object; a line that is not one fails, quoted."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a line that is not JSON: {line!r}")
    return entries


def by(logger: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get(LABELS, {}).get("python_logger") == logger]


def write_broken_app(where: Path) -> None:
    """An application that fails on import, its error naming the secret (which must not show)."""
    (where / "broken_app.py").write_text(
        "import os\nraise RuntimeError('cannot start with ' + "
        "os.environ['MIXPANEL_SERVICE_ACCOUNT_SECRET'])\n"
    )


def test_a_worker_that_cannot_boot_is_logged_as_json_with_its_traceback_at_error(
    sim: Simulator, tmp_path: Path
) -> None:
    write_broken_app(tmp_path)
    env = service_env(sim, PYTHONPATH=str(tmp_path))
    log = tmp_path / "gunicorn.log"
    with pytest.raises(RuntimeError), gunicorn(env, log, workers=1, threads=1, entry=BROKEN):
        pass
    text = log.read_text()
    assert SA_SECRET not in text
    entries = by("gunicorn.error", every_line_as_json(text))
    [failed] = [e for e in entries if e["message"].startswith("Exception in worker process")]
    assert failed["severity"] == "ERROR"
    assert "RuntimeError: cannot start with ***" in failed["message"]  # the traceback, redacted
    exits = [e for e in entries if " exited with code 3" in e["message"]]
    assert exits and {e["severity"] for e in exits} == {"ERROR"}
    assert [e["severity"] for e in entries if e["message"].startswith("Starting gunicorn")] == [
        "INFO"
    ]


def test_an_access_line_is_json_with_its_http_request_and_a_severity_by_status(
    sim: Simulator, tmp_path: Path
) -> None:
    env = service_env(sim, GUNICORN_CMD_ARGS="--access-logfile=-")
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log, workers=1, threads=2) as service:
        assert requests.get(f"{service.base}/healthz", timeout=30).status_code == 200
        assert requests.get(f"{service.base}/no-such-page", timeout=30).status_code == 404
    access = by("gunicorn.access", every_line_as_json(log.read_text()))
    requested = {e["httpRequest"]["requestUrl"]: e for e in access}
    missing = requested["/no-such-page"]
    assert missing["severity"] == "WARNING"
    assert missing["httpRequest"]["status"] == 404
    assert missing["httpRequest"]["requestMethod"] == "GET"
    assert '"GET /no-such-page HTTP/1.1" 404' in missing["message"]
    assert requested["/healthz"]["severity"] == "INFO"
    assert requested["/healthz"]["httpRequest"]["status"] == 200


def test_on_cloud_run_a_bad_gunicorn_setting_is_one_critical_json_entry() -> None:
    # K_SERVICE alone (as Cloud Run sets it) makes the logs JSON; the setting is gunicorn's own.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "GUNICORN_"))},
        "K_SERVICE": "rt-mp-collector",
        "GUNICORN_THREADS": "eight",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py", "main:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    [entry] = by("collector", every_line_as_json(done.stdout + done.stderr))
    assert entry["severity"] == "CRITICAL"
    assert entry["message"] == "GUNICORN_THREADS='eight' must be a whole number, at least 1"


def test_with_text_logs_gunicorn_keeps_its_lines_and_they_show_no_secret(
    sim: Simulator, tmp_path: Path
) -> None:
    write_broken_app(tmp_path)
    env = service_env(sim, LOG_FORMAT="text", PYTHONPATH=str(tmp_path))
    log = tmp_path / "gunicorn.log"
    with pytest.raises(RuntimeError), gunicorn(env, log, workers=1, threads=1, entry=BROKEN):
        pass
    text = log.read_text()
    assert "[INFO] Starting gunicorn" in text and "[ERROR] Exception in worker process" in text
    # Before, the traceback and gunicorn's bare copy of the error both showed the secret.
    assert text.count("RuntimeError: cannot start with ***") == 1
    assert "\ncannot start with ***\n" in text
    assert SA_SECRET not in text


def test_a_secret_from_the_rules_file_is_redacted_from_gunicorns_lines_too(
    sim: Simulator, tmp_path: Path
) -> None:
    """The rules file's webhook URL is learnt after start-up, in the worker: an access line
    whose URL carries it (a person pasting it where it does not belong) shows *** instead."""
    hook = "https://hooks.example.test/services/T000/B000/very-secret-path"
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "notifiers:\n  slack:\n    type: slack\n    url_env: NOTIFY_SLACK_URL\n"
        "rules:\n  - name: quiet\n    metric: events\n    window_minutes: 60\n    below: 0\n"
        "    notify: [slack]\n"
    )
    env = service_env(
        sim,
        GUNICORN_CMD_ARGS="--access-logfile=-",
        COLLECTOR_RULES=str(rules),
        STATE_STORE=f"file:{tmp_path / 'state.json'}",
        NOTIFY_SLACK_URL=hook,
    )
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log, workers=1, threads=2) as service:
        url = f"{service.base}/healthz?x={hook}"
        assert requests.get(url, timeout=30).status_code == 400  # no parameters there
    text = log.read_text()
    [entry] = [e for e in by("gunicorn.access", every_line_as_json(text)) if "x=" in e["message"]]
    assert entry["httpRequest"]["requestUrl"] == "/healthz?x=***"
    assert hook not in text and "very-secret-path" not in text
