"""The HTTP contract with the real reader behind it and intercepted upstream HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import responses

from collector.app import create_app
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from tests.helpers import make_settings

URL = "https://mp.test/api/2.0/export"
NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
T = int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp())
BODY = b"".join(
    b'{"event":"%s","properties":{"time":%d,"distinct_id":"%s","$insert_id":"%d"}}\n'
    % (name, T + i, did, i)
    for i, (name, did) in enumerate(
        [(b"Sign Up", b"a"), (b"Sign Up", b"b"), (b"Purchase", b"a"), (b"Sign Up", b"a")]
    )
)


@pytest.fixture
def client():
    settings = make_settings(URL, EXPORT_MAX_ATTEMPTS="2")
    reader = ExportReader(settings, QueryBudget(60, 3), now=lambda: NOW, sleep=lambda s: None)
    app = create_app(settings, reader=reader, now=lambda: NOW)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        yield app.test_client(), upstream


WINDOW = "from=2026-11-23T10:00:00Z&to=2026-11-23T11:00:00Z"


def test_distinct_users_shape(client) -> None:
    http, upstream = client
    upstream.get(URL, body=BODY, auto_calculate_content_length=True)
    r = http.get(f"/distinct-users?{WINDOW}")
    assert r.status_code == 200
    body = r.get_json()
    assert body["metric"] == "distinct_users" and body["value"] == 2 and body["complete"] is True
    assert body["window"] == {"from": "2026-11-23T10:00:00Z", "to": "2026-11-23T11:00:00Z"}
    export = body["export"]
    assert export["attempts"] == 1 and export["events"] == 4 and export["errors"] == []
    assert set(export) >= {"bad_lines", "unreadable", "bytes", "seconds"}


def test_events_by_name_from_a_json_body(client) -> None:
    http, upstream = client
    upstream.get(URL, body=BODY, auto_calculate_content_length=True)
    r = http.post("/events", json={"from": T, "to": T + 3600, "event": ["Sign Up", "Purchase"]})
    assert r.status_code == 200
    body = r.get_json()
    assert body["value"] == 4 and body["by_event"] == {"Purchase": 1, "Sign Up": 3}
    assert body["event"] == ["Sign Up", "Purchase"]


def test_minutes_window_ends_lag_minutes_before_now(client) -> None:
    http, upstream = client
    upstream.get(URL, body=BODY, auto_calculate_content_length=True)
    body = http.get("/distinct-users?minutes=30&lag=10").get_json()
    assert body["window"] == {"from": "2026-11-23T11:20:00Z", "to": "2026-11-23T11:50:00Z"}
    assert body["value"] == 0  # the events are outside it: filtered client-side


def test_active_users_defaults_to_today_up_to_now(client) -> None:
    http, upstream = client
    upstream.get(URL, body=BODY, auto_calculate_content_length=True)
    body = http.get("/active-users").get_json()
    assert body["window"] == {"from": "2026-11-23T00:00:00Z", "to": "2026-11-23T12:00:30Z"}
    assert body["value"] == 2


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("/events?color=red", "unknown parameter"),
        ("/events?from=2026-11-23T11:00:00Z&to=2026-11-23T10:00:00Z", "must be before"),
        ("/events?from=2026-11-23T10:00:00Z", "give both"),
        ("/events?from=2026-11-01T00:00:00Z&to=2026-11-20T00:00:00Z", "MAX_WINDOW_DAYS"),
        ("/events?from=never&to=2026-11-23T10:00:00Z", "from='never'"),
        ("/events?minutes=0", "out of range"),
        ("/events?minutes=5&minutes=6", "more than once"),
        ("/events?from=2026-12-01T00:00:00Z&to=2026-12-01T01:00:00Z", "future"),
        ("/active-users?date=2026-13-01", "YYYY-MM-DD"),
        ("/active-users?date=2026-11-24", "future"),
    ],
)
def test_bad_parameters_are_400_and_spend_no_query(client, query, fragment) -> None:
    http, upstream = client
    r = http.get(query)
    assert r.status_code == 400
    assert fragment in r.get_json()["error"]
    assert len(upstream.calls) == 0


def test_too_many_event_names_and_conflicting_sources(client) -> None:
    http, upstream = client
    r = http.get("/events?" + "&".join(f"event=e{i}" for i in range(101)))
    assert r.status_code == 400 and "too many" in r.get_json()["error"]
    r = http.post("/events?minutes=5", json={"minutes": 6})
    assert r.status_code == 400 and "both" in r.get_json()["error"]
    r = http.post("/events", data="minutes=5", content_type="text/plain")
    assert r.status_code == 400 and "JSON" in r.get_json()["error"]
    assert len(upstream.calls) == 0


def test_upstream_refusal_is_502_with_mixpanel_text(client) -> None:
    http, upstream = client
    upstream.get(URL, status=401, json={"error": "Invalid credentials"})
    r = http.get(f"/events?{WINDOW}")
    assert r.status_code == 502
    body = r.get_json()
    assert body["upstream"] == {"status": 401, "error": "Invalid credentials"}
    assert "MIXPANEL_SERVICE_ACCOUNT_SECRET" in body["error"]


def test_nothing_usable_is_503_with_the_figures(client) -> None:
    http, upstream = client
    upstream.get(URL, status=503, body="Service Unavailable")
    r = http.get(f"/events?{WINDOW}")
    assert r.status_code == 503
    body = r.get_json()
    assert body["code"] == "upstream_unavailable"
    assert body["export"]["attempts"] == 2
    assert [e["kind"] for e in body["export"]["errors"]] == ["http_5xx", "http_5xx"]


def test_routing_errors_and_oversized_bodies_are_json(client) -> None:
    http, _ = client
    assert http.get("/nope").get_json()["code"] == "http_error"
    r = http.delete("/events")
    assert r.status_code == 405 and r.is_json
    r = http.post("/events", data=b"{" + b" " * 70_000 + b"}", content_type="application/json")
    assert r.status_code == 413 and r.is_json


def test_healthz_never_calls_mixpanel(client) -> None:
    http, upstream = client
    r = http.get("/healthz")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"
    assert len(upstream.calls) == 0


def test_head_spends_no_export_query(client) -> None:
    http, upstream = client
    assert http.head(f"/events?{WINDOW}").status_code == 405
    assert http.head("/healthz").status_code == 200
    assert len(upstream.calls) == 0


def test_the_404_hint_lists_every_endpoint(client) -> None:
    http, _ = client
    body = http.get("/distinct-user?minutes=15").get_json()
    assert body == {
        "error": "404 Not Found",
        "code": "http_error",
        "hint": "endpoints: /distinct-users, /events, /active-users, /check, /rules, /status, "
        "/healthz",
    }


@pytest.mark.parametrize(
    ("method", "path", "hint"),
    [
        ("POST", "/healthz", "use GET for /healthz"),  # it said "use GET or POST"
        ("DELETE", "/events", "use GET or POST for /events"),
        ("PUT", "/check", "use GET or POST for /check"),
        ("HEAD", "/distinct-users", "use GET or POST for /distinct-users"),
    ],
)
def test_the_405_hint_names_the_methods_of_that_path(client, method, path, hint) -> None:
    http, upstream = client
    r = http.open(path, method=method)
    assert r.status_code == 405
    if method != "HEAD":  # a HEAD answer has no body to read
        assert r.get_json()["hint"] == hint
    assert len(upstream.calls) == 0
