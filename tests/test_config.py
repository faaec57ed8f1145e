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
