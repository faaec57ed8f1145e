"""Request shape against intercepted HTTP (`responses`): what exactly is sent to Mixpanel."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest
import responses

from collector.config import REGION_URLS, Settings
from collector.errors import UpstreamRefused, UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.metrics.aggregators import EventCounts
from collector.window import Window
from tests.helpers import PROJECT_ID, SA_SECRET, SA_USER, make_settings

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
WINDOW = Window(datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 23, 11, tzinfo=UTC))
T = int(WINDOW.start_ts)
BODY = (
    b'{"event":"Sign Up","properties":{"time":%d,"distinct_id":"a","$insert_id":"1"}}\n'
    b'{"event":"Purchase","properties":{"time":%d,"distinct_id":"b","$insert_id":"2"}}\n'
) % (T + 1, T + 2)


def reader_for(settings: Settings) -> ExportReader:
    return ExportReader(settings, QueryBudget(60, 3), now=lambda: NOW, sleep=lambda s: None)


@responses.activate
def test_service_account_query_shape() -> None:
    settings = make_settings(REGION_URLS["eu"], EXPORT_GZIP="true")
    responses.get(REGION_URLS["eu"], body=BODY, auto_calculate_content_length=True)
    sink = EventCounts()
    report = reader_for(settings).read(ExportQuery(WINDOW, ("Sign Up", "Purchase")), sink)
    assert report.complete and sink.by_event() == {"Purchase": 1, "Sign Up": 1}

    (call,) = responses.calls
    url = urlparse(call.request.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://data-eu.mixpanel.com/api/2.0/export"
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert params == {
        "from_date": "2026-11-23",
        "to_date": "2026-11-23",
        "where": f'properties["$time"] >= datetime({T}) and '
        f'properties["$time"] < datetime({T + 3600})',
        "event": json.dumps(["Sign Up", "Purchase"]),
        "project_id": PROJECT_ID,
    }
    expected = base64.b64encode(f"{SA_USER}:{SA_SECRET}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"
    assert call.request.headers["Accept-Encoding"] == "gzip"


@responses.activate
def test_legacy_secret_is_the_basic_user_with_empty_password() -> None:
    settings = Settings.from_env(
        {"MIXPANEL_API_SECRET": "legacy-abc", "MIXPANEL_EXPORT_URL": "https://mp.test/export"}
    )
    responses.get("https://mp.test/export", body=BODY, auto_calculate_content_length=True)
    reader_for(settings).read(ExportQuery(WINDOW), EventCounts())
    (call,) = responses.calls
    assert (
        call.request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"legacy-abc:").decode()
    )
    assert "project_id" not in parse_qs(urlparse(call.request.url).query)


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (
            400,
            {"request": "/api/2.0/export", "error": "Unable to authenticate request"},
            "Unable to authenticate request",
        ),
        (401, {"error": "Invalid credentials"}, "Invalid credentials"),
        (402, {"error": "Your plan does not allow API calls"}, "plan does not allow"),
        (403, "Forbidden", "Forbidden"),
    ],
)
@responses.activate
def test_refusals_fail_at_once_with_mixpanel_status_and_text(status, body, text) -> None:
    settings = make_settings("https://mp.test/export")
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    responses.get("https://mp.test/export", status=status, **kwargs)
    with pytest.raises(UpstreamRefused) as err:
        reader_for(settings).read(ExportQuery(WINDOW), EventCounts())
    assert len(responses.calls) == 1  # never retried
    assert err.value.upstream_status == status
    assert text in err.value.message and str(status) in err.value.message
    assert SA_SECRET not in err.value.message


@responses.activate
def test_5xx_and_429_are_retried_then_complete() -> None:
    settings = make_settings("https://mp.test/export")
    responses.get("https://mp.test/export", status=503, body="Service Unavailable")
    responses.get(
        "https://mp.test/export", status=429, json={"error": "rate"}, headers={"Retry-After": "0"}
    )
    responses.get("https://mp.test/export", body=BODY, auto_calculate_content_length=True)
    report = reader_for(settings).read(ExportQuery(WINDOW), EventCounts())
    assert report.complete and report.attempts == 3
    assert [e.kind for e in report.errors] == ["http_5xx", "http_429"]
    assert report.errors[0].status == 503


@responses.activate
def test_all_attempts_failing_is_unavailable_with_figures() -> None:
    settings = make_settings("https://mp.test/export", EXPORT_MAX_ATTEMPTS="3")
    responses.get("https://mp.test/export", status=500, body="boom")
    with pytest.raises(UpstreamUnavailable) as err:
        reader_for(settings).read(ExportQuery(WINDOW), EventCounts())
    assert len(responses.calls) == 3
    assert err.value.export is not None and err.value.export["attempts"] == 3
    assert "EXPORT_MAX_ATTEMPTS" in err.value.message or "last error" in err.value.message
