"""Structured logs as Cloud Logging reads them, produced by the real StructuredLogHandler."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import responses

from collector.app import create_app
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from tests.helpers import SA_SECRET, json_entries, make_settings

URL = "https://mp.test/api/2.0/export"
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
T = int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp())
GOOD = b'{"event":"A","properties":{"time":%d,"distinct_id":"a","$insert_id":"1"}}\n' % (T + 1)


def app_entries(text: str) -> list[dict]:
    # The handler's first line in a process is a one-off diagnostic entry.
    return [
        e for e in json_entries(text) if "logging.googleapis.com/diagnostic" not in json.dumps(e)
    ]


@responses.activate
def test_summary_and_attempt_warnings_are_structured_with_trace(capsys) -> None:
    settings = make_settings(URL, LOG_FORMAT="json", GOOGLE_CLOUD_PROJECT="my-proj")
    reader = ExportReader(settings, QueryBudget(60, 3), now=lambda: NOW, sleep=lambda s: None)
    app = create_app(settings, reader=reader, now=lambda: NOW)
    responses.get(URL, status=503, body="Service Unavailable")
    # A line that is JSON but no event (no time), skipped; the body still ends on an event.
    responses.get(
        URL,
        body=b'{"event":"A","properties":{"distinct_id":"x"}}\n' + GOOD,
        auto_calculate_content_length=True,
    )
    r = app.test_client().get(
        "/events?from=2026-11-23T10:00:00Z&to=2026-11-23T11:00:00Z",
        headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
    )
    assert r.status_code == 200
    entries = app_entries(capsys.readouterr().out)

    (attempt,) = [e for e in entries if e["message"].startswith("export attempt")]
    assert attempt["severity"] == "WARNING"
    assert attempt["kind"] == "http_5xx" and attempt["next"] == "retry"
    assert {"bytes", "events", "wait"} <= set(attempt)

    (summary,) = [e for e in entries if e.get("summary")]
    assert summary["severity"] == "INFO"
    assert summary["logging.googleapis.com/trace"] == (
        "projects/my-proj/traces/105445aa7843bc8bf206b12000100000"
    )
    body = r.get_json()
    assert summary["value"] == body["value"] == 1 and summary["complete"] is True
    assert summary["export"] == body["export"]
    assert summary["export"]["bad_lines"] == 1

    (bad,) = [e for e in entries if "bad lines" in e["message"]]
    assert bad["samples"] and all(len(s) < 260 for s in bad["samples"])

    assert all(SA_SECRET not in json.dumps(e) for e in entries)


def test_redaction_covers_messages_fields_and_exceptions(capsys) -> None:
    settings = make_settings(URL, LOG_FORMAT="json")
    create_app(settings)
    import logging

    log = logging.getLogger("collector.test")
    log.warning("token %s", SA_SECRET, extra={"json_fields": {"detail": f"x{SA_SECRET}y"}})
    try:
        raise RuntimeError(f"failed with {SA_SECRET}")
    except RuntimeError:
        log.exception("boom")
    out = capsys.readouterr().out
    assert "token ***" in out and "x***y" in out and "failed with ***" in out
    assert SA_SECRET not in out


def test_webhook_urls_and_keys_from_the_rules_file_are_redacted(capsys, tmp_path) -> None:
    import logging

    from collector.alerting.rules import parse_rules

    hook_url, key = "https://hooks.example/T000/B000/XyZsecretPath", "hook-signing-key-777"
    rules = parse_rules(
        {
            "notifiers": {"ops": {"type": "webhook", "url_env": "U", "signing_key_env": "K"}},
            "rules": [{"name": "r", "metric": "events", "window_minutes": 5, "above": 1}],
        },
        {"U": hook_url, "K": key},
    )
    state = f"file:{tmp_path / 'state.json'}"
    create_app(make_settings(URL, LOG_FORMAT="json", STATE_STORE=state), rules=rules)
    logging.getLogger("collector.test").warning("posting to %s with %s", hook_url, key)
    out = capsys.readouterr().out
    assert hook_url not in out and key not in out and "posting to *** with ***" in out
