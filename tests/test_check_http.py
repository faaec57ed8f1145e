"""`/check` as an HTTP endpoint: how it reads its parameters and the summary entry it writes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.stores import file_document
from tests.helpers import CountingReader, json_entries, make_settings

RULES = {
    "rules": [
        {"name": "a", "metric": "events", "window_minutes": 5, "above": 10**9},
        {"name": "b", "metric": "events", "window_minutes": 5, "above": 10**9},
    ]
}


def app_for(tmp_path: Path, **env: str) -> tuple[Flask, CountingReader]:
    settings = make_settings(LOG_FORMAT="json", **env)
    reader = CountingReader(settings)
    app = create_app(
        settings,
        reader=reader,
        rules=parse_rules(RULES, {}),
        store=file_document(tmp_path / "state.json"),
    )
    return app, reader


def summaries(out: str) -> list[dict[str, Any]]:
    return [e for e in json_entries(out) if e.get("summary")]


def test_check_reads_a_chunked_json_body(tmp_path: Path) -> None:
    app, _ = app_for(tmp_path)
    r = app.test_client().post(
        "/check",
        input_stream=io.BytesIO(b'{"rule": ["b"]}'),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        # What gunicorn tells the app about a chunked body it has de-chunked.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert r.status_code == 200, r.get_json()
    assert [rule["name"] for rule in r.get_json()["rules"]] == ["b"]


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"rule=b", "application/x-www-form-urlencoded", "send parameters as a JSON object"),
        (b'{"rule": ', "application/json", "the request body is not valid JSON"),
        (b'["b"]', "application/json", "the JSON body must be an object"),
    ],
)
def test_a_check_body_that_is_not_a_json_object_is_refused_before_any_query(
    tmp_path: Path, body: bytes, content_type: str, error: str
) -> None:
    app, reader = app_for(tmp_path)
    r = app.test_client().post("/check", data=body, content_type=content_type)
    assert r.status_code == 400
    assert r.get_json()["code"] == "bad_request"
    assert r.get_json()["error"].startswith(error)
    assert reader.calls == 0


def test_a_failed_check_summary_carries_its_code_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = app_for(tmp_path)
    r = app.test_client().get("/check?rule=nope")
    assert r.status_code == 400
    [summary] = summaries(capsys.readouterr().out)
    assert summary["status"] == 400
    assert summary["code"] == "bad_request"
    assert summary["error"] == r.get_json()["error"]
    assert summary["severity"] == "WARNING"


def test_a_successful_check_summary_has_no_error_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = app_for(tmp_path)
    assert app.test_client().get("/check").status_code == 200
    [summary] = summaries(capsys.readouterr().out)
    assert (summary["status"], summary["rules"], summary["states"]) == (200, 2, {"OK": 2})
    assert "code" not in summary and "error" not in summary
