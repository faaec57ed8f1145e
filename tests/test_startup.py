"""Start-up as an operator sees it, through the container's command (real gunicorn): one entry
with the version and the effective configuration, or one entry that says what to fix.

Before, a misspelt setting was ignored (the default applied), nothing showed the configuration
in force, and a refusal printed twice around a gunicorn traceback, as plain text even with JSON
logs (on Cloud Run, one entry per traceback line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector import __version__
from collector.app import create_app
from tests.helpers import ROOT, SA_SECRET, free_port, gunicorn, json_entries, make_settings

DIAGNOSTIC = "logging.googleapis.com/diagnostic"  # the logging library's own first entry
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def entries(text: str) -> list[dict]:
    return [e for e in json_entries(text) if DIAGNOSTIC not in json.dumps(e)]


def refused(env: dict[str, str], workers: int = 2) -> subprocess.CompletedProcess[str]:
    """gunicorn with the shipped config and this environment, which must not start."""
    full = {
        **os.environ,
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "user",
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
        "MIXPANEL_PROJECT_ID": "7",
        "PORT": str(free_port()),
        "GUNICORN_WORKERS": str(workers),
        **env,
    }
    return subprocess.run(
        [GUNICORN, "--config", "gunicorn.conf.py", "main:app"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_misspelt_setting_stops_gunicorn_with_one_json_entry_and_no_traceback() -> None:
    done = refused({"EXPORT_DEADLINE_SECOND": "30", "K_SERVICE": "rt-mp-collector"})
    assert done.returncode == 3
    [entry] = entries(done.stdout)
    assert entry["severity"] == "CRITICAL"
    assert entry["message"] == (
        "invalid configuration: EXPORT_DEADLINE_SECOND is not a setting of this service: "
        "did you mean EXPORT_DEADLINE_SECONDS?"
    )
    assert entry["config_error"] is True and entry["version"] == __version__
    everything = done.stdout + done.stderr
    assert everything.count("EXPORT_DEADLINE_SECOND ") == 1  # said once, by that entry
    assert "Traceback" not in everything
    assert "Booting worker" not in everything  # the arbiter refused before any worker
    assert SA_SECRET not in everything


def test_a_refusal_in_text_mode_is_one_line() -> None:
    done = refused({"MIXPANEL_REIGON": "eu", "LOG_FORMAT": "text"}, workers=1)
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if "MIXPANEL_REIGON" in line]
    assert len(lines) == 1 and "CRITICAL" in lines[0]
    assert "did you mean MIXPANEL_REGION?" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("setting", ["BUDGET_STORE", "LEDGER_STORE"])
def test_a_store_directory_that_cannot_be_written_stops_gunicorn_with_one_entry(
    tmp_path: Path, setting: str
) -> None:
    # The factory probes it (settings do no I/O); gunicorn's arbiter asks the factory first,
    # so that the refusal is one entry, not a worker exiting 3 without a word.
    (tmp_path / "taken").write_text("a file where the directory should be")
    done = refused({setting: str(tmp_path / "taken"), "K_SERVICE": "rt-mp-collector"})
    assert done.returncode == 3
    [entry] = entries(done.stdout)
    assert entry["severity"] == "CRITICAL"
    assert entry["message"].startswith(f"{setting}=")
    assert "this service's user can write" in entry["message"]


@pytest.mark.parametrize(
    ("text", "state_store", "message"),
    [
        (
            "rules: [{name: a, metric: events, window_minutes: 5, abov: 1}]\n",
            True,
            "invalid rules file {path}: rule 'a': unknown field 'abov': did you mean 'above'?",
        ),
        (
            "rules:\n  - name: a\n    metric: events\n   above: 1\n",
            True,
            "invalid rules file {path}, line 4, column 4: not valid YAML: expected <block end>, "
            "but found '<block mapping start>' (while parsing a block collection at line 2, "
            "column 3): check this line's indentation against the lines above it",
        ),
        (  # the settings' problems and the file's, in the one entry
            "rules: []\n",
            False,
            "invalid configuration: COLLECTOR_RULES is set but STATE_STORE is not: rule state "
            "needs a durable place; set STATE_STORE=gs://<bucket>/<object> (on Cloud Run) or "
            "STATE_STORE=file:/absolute/path.json (one machine); "
            "invalid rules file {path}: 'rules' is empty: give at least one rule",
        ),
    ],
)
def test_a_bad_rules_file_is_refused_the_same_way(
    tmp_path: Path, text: str, state_store: bool, message: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    env = {"COLLECTOR_RULES": str(rules), "LOG_FORMAT": "json"}
    if state_store:
        env["STATE_STORE"] = f"file:{tmp_path / 'state.json'}"
    done = refused(env)
    assert done.returncode == 3
    [entry] = entries(done.stdout)
    assert entry["message"] == message.format(path=rules)
    assert entry["config_error"] is True and entry["severity"] == "CRITICAL"
    assert "Traceback" not in done.stdout + done.stderr


def test_each_worker_logs_its_version_and_effective_configuration_once(tmp_path: Path) -> None:
    env = {
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "user",
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
        "MIXPANEL_PROJECT_ID": "7",
        "MIXPANEL_EXPORT_URL": "http://127.0.0.1:9/api/2.0/export",
        "EXPORT_DEADLINE_SECONDS": "45",
        "LOG_FORMAT": "json",
    }
    with gunicorn(env, tmp_path / "log", workers=1, threads=2) as service:
        pids = {w.pid for w in service.workers()}
    text = service.log_text()
    [started] = [e for e in entries(text) if e.get("startup")]
    assert started["version"] == __version__ and started["pid"] in pids
    assert started["message"] == f"rt-mp-collector {__version__} started (pid {started['pid']})"
    config = started["config"]
    assert config["export_deadline_seconds"] == 45.0
    assert config["export_max_attempts"] == 4  # a default, shown as it applies
    assert config["service_account_secret"] == "set" and config["api_secret"] == "unset"
    assert config["project_id"] == "7"
    assert SA_SECRET not in text


def test_the_start_up_line_in_text_mode_shows_the_whole_configuration(capsys) -> None:
    create_app(make_settings(EXPORT_MAX_ATTEMPTS="3"))
    [line] = [x for x in capsys.readouterr().err.splitlines() if "started (pid" in x]
    assert "export_max_attempts=3" in line and "auth_oidc_invokers=[]" in line
    assert "service_account_secret=set" in line and SA_SECRET not in line
    assert "…" not in line


@pytest.mark.parametrize("command", [["check"], ["check", "--dry-run"]])
def test_the_command_line_refuses_a_misspelt_setting_too(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collector", *command],
        cwd=ROOT,
        env={**os.environ, "MIXPANEL_API_SECRET": "legacy-secret", "LOG_LEVL": "debug"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: invalid configuration: LOG_LEVL is not a setting of this service: "
        "did you mean LOG_LEVEL?\n"
    )


PROBE = """
import os, sys
from collector.app import create_app
from collector.config import Settings
log_format, store = sys.argv[1:3]
create_app(Settings.from_env({"MIXPANEL_API_SECRET": "s" * 12, "LOG_FORMAT": log_format}))
if store == "gs":  # the stores of a deployment whose ledger and rule state are in a bucket
    from collector.stores import open_document, open_store
    open_document("gs://bucket/state.json", "STATE_STORE")
    open_store("gs://bucket/ledger", "LEDGER_STORE")
print("loaded:", *(m for m in ("google.cloud.storage", "google.cloud.logging", "google.auth.jwt")
                   if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("log_format", "store", "loaded"),
    [
        ("text", "file", ""),
        # Both libraries load google-auth's JWT module themselves.
        ("json", "file", "google.cloud.logging google.auth.jwt"),
        ("text", "gs", "google.cloud.storage google.auth.jwt"),
    ],
)
def test_a_service_loads_the_google_libraries_it_uses_and_no_other(
    log_format: str, store: str, loaded: str
) -> None:
    """The Cloud Storage and Cloud Logging clients are a large share of a process's start-up
    (every gunicorn worker, every command): loaded only where a store is on Cloud Storage or
    logs are JSON, and google-auth's JWT module only where tokens are checked."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, log_format, store],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("loaded:")]
    assert line.split()[1:] == loaded.split()
