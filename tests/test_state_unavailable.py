"""A state store that cannot be read, trusted or written: 503 before any Export query.

Real gunicorn with the shipped config, a loopback webhook receiver, and the two stores: a file,
and a Cloud Storage object in fake-gcs-server. A rule fires first; then the store is damaged in
each way, and every /check answers 503 `state_store_unavailable` naming the store, spends no
query, writes its summary entry and leaves the document as it found it. Once the store is
repaired the rule is still firing: nothing fires again. As root (as the build runs), permissions
do not stop a write, so "unwritable" is a lock file replaced by a directory, or a bucket gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.simulator import Simulator
from tests.check_service import check_service, delivered, firing_rule, get_check, summaries
from tests.gcs import client
from tests.helpers import Service
from tests.webhook_receiver import WebhookReceiver


def wrong_shape(good: bytes) -> bytes:
    doc = json.loads(good)
    doc["rules"]["busy"]["breaching_runs"] = "three"
    return json.dumps(doc).encode()


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "corrupt": lambda good: b"\x00\xffnot json at all",
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "wrong shape": wrong_shape,
}
PROBLEM = {
    "corrupt": "is not valid JSON",
    "truncated": "is not valid JSON",
    "empty": "is not valid JSON",
    "wrong shape": "rules['busy'].breaching_runs is 'three', not a whole number",
}


def assert_refused(svc: Service, sim: Simulator, where: str, problem: str) -> None:
    before = sim.queries
    status, body = get_check(svc)
    assert status == 503, body
    assert body["code"] == "state_store_unavailable"
    assert body["store"] == where
    assert body["queries"] == 0
    assert problem in body["error"] and where in body["error"]
    assert "no Export query was spent and no rule state changed" in body["error"]
    assert sim.queries == before


def refused_for_every_damage(
    svc: Service,
    sim: Simulator,
    where: str,
    read: Callable[[], bytes],
    write: Callable[[bytes], None],
) -> None:
    good = read()
    for name, damage in DAMAGE.items():
        write(damage(good))
        assert_refused(svc, sim, where, PROBLEM[name])
        assert read() == damage(good)  # left as it was, for a person to look at
        write(good)


@contextmanager
def fired_once(
    sim: Simulator, tmp_path: Path, where: str
) -> Iterator[tuple[Service, WebhookReceiver]]:
    """The service on this store, after a first /check that fired the rule and notified."""
    with (
        WebhookReceiver() as rx,
        check_service(sim, tmp_path, [firing_rule("busy", "hook")], {"hook": rx.url}, where) as svc,
    ):
        status, body = get_check(svc)
        assert status == 200, body
        assert [(r["state"], r["owed"]) for r in body["rules"]] == [("ALERTING", ["firing"])]
        assert len(delivered(rx)) == 1
        yield svc, rx


def still_firing_nothing_sent_again(svc: Service, rx: WebhookReceiver, refusals: int) -> None:
    status, body = get_check(svc)
    assert status == 200, body
    assert [(r["state"], r["firing"], r["owed"]) for r in body["rules"]] == [("ALERTING", True, [])]
    assert len(delivered(rx)) == 1
    failed = [s for s in summaries(svc) if s["status"] == 503]
    assert len(failed) == refusals
    assert {(s["code"], s["queries"]) for s in failed} == {("state_store_unavailable", 0)}


def test_a_damaged_file_store_answers_503_and_spends_no_query(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "state.json"
    where = f"file:{path}"
    with fired_once(sim, tmp_path, where) as (svc, rx):
        refused_for_every_damage(svc, sim, where, path.read_bytes, path.write_bytes)
        good = path.read_bytes()

        lock = path.with_name("state.json.lock")
        lock.unlink()
        lock.mkdir()  # the lock cannot be opened for writing: nothing can be saved
        assert_refused(svc, sim, where, "cannot write")
        lock.rmdir()

        path.unlink()
        path.mkdir()  # a path that cannot be read as a file
        assert_refused(svc, sim, where, "cannot read")
        path.rmdir()
        path.write_bytes(good)

        still_firing_nothing_sent_again(svc, rx, refusals=len(DAMAGE) + 2)


def test_a_damaged_cloud_storage_store_answers_503_and_spends_no_query(
    sim: Simulator, tmp_path: Path, bucket: str
) -> None:
    where = f"gs://{bucket}/collector/state.json"
    blob = client().bucket(bucket).blob("collector/state.json")
    with fired_once(sim, tmp_path, where) as (svc, rx):
        refused_for_every_damage(svc, sim, where, blob.download_as_bytes, blob.upload_from_string)
        good = blob.download_as_bytes()

        # The bucket is gone (or STATE_STORE names one that is not there): the object reads as
        # absent, and only the write before the query shows that nothing could be saved.
        blob.delete()
        client().bucket(bucket).delete()
        assert_refused(svc, sim, where, "cannot write")
        client().create_bucket(bucket)
        blob.upload_from_string(good)

        still_firing_nothing_sent_again(svc, rx, refusals=len(DAMAGE) + 1)
