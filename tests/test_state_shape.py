"""The rule-state document is checked whole before a run uses it, and never reset to pass."""

from __future__ import annotations

from typing import Any

import pytest

from collector.alerting.state import validate
from collector.errors import CorruptState

PENDING = {
    "id": "busy:firing:2026-11-23T11:00:00Z:hook",
    "notifier": "hook",
    "rule": "busy",
    "kind": "firing",
    "severity": "warning",
    "state": "ALERTING",
    "metric": "events",
    "condition": "above",
    "threshold": 0.0,
    "value": 12.0,
    "complete": True,
    "window_from": "2026-11-23T10:30:00Z",
    "window_to": "2026-11-23T11:00:00Z",
    "created_at": "2026-11-23T11:00:00Z",
}


def doc(**state: Any) -> dict[str, Any]:
    base = {"firing": True, "decided": "ALERTING", "breaching_runs": 2, "pending": [PENDING]}
    return {"rules": {"busy": {**base, **state}}}


@pytest.mark.parametrize(
    "good",
    [
        {},
        {"rules": {}},
        doc(),
        doc(last_notified_at="2026-11-23T11:00:00"),  # written by a clock without a zone
        doc(added_by_a_later_version=[1, 2]),
        doc(pending=[{**PENDING, "claim": {"run": "r1", "until": "2026-11-23T11:02:00+00:00"}}]),
    ],
)
def test_a_sound_document_passes(good: dict[str, Any]) -> None:
    validate(good, "file:/s.json")


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"rules": []}, "'rules' is not an object"),
        ({"rules": {"busy": 3}}, "rules['busy'] is not an object"),
        (doc(firing="yes"), "rules['busy'].firing is not true or false"),
        (doc(decided="NO_DATA"), "rules['busy'].decided is not one of OK, ALERTING"),
        (doc(undecided_runs=-1), "rules['busy'].undecided_runs is -1, not a whole number"),
        (doc(last_notified_at="yesterday"), "rules['busy'].last_notified_at is not an ISO-8601"),
        (doc(pending={}), "rules['busy'].pending is not a list"),
        (doc(pending=["x"]), "rules['busy'].pending[0] is not an object"),
        (
            doc(pending=[{k: v for k, v in PENDING.items() if k != "rule"}]),
            "rules['busy'].pending[0] is not a notification (notification is missing rule)",
        ),
        (doc(pending=[{**PENDING, "id": ""}]), "rules['busy'].pending[0] has no id"),
        (doc(pending=[{**PENDING, "attempts": 1.5}]), "has attempts that are not a whole number"),
        (doc(pending=[{**PENDING, "claim": {"run": "r1"}}]), "has a claim without a run and"),
    ],
)
def test_a_document_a_run_could_not_use_is_named_not_repaired(
    bad: dict[str, Any], problem: str
) -> None:
    with pytest.raises(CorruptState) as caught:
        validate(bad, "gs://b/state.json")
    message = str(caught.value)
    assert message.startswith("gs://b/state.json holds rule state that cannot be used: ")
    assert problem in message
    assert "rules that are firing fire again" in message
