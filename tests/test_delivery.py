"""Each notification is delivered at most once per transition, and delivery has a bound.

Real gunicorn with the shipped config (so SIGTERM goes through gunicorn's own handling and the
drain), a file state store shared by its workers, and loopback webhook receivers. Bounds are
asserted with generous margins: they tell a total deadline (seconds) from the old behaviour,
a timeout per socket read (minutes).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from collector.simulator import Simulator
from collector.stores import Document, file_document
from collector.stores import DocumentStore as StateStore
from collector.stores.gcs import GcsBlobStore
from tests.check_service import check_service, firing_rule, get_check
from tests.gcs import client
from tests.webhook_receiver import Reply, WebhookReceiver


def ids(rx: WebhookReceiver) -> list[str]:
    return [r["headers"]["x-collector-notification-id"] for r in rx.received]


def pending(where: Path | StateStore) -> list[dict[str, Any]]:
    store = file_document(where) if isinstance(where, Path) else where
    doc, _ = store.load()
    return [p for state in doc["rules"].values() for p in state["pending"]]


@pytest.fixture(params=["file", "gcs"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, StateStore]:
    """STATE_STORE for the service, and the same store to read back: a file under its lock, or
    a fake-gcs-server object under generation preconditions."""
    if request.param == "file":
        return f"file:{tmp_path / 'state.json'}", file_document(tmp_path / "state.json")
    bucket = request.getfixturevalue("bucket")
    name = "collector/state.json"
    return f"gs://{bucket}/{name}", Document(GcsBlobStore(bucket, client=client()), name)


def test_two_overlapping_checks_deliver_each_notification_once(
    sim: Simulator, tmp_path: Path, shared_store: tuple[str, StateStore]
) -> None:
    url, store = shared_store
    rules = [firing_rule(f"r{i}", "hook") for i in range(4)]
    with (
        WebhookReceiver([Reply(delay=0.3)] * 8) as rx,
        check_service(sim, tmp_path, rules, {"hook": rx.url}, url, workers=2, threads=2) as svc,
    ):
        answers: list[tuple[int, dict[str, Any]]] = []
        go = threading.Barrier(2)

        def check() -> None:
            go.wait()
            answers.append(get_check(svc))

        runs = [threading.Thread(target=check) for _ in range(2)]
        for t in runs:
            t.start()
        for t in runs:
            t.join(timeout=60)
    assert [status for status, _ in answers] == [200, 200]
    figures = sorted((b["notifications"] for _, b in answers), key=lambda f: f["delivered"])
    # One run claimed all four in the save that recorded the transitions; the other found
    # them claimed (or, had it saved first, the roles swap).
    assert [(f["delivered"], f["held_by_other_runs"]) for f in figures] == [(0, 4), (4, 0)]
    assert sorted(Counter(ids(rx)).values()) == [1, 1, 1, 1]
    notified = [i for _, b in answers for r in b["rules"] for i in r["notified"]]
    assert sorted(notified) == sorted(ids(rx))
    assert pending(store) == []


@pytest.mark.timing
def test_sigterm_mid_delivery_then_a_restart_sends_nothing_twice_and_loses_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    rules = [firing_rule(f"r{i}", "hook") for i in range(6)]
    state = tmp_path / "state.json"
    with WebhookReceiver([Reply(delay=0.5)] * 6) as rx:
        hooks, store = {"hook": rx.url}, f"file:{state}"
        with check_service(sim, tmp_path, rules, hooks, store, log="first.log") as svc:
            answer: dict[str, Any] = {}

            def check() -> None:
                r = requests.get(svc.base + "/check", timeout=30)
                answer.update(status=r.status_code, body=r.json(), at=time.monotonic())

            run = threading.Thread(target=check)
            run.start()
            for _ in range(200):  # until the second notification is in flight
                if len(rx.received) >= 2:
                    break
                time.sleep(0.02)
            signalled = time.monotonic()
            svc.proc.send_signal(signal.SIGTERM)
            run.join(timeout=20)
            assert svc.proc.wait(timeout=20) == 0
        assert answer["status"] == 200, answer
        assert answer["at"] - signalled < 10  # inside Cloud Run's grace
        first = answer["body"]["notifications"]
        assert first["stopped"] == "shutdown"
        assert first["delivered"] == len(rx.received) and 2 <= first["delivered"] < 6
        assert first["deferred"] == 6 - first["delivered"]
        deferred = [r["notify_deferred"] for r in answer["body"]["rules"]]
        assert all("shutting down" in why for d in deferred for why in d.values())
        # Released, not left claimed: the next instance need not wait for a lease to expire.
        assert len(pending(state)) == first["deferred"]
        assert not [p for p in pending(state) if "claim" in p]

        with check_service(sim, tmp_path, rules, hooks, store, log="second.log") as svc:
            status, body = get_check(svc)
    assert status == 200, body
    assert body["notifications"]["delivered"] == first["deferred"]
    assert [r["owed"] for r in body["rules"]] == [[]] * 6  # still firing: nothing new owed
    assert sorted(Counter(ids(rx)).values()) == [1] * 6
    assert pending(state) == []


@pytest.mark.timing
def test_slow_and_failing_receivers_cannot_hold_a_check_past_its_delivery_deadline(
    sim: Simulator, tmp_path: Path
) -> None:
    receivers = {
        "hanging": WebhookReceiver([Reply(hang=True)]),
        "trickling": WebhookReceiver([Reply(200, body="accepted", trickle=0.2)]),
        "failing": WebhookReceiver([Reply(500, "boom")]),
        "healthy": WebhookReceiver(),
    }
    rules = [firing_rule(f"to-{name}", name) for name in receivers]
    state = tmp_path / "state.json"
    for rx in receivers.values():
        rx.start()
    try:
        hooks = {name: rx.url for name, rx in receivers.items()}
        with check_service(
            sim,
            tmp_path,
            rules,
            hooks,
            f"file:{state}",
            NOTIFY_TIMEOUT_SECONDS="1",
            NOTIFY_DEADLINE_SECONDS="1.5",
        ) as svc:
            started = time.monotonic()
            status, body = get_check(svc)
            took = time.monotonic() - started
            assert status == 200, body
            assert took < 1.5 + 6  # the export and the answer, with room to spare
            first = body["notifications"]
            # The hanging receiver costs the 1 s timeout, the trickling one the 0.5 s left;
            # the other two do not fit and stay pending, said so in the answer.
            assert (first["failed"], first["deferred"], first["stopped"]) == (2, 2, "deadline")
            by_rule = {r["name"]: r for r in body["rules"]}
            for name in ("to-hanging", "to-trickling"):
                assert "no answer within" in next(iter(by_rule[name]["notify_errors"].values()))
            for name in ("to-failing", "to-healthy"):
                assert "NOTIFY_DEADLINE_SECONDS" in next(
                    iter(by_rule[name]["notify_deferred"].values())
                )
            assert len(pending(state)) == 4
            first_counts = {name: len(rx.received) for name, rx in receivers.items()}
            assert first_counts == {"hanging": 1, "trickling": 1, "failing": 0, "healthy": 0}

            for rx in receivers.values():
                rx.script([200])  # all well again
            status, body = get_check(svc)
        assert status == 200, body
        assert body["notifications"]["delivered"] == 4
        # The next run sent each pending notification once, to its receiver.
        for name, rx in receivers.items():
            assert len(rx.received) - first_counts[name] == 1, name
            assert rx.received[-1]["status"] == 200
        assert pending(state) == []
    finally:
        for rx in receivers.values():
            rx.stop()
