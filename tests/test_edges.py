"""Hostile and odd upstream answers never become a false number, a false alert or a 500.

Every case runs over loopback against the simulator's fault kinds, through the real reader, and
through the Flask app (metric endpoints and `/check`) where the answer's shape matters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.errors import UpstreamRefused, UpstreamUnavailable
from collector.export import zone_probe
from collector.export.attempt import CHUNK_BYTES, ENCODED_CHUNK_BYTES
from collector.export.budget import QueryBudget
from collector.export.decode import MAX_LINE_BYTES
from collector.export.reader import ExportReader
from collector.metrics.answer import MetricRequest
from collector.simulator import Fault, Simulator
from collector.stores import file_document
from collector.window import Window
from tests.conftest import past_window, sim_config
from tests.helpers import compute, make_settings

WINDOW = past_window(60)
T0 = int(WINDOW.start_ts)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config()) as running:
        yield running


def reader_for(sim: Simulator, **env: str) -> ExportReader:
    settings = make_settings(sim.url, EXPORT_MAX_ATTEMPTS="3", **env)
    return ExportReader(settings, QueryBudget(60, 3))


def answer(sim: Simulator, metric: str = "events", window: Window = WINDOW, **env: str) -> dict:
    return compute(MetricRequest(metric, window), reader_for(sim, **env))


def lines(n: int, start: int = 0, **props: object) -> str:
    return "".join(
        json.dumps({"event": "A", "properties": {"time": T0 + i, "distinct_id": f"u{i}", **props}})
        + "\n"
        for i in range(start, start + n)
    )


def check_app(sim: Simulator, tmp_path: Path, condition: dict) -> object:
    """An app with one `/check` rule over WINDOW's hour (the window ends at 'now')."""
    settings = make_settings(sim.url, EXPORT_MAX_ATTEMPTS="2")
    rules = parse_rules(
        {
            "notifiers": {
                "hook": {"type": "webhook", "url_env": "HOOK_URL", "signing_key_env": "KEY"}
            },
            "defaults": {"lag_minutes": 0, "notify": ["hook"]},
            "rules": [{"name": "r", "metric": "events", "window_minutes": 60, **condition}],
        },
        {"HOOK_URL": "http://127.0.0.1:9/hook", "KEY": "k" * 32},
    )
    now = WINDOW.end
    reader = ExportReader(settings, QueryBudget(60, 3), now=lambda: now)
    store = file_document(tmp_path / "state.json")
    return create_app(settings, reader=reader, now=lambda: now, rules=rules, store=store)


# -- the early-end marker, in every form seen -------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "newline"),
    [
        ("terminated early", True),
        ("export terminated early", True),
        ("export terminated early", False),
        ("Terminated Early", True),
        ("[terminated early]", False),
    ],
)
def test_every_marker_form_is_a_lower_bound(sim: Simulator, marker: str, newline: bool) -> None:
    sim.script([Fault.terminated_early(30_000, marker=marker, newline=newline)] * 3)
    body = answer(sim)
    truth = sim.truth(WINDOW.start, WINDOW.end)
    assert body["complete"] is False
    assert 0 < body["value"] < truth.events
    assert [e["kind"] for e in body["export"]["errors"]] == ["terminated_early"] * 3


@pytest.mark.parametrize("marker", ["terminated early", "export terminated early"])
@pytest.mark.parametrize("newline", [True, False])
def test_a_body_that_is_only_the_marker_is_a_503_not_a_zero(
    sim: Simulator, marker: str, newline: bool
) -> None:
    sim.script([Fault.terminated_early(0, marker=marker, newline=newline, alone=True)] * 3)
    with pytest.raises(UpstreamUnavailable) as failed:
        answer(sim)
    assert [e["kind"] for e in failed.value.export["errors"]] == ["terminated_early"] * 3


def test_a_marker_then_a_whole_body_is_exact(sim: Simulator) -> None:
    sim.script([Fault.terminated_early(0, marker="export terminated early", alone=True)])
    body = answer(sim, "distinct_users")
    assert body["complete"] is True
    assert body["value"] == sim.truth(WINDOW.start, WINDOW.end).distinct_users


# -- a 200 that is not an export body ---------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.html(),
        Fault.html(framing="close"),
        Fault.raw_body("<!DOCTYPE html><html><body>Sign in</body></html>\n"),
        Fault.raw_body("Service temporarily unavailable, try again\n"),
        Fault.raw_body("garbage without a newline"),
    ],
    ids=["html", "html-unframed", "html-as-text", "text", "no-newline"],
)
def test_a_page_that_is_not_an_export_body_is_retried_never_a_value(
    sim: Simulator, fault: Fault
) -> None:
    sim.script([fault])
    body = answer(sim)
    assert body["complete"] is True
    assert body["value"] == sim.truth(WINDOW.start, WINDOW.end).events
    first = body["export"]["errors"][0]
    assert first["kind"] == "not_export_body" and first["next"] == "retry"
    sim.script([fault] * 3)
    with pytest.raises(UpstreamUnavailable) as failed:
        answer(sim)
    assert [e["kind"] for e in failed.value.export["errors"]] == ["not_export_body"] * 3


def test_an_html_page_names_its_title_and_what_to_check(sim: Simulator) -> None:
    sim.script([Fault.html()] * 3)
    with pytest.raises(UpstreamUnavailable) as failed:
        answer(sim)
    message = failed.value.export["errors"][0]["message"]
    assert "HTML page ('Wi-Fi sign in')" in message and "MIXPANEL_EXPORT_URL" in message


def test_a_below_rule_never_fires_on_a_portal_page(sim: Simulator, tmp_path: Path) -> None:
    sim.script([Fault.html()] * 2)
    r = check_app(sim, tmp_path, {"below": 10}).test_client().get("/check")
    assert r.status_code == 200
    rule = r.get_json()["rules"][0]
    assert rule["state"] == "ERROR" and rule["owed"] == []


# -- unreadable lines --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event", "distinct_id", "$insert_id"])
@pytest.mark.parametrize("metric", ["events", "distinct_users", "active_users"])
def test_invalid_utf8_in_any_string_gives_a_lower_bound_not_a_500(
    sim: Simulator, field: str, metric: str
) -> None:
    sim.script([Fault.invalid_utf8(count=3, field=field)])
    body = answer(sim, metric)
    truth = sim.truth(WINDOW.start, WINDOW.end)
    assert body["complete"] is False and body["export"]["unreadable"] == 3
    assert "could not be read" in body["note"]
    assert body["value"] <= (truth.events if metric == "events" else truth.distinct_users)
    assert body["export"]["attempts"] == 1  # read to its end: a retry would read the same


def test_invalid_utf8_holds_a_below_rule_and_every_endpoint_answers_json(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.script([Fault.invalid_utf8(count=1, field="event")])
    r = check_app(sim, tmp_path, {"below": 10**9}).test_client().get("/check")
    assert r.status_code == 200
    rule = r.get_json()["rules"][0]
    assert rule["complete"] is False and rule["state"] == "NO_DATA" and rule["owed"] == []
    http = create_app(make_settings(sim.url)).test_client()
    for path in ("/events", "/distinct-users", "/active-users"):
        sim.script([Fault.invalid_utf8(count=1, field="distinct_id")])
        query = "" if path == "/active-users" else "?minutes=60&lag=5"
        r = http.get(path + query)
        assert r.status_code == 200 and r.get_json()["complete"] is False, path


def test_a_line_over_the_cap_is_unreadable_and_the_cap_is_above_mixpanels_limit(
    sim: Simulator,
) -> None:
    assert MAX_LINE_BYTES >= 1_000_000  # Mixpanel accepts events up to 1 MB
    huge = '{"event":"A","properties":{"pad":"' + "x" * (MAX_LINE_BYTES + 10) + '"}}\n'
    sim.script([Fault.raw_body(lines(5) + huge + lines(5, start=5))])
    body = answer(sim)
    assert body["complete"] is False and body["value"] == 10
    assert body["export"]["unreadable"] == 1 and body["export"]["bad_lines"] == 1


def test_numbers_out_of_range_are_not_events_even_in_a_project_zone(sim: Simulator) -> None:
    odd = [
        '{"event":"A","properties":{"time":1e300,"distinct_id":"x"}}\n',
        '{"event":"A","properties":{"time":-1,"distinct_id":"x"}}\n',
        '{"event":"A","properties":{"time":18446744073709551615,"distinct_id":"x"}}\n',
        json.dumps({"event": "A", "properties": {"time": T0, "distinct_id": {"id": 1}}}) + "\n",
        '{"event":"A","properties":{"time":true,"distinct_id":"x"}}\n',
    ]
    sim.script([Fault.raw_body(lines(3) + "".join(odd) + lines(2, start=3))])
    body = answer(sim, MIXPANEL_PROJECT_TIMEZONE="America/Los_Angeles")
    assert body["complete"] is True  # not events by Mixpanel's rules: nothing was missed
    assert body["export"]["bad_lines"] == len(odd) and body["export"]["unreadable"] == 0


# -- bodies whose end cannot be proven ------------------------------------------------------


@pytest.mark.parametrize("after_bytes", [0, 40_000], ids=["whole", "cut-on-a-line"])
def test_a_close_delimited_body_is_a_lower_bound_that_names_the_proxy(
    sim: Simulator, after_bytes: int
) -> None:
    sim.script([Fault.unframed(after_bytes)])
    body = answer(sim, EXPORT_GZIP="false")
    truth = sim.truth(WINDOW.start, WINDOW.end)
    assert body["complete"] is False and "proxy" in body["note"]
    assert body["value"] <= truth.events
    if after_bytes:
        assert body["value"] < truth.events
    assert body["export"]["attempts"] == 1


def test_a_gzip_body_without_framing_is_proven_by_its_trailer(sim: Simulator) -> None:
    sim.script([Fault.unframed(0)])
    body = answer(sim, EXPORT_GZIP="true")
    assert body["complete"] is True
    assert body["value"] == sim.truth(WINDOW.start, WINDOW.end).events


@pytest.mark.parametrize("gzip", [False, True])
def test_a_plain_body_is_read_in_2_mib_pieces_and_a_gzip_body_in_1_mib(
    sim: Simulator, gzip: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests' own iter_content, over the simulator's real HTTP answer; only the sizes asked
    # of it are recorded. A gzip read holds what urllib3 inflates and keeps: it stays small.
    asked: list[int] = []
    real = requests.Response.iter_content

    def recording(self: requests.Response, chunk_size: int = 1, decode_unicode: bool = False):
        asked.append(chunk_size)
        return real(self, chunk_size, decode_unicode)

    monkeypatch.setattr(requests.Response, "iter_content", recording)
    body = answer(sim, EXPORT_GZIP=str(gzip).lower())
    assert body["complete"] is True
    assert asked and set(asked) == {ENCODED_CHUNK_BYTES if gzip else CHUNK_BYTES}
    assert (CHUNK_BYTES, ENCODED_CHUNK_BYTES) == (2 * 1024 * 1024, 1024 * 1024)


def test_a_below_rule_never_fires_on_an_unframed_half(sim: Simulator, tmp_path: Path) -> None:
    sim.script([Fault.unframed(20_000)] * 2)
    app = check_app(sim, tmp_path, {"below": 10**9})
    rule = app.test_client().get("/check").get_json()["rules"][0]
    assert rule["complete"] is False and rule["state"] == "NO_DATA"


# -- Mixpanel refusing the query --------------------------------------------------------------


def test_a_where_mixpanel_refuses_is_dropped_once_and_the_answer_says_so(sim: Simulator) -> None:
    refusal = json.dumps({"error": "invalid where expression: unknown function datetime"})
    sim.script([Fault.status(400, body=refusal)])
    reader = reader_for(sim)
    before = len(sim.requests)
    body = compute(MetricRequest("events", WINDOW), reader)
    assert body["complete"] is True
    assert body["value"] == sim.truth(WINDOW.start, WINDOW.end).events
    sent = [r["params"] for r in sim.requests[before:]]
    assert ["where" in p for p in sent] == [True, False]
    assert body["export"]["errors"][0]["next"] == "retry without where"
    assert any("refused the `where`" in w for w in body["export"]["warnings"])
    # The process remembers: the next read goes without it and says so again.
    again = compute(MetricRequest("events", WINDOW), reader)
    assert "where" not in sim.requests[-1]["params"] and again["export"]["attempts"] == 1
    assert any("refused the `where`" in w for w in again["export"]["warnings"])


def test_a_400_that_is_not_about_where_is_not_retried(sim: Simulator) -> None:
    sim.script([Fault.status(400, body='{"error": "Unable to authenticate request"}')])
    with pytest.raises(UpstreamRefused) as refused:
        answer(sim)
    assert len(refused.value.export["errors"]) == 1


def test_to_date_later_than_today_names_the_timezone_setting(sim: Simulator) -> None:
    text = '{"error": "to_date cannot be later than today"}'
    sim.script([Fault.status(400, body=text)])
    with pytest.raises(UpstreamRefused) as refused:
        answer(sim)
    assert "MIXPANEL_PROJECT_TIMEZONE" in refused.value.message


def test_a_502_carries_the_real_figures_of_its_attempts(sim: Simulator) -> None:
    sim.script([Fault.reset(after_bytes=30_000), Fault.status(401)])
    with pytest.raises(UpstreamRefused) as refused:
        answer(sim)
    export = refused.value.export
    assert export["attempts"] == 2 and export["seconds"] > 0
    assert export["bytes"] >= 30_000 and export["events"] > 0
    assert [e["kind"] for e in export["errors"]] == ["connection_broken", "http_401"]


# -- a legacy project-zone project on the default UTC setting --------------------------------


def test_a_project_zone_in_the_data_is_named_and_logged_once(monkeypatch) -> None:
    monkeypatch.setattr(zone_probe, "_warned", set())
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("collector.export")
    logger.addHandler(handler)
    try:
        with Simulator(sim_config(project_timezone="America/Los_Angeles")) as zoned:
            first = answer(zoned)
            second = answer(zoned)
    finally:
        logger.removeHandler(handler)
    for body in (first, second):
        (warning,) = [w for w in body["export"]["warnings"] if "TIMEZONE" in w]
        assert "UTC-08:00" in warning and "8 h" in warning  # November: Pacific standard time
    logged = [r for r in records if "MIXPANEL_PROJECT_TIMEZONE" in r.getMessage()]
    assert len(logged) == 1


def test_a_utc_project_gets_no_zone_warning(sim: Simulator) -> None:
    assert "warnings" not in answer(sim)["export"]


# -- many event names -------------------------------------------------------------------------


def test_many_names_keep_the_answer_whole_and_the_summary_entry_small(
    sim: Simulator, capsys
) -> None:
    names = 20_000
    body = "".join(
        json.dumps({"event": f"E{i}", "properties": {"time": T0 + i % 3600, "distinct_id": "u"}})
        + "\n"
        for i in range(names)
    )
    sim.script([Fault.raw_body(body)])
    app = create_app(make_settings(sim.url, LOG_FORMAT="json"))
    window = f"from={T0}&to={T0 + 3600}"
    r = app.test_client().get(f"/events?{window}")
    assert r.status_code == 200
    answered = r.get_json()
    assert answered["value"] == names and len(answered["by_event"]) == names
    entries = [line for line in capsys.readouterr().out.splitlines() if '"summary": true' in line]
    (summary,) = entries
    assert len(summary.encode()) < 64 * 1024
    logged = json.loads(summary)
    assert len(logged["by_event"]) == 50 and logged["by_event_omitted"] == names - 50


def test_a_long_retry_after_answers_503_with_when_to_come_back(sim: Simulator) -> None:
    sim.script([Fault.status(429, retry_after=600)])
    r = create_app(make_settings(sim.url)).test_client().get("/events?minutes=60&lag=5")
    assert r.status_code == 503
    body = r.get_json()
    assert body["retry_in_seconds"] == 600
    assert "Retry-After" in body["error"] and "EXPORT_DEADLINE_SECONDS" not in body["error"]
    assert body["export"]["attempts"] == 1  # no second query spent on a wait that cannot end
