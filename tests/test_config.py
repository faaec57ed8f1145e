from __future__ import annotations

import pytest

from collector.config import REGION_URLS, Settings
from collector.errors import ConfigError

SA = {
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "user",
    "MIXPANEL_SERVICE_ACCOUNT_SECRET": "secret-value-1",
    "MIXPANEL_PROJECT_ID": "7",
}


def test_defaults_are_sane_and_region_picks_the_endpoint() -> None:
    s = Settings.from_env(SA)
    assert s.export_url == REGION_URLS["us"]
    assert s.export_deadline_seconds < 300  # under Cloud Run's default request timeout
    assert s.export_queries_per_hour == 60
    assert Settings.from_env({**SA, "MIXPANEL_REGION": "eu"}).export_url == REGION_URLS["eu"]
    assert Settings.from_env({**SA, "MIXPANEL_REGION": "IN"}).export_url == REGION_URLS["in"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"])
def test_only_an_export_on_this_machine_may_have_more_than_mixpanels_query_limits(
    host: str,
) -> None:
    # A simulator enforces no limit, so `serve --simulator` gives the service a budget it cannot
    # spend; Mixpanel enforces 60 an hour and 3 a second per project, so nothing else may.
    more = {"EXPORT_QUERIES_PER_HOUR": "100000", "EXPORT_QUERIES_PER_SECOND": "1000"}
    local = Settings.from_env({**SA, "MIXPANEL_EXPORT_URL": f"http://{host}:8081/e", **more})
    assert (local.export_queries_per_hour, local.export_queries_per_second) == (100000, 1000)
    with pytest.raises(ConfigError) as err:
        Settings.from_env(
            {
                **SA,
                "MIXPANEL_EXPORT_URL": f"http://{host}/e",
                **more,
                "EXPORT_QUERIES_PER_SECOND": "1001",
            }
        )
    assert "EXPORT_QUERIES_PER_SECOND=1001 is out of range: allowed 1 to 1000" in err.value.message


@pytest.mark.parametrize(
    "url", [{}, {"MIXPANEL_EXPORT_URL": "https://proxy.example.com/api/2.0/export"}]
)
def test_mixpanel_and_any_other_export_keep_mixpanels_query_limits(url: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SA, **url, "EXPORT_QUERIES_PER_HOUR": "61"})
    assert err.value.message == (
        "invalid configuration: EXPORT_QUERIES_PER_HOUR=61 is out of range: allowed 1 to "
        "60 (Mixpanel's limit per project; only an export on this machine, a loopback "
        "MIXPANEL_EXPORT_URL such as the simulator, may be given up to 100000)"
    )


def test_an_export_url_that_does_not_parse_is_one_refusal_not_a_traceback() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SA, "MIXPANEL_EXPORT_URL": "http://[::1"})
    assert err.value.message == (
        "invalid configuration: MIXPANEL_EXPORT_URL='http://[::1' is not an http(s) URL"
    )


def test_export_url_overrides_the_region() -> None:
    s = Settings.from_env({**SA, "MIXPANEL_REGION": "eu", "MIXPANEL_EXPORT_URL": "http://x/e"})
    assert s.export_url == "http://x/e"


def test_missing_credentials_is_a_startup_error_naming_the_settings() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({})
    assert "MIXPANEL_SERVICE_ACCOUNT_USERNAME" in err.value.message
    assert "MIXPANEL_API_SECRET" in err.value.message


def test_partial_service_account_names_what_is_missing() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"MIXPANEL_SERVICE_ACCOUNT_USERNAME": "u"})
    assert "MIXPANEL_SERVICE_ACCOUNT_SECRET" in err.value.message
    assert "MIXPANEL_PROJECT_ID" in err.value.message


def test_service_account_and_legacy_secret_together_are_contradictory() -> None:
    with pytest.raises(ConfigError, match="unset one of them"):
        Settings.from_env({**SA, "MIXPANEL_API_SECRET": "legacy-secret"})


def test_legacy_secret_alone_is_accepted() -> None:
    s = Settings.from_env({"MIXPANEL_API_SECRET": "legacy-secret"})
    assert s.auth_mode == "api_secret"
    assert s.secrets() == ["legacy-secret"]


def test_every_problem_is_reported_at_once_with_the_setting_name() -> None:
    env = {
        **SA,
        "EXPORT_DEADLINE_SECONDS": "soon",
        "EXPORT_MAX_ATTEMPTS": "0",
        "MIXPANEL_REGION": "mars",
        "MIXPANEL_PROJECT_TIMEZONE": "Nowhere/City",
        "EXPORT_GZIP": "maybe",
        "EXPORT_QUERIES_PER_HOUR": "500",
    }
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    for name in (
        "EXPORT_DEADLINE_SECONDS",
        "EXPORT_MAX_ATTEMPTS",
        "MIXPANEL_REGION",
        "MIXPANEL_PROJECT_TIMEZONE",
        "EXPORT_GZIP",
        "EXPORT_QUERIES_PER_HOUR",
    ):
        assert name in err.value.message


def test_secrets_never_show_in_repr() -> None:
    s = Settings.from_env(SA)
    assert "secret-value-1" not in repr(s)
    assert "secret-value-1" not in str(s.service_account_secret)


def test_log_format_follows_cloud_run() -> None:
    assert Settings.from_env(SA).log_format == "text"
    assert Settings.from_env({**SA, "K_SERVICE": "rt-mp-collector"}).log_format == "json"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("EXPORT_DEADLINE_SECOND", "EXPORT_DEADLINE_SECONDS"),
        ("MIXPANEL_REIGON", "MIXPANEL_REGION"),
        ("STATE_STOR", "STATE_STORE"),
        ("GUNICORN_WORKER", "GUNICORN_WORKERS"),
    ],
)
def test_a_misspelt_setting_stops_start_up_naming_the_closest_one(typo: str, meant: str) -> None:
    # Before, EXPORT_DEADLINE_SECOND=30 started the service with the 120 s default.
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SA, typo: "30"})
    assert f"{typo} is not a setting of this service: did you mean {meant}?" in err.value.message


def test_an_unknown_name_under_a_prefix_with_nothing_close_says_to_unset_it() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SA, "NOTIFY_PIGEON": "yes"})
    assert "NOTIFY_PIGEON is not a setting of this service: no setting has that name" in (
        err.value.message
    )


def test_a_misspelt_secret_is_named_and_its_value_never_shown() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SA, "MIXPANEL_SERVICE_ACCOUNT_SECRT": "hunter2-value"})
    assert "did you mean MIXPANEL_SERVICE_ACCOUNT_SECRET?" in err.value.message
    assert "hunter2-value" not in err.value.message


def test_gunicorns_own_variables_and_other_prefixes_are_left_alone() -> None:
    env = {
        **SA,
        "GUNICORN_CMD_ARGS": "--log-level debug",  # gunicorn reads it itself
        "GUNICORN_WORKERS": "2",
        "GUNICORN_HOST": "0.0.0.0",
        "SLACK_WEBHOOK_URL": "https://hooks.example/x",  # not a prefix of the service
        "K_SERVICE": "rt-mp-collector",
        "HOME": "/root",
    }
    assert Settings.from_env(env).log_format == "json"


def test_variables_the_rules_file_names_for_its_secrets_are_legitimate(tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "notifiers:\n"
        "  ops: {type: webhook, url_env: NOTIFY_OPS_URL, signing_key_env: NOTIFY_OPS_KEY}\n"
        "rules: []\n"
    )
    env = {
        **SA,
        "COLLECTOR_RULES": str(rules),
        "STATE_STORE": f"file:{tmp_path / 'state.json'}",
        "NOTIFY_OPS_URL": "https://ops.example/hook",
        "NOTIFY_OPS_KEY": "k" * 32,
    }
    assert Settings.from_env(env).collector_rules == str(rules)
    with pytest.raises(ConfigError, match="NOTIFY_OPS_URI is not a setting"):
        Settings.from_env({**env, "NOTIFY_OPS_URI": "https://ops.example/hook"})


def test_every_variable_name_the_code_spells_out_is_a_known_setting() -> None:
    # A setting read anywhere but through Settings (os.environ["EXPORT_NEW"] in a module) would
    # be refused at start-up as a typo: read it in collector/config.py, or list it in
    # collector/env_names.py if gunicorn reads it.
    import ast
    import re

    from collector.config import setting_names
    from collector.env_names import GUNICORN_NAMES, PREFIXES
    from tests.helpers import ROOT

    name = re.compile("^(" + "|".join(PREFIXES) + ")[A-Z0-9_]*[A-Z0-9]$")
    spelt = {
        node.value
        for path in [*(ROOT / "collector").rglob("*.py"), ROOT / "gunicorn.conf.py"]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and name.match(node.value)
    }
    assert spelt and spelt <= setting_names() | GUNICORN_NAMES, spelt - setting_names()
