"""Claims on pending notifications: pure lease rules, and a dead run's claims taken over."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.alerting.claims import claim, release, settle
from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.stores import file_document
from tests.check_service import KEY, firing_rule
from tests.helpers import CountingReader, make_settings
from tests.test_state_shape import PENDING
from tests.webhook_receiver import WebhookReceiver

NOW = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=2)


def doc(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"rules": {"busy": {"pending": [copy.deepcopy(e) for e in entries]}}}


def entry(i: int, **extra: Any) -> dict[str, Any]:
    return {**PENDING, "id": f"busy:firing:{i}", **extra}


def test_a_claim_takes_what_no_live_lease_holds() -> None:
    d = doc(entry(1), entry(2, claim={"run": "other", "until": "2026-11-23T11:01:00Z"}))
    claimed, held = claim(d, ["busy"], "me", NOW, LATER)
    assert [c["id"] for c in claimed] == ["busy:firing:1"]
    assert held == {"busy:firing:2": "2026-11-23T11:01:00Z"}
    assert d["rules"]["busy"]["pending"][0]["claim"] == {
        "run": "me",
        "until": "2026-11-23T11:02:00Z",
    }


def test_an_expired_lease_is_taken_over() -> None:
    d = doc(entry(1, claim={"run": "dead", "until": "2026-11-23T10:59:59Z"}))
    claimed, held = claim(d, ["busy"], "me", NOW, LATER)
    assert ([c["id"] for c in claimed], held) == (["busy:firing:1"], {})


def test_only_the_named_rules_are_claimed() -> None:
    d = doc(entry(1))
    assert claim(d, ["quiet"], "me", NOW, LATER) == ([], {})
    assert "claim" not in d["rules"]["busy"]["pending"][0]


def test_settling_a_delivery_removes_it_whoever_holds_it_now() -> None:
    d = doc(entry(1, claim={"run": "other", "until": "x"}), entry(2))
    settle(d, "me", "busy:firing:1", None)
    assert [p["id"] for p in d["rules"]["busy"]["pending"]] == ["busy:firing:2"]


def test_settling_a_failure_releases_our_claim_with_the_error() -> None:
    d = doc(entry(1, claim={"run": "me", "until": "x"}, attempts=1))
    settle(d, "me", "busy:firing:1", "HTTP 500")
    [left] = d["rules"]["busy"]["pending"]
    assert (left.get("claim"), left["attempts"], left["last_error"]) == (None, 2, "HTTP 500")


def test_a_failure_does_not_touch_a_claim_another_run_took_over() -> None:
    d = doc(entry(1, claim={"run": "other", "until": "x"}))
    settle(d, "me", "busy:firing:1", "HTTP 500")
    release(d, "me", ["busy:firing:1"])
    assert d == doc(entry(1, claim={"run": "other", "until": "x"}))


def test_a_dead_runs_claims_are_delivered_once_its_lease_expires(tmp_path: Path) -> None:
    below_one = {k: v for k, v in firing_rule("busy", "hook").items() if k != "above"}
    below_one["below"] = 1
    store = file_document(tmp_path / "state.json")
    with WebhookReceiver(signing_key=KEY) as rx:
        rules = parse_rules(
            {
                "notifiers": {"hook": {"type": "webhook", "url_env": "U", "signing_key_env": "K"}},
                # Still breaching on the empty reads of CountingReader: nothing new is owed.
                "rules": [below_one],
            },
            {"U": rx.url, "K": KEY},
        )
        # A run claimed this notification and died (a kill, a crash) before sending it.
        until = (NOW + timedelta(seconds=100)).isoformat()
        dead = entry(1, claim={"run": "dead-run", "until": until})
        store.save(
            {"rules": {"busy": {"firing": True, "decided": "ALERTING", "pending": [dead]}}}, None
        )

        def check_at(moment: datetime) -> dict[str, Any]:
            settings = make_settings()
            app = create_app(
                settings,
                reader=CountingReader(settings),
                now=lambda: moment,
                rules=rules,
                store=store,
            )
            return app.test_client().get("/check").get_json()

        while_alive = check_at(NOW + timedelta(seconds=30))
        assert while_alive["notifications"]["held_by_other_runs"] == 1
        assert (
            "another run is delivering it" in while_alive["rules"][0]["notify_deferred"][dead["id"]]
        )
        assert rx.received == []

        after = check_at(NOW + timedelta(seconds=101))
    assert after["rules"][0]["notified"] == [dead["id"]]
    assert [r["headers"]["x-collector-notification-id"] for r in rx.received] == [dead["id"]]
    assert store.load()[0]["rules"]["busy"]["pending"] == []
