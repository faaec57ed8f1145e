"""BUDGET_STORE as a setting: checked at start-up like every other, built into the service and
the command, shown by /healthz, and a store that fails later answers 503 with what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from collector.__main__ import main
from collector.app import create_app
from collector.config import Settings
from collector.errors import ConfigError
from collector.export.budget import QueryBudget
from collector.export.shared_budget import STORE_RETRY_SECONDS, SharedBudget
from collector.simulator import Simulator
from collector.stores.directory import DirBlobStore
from tests.check_service import firing_rule
from tests.conftest import past_window
from tests.helpers import make_settings, service_env

SA = {
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "u",
    "MIXPANEL_SERVICE_ACCOUNT_SECRET": "s",
    "MIXPANEL_PROJECT_ID": "1",
}


def span() -> str:
    window = past_window()
    return f"from={window.start:%Y-%m-%dT%H:%M:%SZ}&to={window.end:%Y-%m-%dT%H:%M:%SZ}"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("relative/dir", "BUDGET_STORE='relative/dir' must be gs://<bucket>/<prefix> or an "),
        ("gs://", "BUDGET_STORE='gs://' needs a bucket: gs://<bucket>/<prefix>"),
    ],
)
def test_a_budget_store_that_is_no_place_stops_start_up(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SA, "BUDGET_STORE": url, "EXPORT_MAX_ATTEMPTS": "0"})
    assert problem in err.value.message
    assert "EXPORT_MAX_ATTEMPTS=0 is out of range" in err.value.message  # all at once


def test_a_directory_that_cannot_be_written_stops_start_up(tmp_path: Path) -> None:
    # The settings only say it is a place; the factory opens it and probes it, once.
    (tmp_path / "taken").write_text("a file where the directory should be")
    settings = Settings.from_env({**SA, "BUDGET_STORE": str(tmp_path / "taken")})
    with pytest.raises(ConfigError) as err:
        create_app(settings)
    assert f"BUDGET_STORE='{tmp_path / 'taken'}' cannot be used: cannot " in err.value.message
    assert "give it a directory this service's user can write" in err.value.message


def test_a_writable_directory_is_checked_and_left_empty(tmp_path: Path) -> None:
    settings = Settings.from_env({**SA, "BUDGET_STORE": f"file:{tmp_path / 'budget'}"})
    assert settings.budget_store == f"file:{tmp_path / 'budget'}"
    assert not (tmp_path / "budget").exists()  # reading the settings touched nothing
    create_app(settings)
    assert DirBlobStore(tmp_path / "budget").names() == []  # probed, and left empty
    assert (tmp_path / "budget").is_dir()


def test_a_cloud_storage_prefix_needs_no_network_at_start_up() -> None:
    settings = Settings.from_env({**SA, "BUDGET_STORE": "gs://no-such-bucket/budget"})
    app = create_app(make_settings(BUDGET_STORE=settings.budget_store or ""))
    budget = app.extensions["collector"].budget
    assert isinstance(budget, SharedBudget)
    assert budget.store.describe() == "gs://no-such-bucket/budget"


def test_a_misspelt_budget_store_is_named() -> None:
    with pytest.raises(ConfigError, match="BUDGET_STOR is not a setting of this service: did "):
        Settings.from_env({**SA, "BUDGET_STOR": "/tmp/x"})


def test_without_budget_store_each_process_keeps_its_own_budget() -> None:
    budget = create_app(make_settings()).extensions["collector"].budget
    assert type(budget) is QueryBudget


def test_healthz_shows_the_shared_budget_and_queries_spend_it(
    sim: Simulator, tmp_path: Path
) -> None:
    env = {"BUDGET_STORE": str(tmp_path), "EXPORT_QUERIES_PER_HOUR": "6"}
    http = create_app(make_settings(sim.url, **env)).test_client()
    other = create_app(make_settings(sim.url, **env)).test_client()  # another process
    assert http.get("/healthz").json["queries_left_this_hour"] == 6
    before = sim.queries
    assert http.get(f"/distinct-users?{span()}").status_code == 200
    assert other.get(f"/distinct-users?{span()}").status_code == 200
    assert sim.queries == before + 2
    assert len(DirBlobStore(tmp_path).names("hour/")) == 2
    # Each process counts what it has seen: its own take, until it looks at the others'.
    assert http.get("/healthz").json["queries_left_this_hour"] == 5


def test_a_store_that_fails_later_answers_503_and_sends_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    store = tmp_path / "budget"
    http = create_app(make_settings(sim.url, BUDGET_STORE=str(store))).test_client()
    shutil.rmtree(store, ignore_errors=True)
    store.write_text("the disk that held it is gone")
    before = sim.queries
    r = http.get(f"/distinct-users?{span()}")
    assert r.status_code == 503 and sim.queries == before
    body = r.json
    assert body["code"] == "budget_exhausted"
    assert body["retry_in_seconds"] == STORE_RETRY_SECONDS
    named = f"the project's Export query budget (BUDGET_STORE=file:{store})"
    assert body["error"].startswith(named)
    assert "No query was sent" in body["error"]
    assert body["export"]["attempts"] == 0
    assert body["export"]["errors"][0]["next"] == "stop: budget store failed"


def test_the_command_spends_the_shared_budget(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    rules = tmp_path / "rules.yaml"
    doc = {"notifiers": {"log": {"type": "log"}}, "rules": [firing_rule("busy", "log")]}
    rules.write_text(yaml.safe_dump(doc))
    env = service_env(sim, BUDGET_STORE=str(tmp_path / "budget"), LOG_FORMAT="text")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STATE_STORE", raising=False)
    assert main(["check", "--dry-run", "--rules", str(rules)]) == 0, capsys.readouterr().err
    assert len(DirBlobStore(tmp_path / "budget").names("hour/")) == 1
