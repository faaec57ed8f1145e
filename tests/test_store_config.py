"""STATE_STORE at start-up: rules get a durable, writable store, or the service does not start.

Without one, every /check would spend its Export query and then fail to remember what it
decided. As root (as tests and Cloud Build run) permissions do not stop a write, so an
unwritable place is one no user can write: below a regular file, or inside /proc.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collector.app import create_app
from collector.config import Settings
from collector.errors import ConfigError
from tests.helpers import json_entries, make_settings

SA = {"MIXPANEL_API_SECRET": "legacy-secret-for-tests"}
RULES = {"rules": [{"name": "a", "metric": "events", "window_minutes": 5, "above": 1}]}


def rules_file(tmp_path: Path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(RULES))
    return str(path)


def problem(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**SA, **env})
    return caught.value.message


def test_rules_without_a_state_store_do_not_start() -> None:
    message = problem({"COLLECTOR_RULES": "rules.yaml"})
    assert "COLLECTOR_RULES is set but STATE_STORE is not" in message
    assert "gs://<bucket>/<object>" in message


def test_without_rules_no_state_store_is_needed() -> None:
    assert Settings.from_env(SA).state_store is None


def test_a_relative_file_store_is_refused() -> None:
    message = problem({"COLLECTOR_RULES": "rules.yaml", "STATE_STORE": "file:state.json"})
    assert "STATE_STORE='file:state.json' must be an absolute path" in message


def test_a_file_store_on_cloud_run_is_refused_saying_why() -> None:
    env = {"COLLECTOR_RULES": "r.yaml", "STATE_STORE": "file:/srv/state.json", "K_SERVICE": "s"}
    message = problem(env)
    assert "is a local file on Cloud Run" in message
    assert "each instance would keep its own rule state and lose it on every restart" in message
    assert "set STATE_STORE=gs://<bucket>/<object>" in message
    allowed = Settings.from_env({**SA, **env, "STATE_STORE_ALLOW_FILE": "true"})
    assert (allowed.state_store, allowed.state_store_allow_file) == ("file:/srv/state.json", True)


def test_cloud_storage_on_cloud_run_is_accepted() -> None:
    env = {"COLLECTOR_RULES": "r.yaml", "STATE_STORE": "gs://b/collector/state.json"}
    assert Settings.from_env({**SA, **env, "K_SERVICE": "s"}).state_store == env["STATE_STORE"]


def test_a_bad_allow_file_value_is_named_once() -> None:
    message = problem({"STATE_STORE_ALLOW_FILE": "maybe"})
    assert message.count("STATE_STORE_ALLOW_FILE='maybe' is not a boolean") == 1


@pytest.mark.parametrize("where", ["below-a-file", "proc"])
def test_a_file_store_that_cannot_be_written_stops_start_up_with_one_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    path = tmp_path / "a-file" / "state.json" if where == "below-a-file" else "/proc/c/s.json"
    settings = make_settings(
        COLLECTOR_RULES=rules_file(tmp_path), STATE_STORE=f"file:{path}", LOG_FORMAT="json"
    )
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    assert caught.value.message.startswith(f"STATE_STORE: cannot write file:{path}: ")
    assert "give it a path this service's user can write" in caught.value.message
    [entry] = [e for e in json_entries(capsys.readouterr().out) if e["severity"] == "CRITICAL"]
    assert entry["message"] == caught.value.message


def test_a_writable_file_store_starts_and_leaves_no_state_behind(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "state.json"
    settings = make_settings(COLLECTOR_RULES=rules_file(tmp_path), STATE_STORE=f"file:{path}")
    assert create_app(settings).extensions["collector"].checker is not None
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json.lock"]
