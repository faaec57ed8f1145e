"""A state store that fails in the middle of a run, after its query: 503, and nothing lost.

The store here is a real file store behind a wrapper that refuses its Nth save: a real store
cannot be made to fail at one exact point of a run from outside. Everything else is real: the
app, the loopback receiver, the claims and their lease.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.errors import StoreError
from collector.stores import Document
from collector.stores.directory import DirBlobStore
from tests.check_service import KEY
from tests.helpers import CountingReader, make_settings
from tests.webhook_receiver import WebhookReceiver

NOW = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


class FailingSave(Document):
    """Refuses the `fail_at`-th save from now on (1: the preflight's), once."""

    fail_at: int | None = None

    def save(self, doc: dict[str, Any], version: Any) -> Any:
        if self.fail_at is not None:
            self.fail_at -= 1
            if self.fail_at == 0:
                self.fail_at = None
                raise StoreError(f"cannot write {self.describe()}: Input/output error")
        return super().save(doc, version)


def checker(
    rx: WebhookReceiver, store: Document
) -> Callable[[datetime], tuple[int, dict[str, Any]]]:
    rule = {"metric": "events", "window_minutes": 30, "lag_minutes": 0, "below": 1}
    rules = parse_rules(
        {
            "notifiers": {"hook": {"type": "webhook", "url_env": "U", "signing_key_env": "K"}},
            "defaults": {"notify": ["hook"], "repeat_minutes": 0},
            "rules": [{"name": "a", **rule}, {"name": "b", **rule}],  # empty reads: both fire
        },
        {"U": rx.url, "K": KEY},
    )

    def check_at(moment: datetime) -> tuple[int, dict[str, Any]]:
        settings = make_settings()
        app = create_app(
            settings, reader=CountingReader(settings), now=lambda: moment, rules=rules, store=store
        )
        r = app.test_client().get("/check")
        return r.status_code, r.get_json()

    return check_at


def ids(rx: WebhookReceiver) -> list[str]:
    return [r["headers"]["x-collector-notification-id"] for r in rx.received]


@dataclass
class Rig:
    store: FailingSave
    rx: WebhookReceiver
    check_at: Callable[[datetime], tuple[int, dict[str, Any]]]

    def refused(self, fail_at: int) -> dict[str, Any]:
        """A run at NOW whose `fail_at`-th save fails: its 503."""
        self.store.fail_at = fail_at
        status, body = self.check_at(NOW)
        assert status == 503 and body["code"] == "state_store_unavailable", body
        return body


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    store = FailingSave(DirBlobStore(tmp_path, lock="state.json.lock"), "state.json")
    with WebhookReceiver() as rx:
        yield Rig(store, rx, checker(rx, store))


def test_transitions_that_cannot_be_saved_notify_nothing_and_are_decided_again(rig: Rig) -> None:
    body = rig.refused(2)  # the preflight passes; the transitions' save fails
    assert body["queries"] == 1
    assert "nothing was notified; the next /check evaluates them again" in body["error"]
    assert rig.rx.received == []
    status, body = rig.check_at(NOW + timedelta(minutes=15))
    assert status == 200
    assert [r["owed"] for r in body["rules"]] == [["firing"], ["firing"]]
    assert sorted(Counter(ids(rig.rx)).values()) == [1, 1]


def test_a_delivery_that_cannot_be_recorded_stops_the_run_and_is_sent_again_later(
    rig: Rig,
) -> None:
    body = rig.refused(3)  # preflight, transitions and claims; then the first settle fails
    [first] = ids(rig.rx)  # nothing more was sent once a delivery could not be recorded
    assert f"{first} was delivered but could not be recorded" in body["error"]
    assert "X-Collector-Notification-Id" in body["error"]

    # Within the lease the run's claims stand: the next run sends neither.
    status, body = rig.check_at(NOW + timedelta(seconds=30))
    assert status == 200 and body["notifications"]["held_by_other_runs"] == 2
    assert len(rig.rx.received) == 1

    # After it, both go out: the unrecorded one again, with the same id (the documented repeat
    # a receiver can drop), the other one for the first time. Nothing is lost.
    status, body = rig.check_at(NOW + timedelta(minutes=15))
    assert status == 200 and body["notifications"]["delivered"] == 2
    assert Counter(ids(rig.rx)) == {first: 2, **{i: 1 for i in ids(rig.rx) if i != first}}
    assert len(set(ids(rig.rx))) == 2
    assert rig.store.load()[0]["rules"]["a"]["pending"] == []
