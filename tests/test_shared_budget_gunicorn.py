"""Two service instances (real gunicorn, two workers each) sharing one BUDGET_STORE: a
directory, and Cloud Storage (fake-gcs-server). Fired more requests than the hour allows, the
simulator sees the hour's budget and no more, never more than three queries a second, and
every other request answers 503 `budget_exhausted` saying when to come back.

The rate is read from the simulator's own record of each query's arrival, against the moment
the requests were fired, so that no machine is too slow for it (see the test)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from collector.simulator import Simulator
from collector.stores import BlobStore
from collector.stores.directory import DirBlobStore
from collector.stores.gcs import GcsBlobStore
from tests.conftest import past_window
from tests.gcs import client
from tests.helpers import gunicorn, service_env

PER_HOUR, PER_SECOND = 6, 3
REQUESTS = 16  # two instances x two workers x four threads: all at once


@pytest.fixture(params=["dir", "gcs"])
def budget_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, BlobStore]:
    """BUDGET_STORE's value, and the store it names (the services find the emulator through
    STORAGE_EMULATOR_HOST, which they inherit)."""
    if request.param == "dir":
        return str(tmp_path / "budget"), DirBlobStore(tmp_path / "budget")
    bucket = request.getfixturevalue("bucket")
    return f"gs://{bucket}/budget", GcsBlobStore(bucket, "budget", client())


def test_two_instances_spend_one_budget_between_them(
    sim: Simulator, tmp_path: Path, budget_store: tuple[str, BlobStore]
) -> None:
    url, store = budget_store
    env = service_env(
        sim,
        BUDGET_STORE=url,
        EXPORT_QUERIES_PER_HOUR=str(PER_HOUR),
        EXPORT_QUERIES_PER_SECOND=str(PER_SECOND),
        EXPORT_DEADLINE_SECONDS="10",
    )
    window = past_window()
    span = f"from={window.start:%Y-%m-%dT%H:%M:%SZ}&to={window.end:%Y-%m-%dT%H:%M:%SZ}"
    with ExitStack() as stack:
        services = [stack.enter_context(gunicorn(env, tmp_path / f"{n}.log")) for n in "ab"]
        bases = [services[i % 2].base for i in range(REQUESTS)]
        before = sim.queries
        fired = time.time()  # the services' budget uses this clock too
        with ThreadPoolExecutor(REQUESTS) as pool:
            get = lambda base: requests.get(f"{base}/events?{span}", timeout=20)  # noqa: E731
            answers = list(pool.map(get, bases))
        workers = {p.pid for s in services for p in s.workers()}
        logs = "".join(s.log_text() for s in services)

    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * PER_HOUR + [503] * (REQUESTS - PER_HOUR), logs[-3000:]
    arrived = sorted(record["at"] for record in sim.requests[before:])
    assert len(arrived) == PER_HOUR
    # At most three queries a second: the first second after the requests were fired holds at
    # most three arrivals, the first two seconds six. Every query is granted after `fired` and
    # arrives after it is granted, so a slow machine only moves arrivals later: this fails for
    # a budget that lets a fourth query through early, never for the machine's speed (the gaps
    # between arrivals would: a delay before the first of four shortens them).
    early = [(i, at - fired) for i, at in enumerate(arrived) if at - fired < i // PER_SECOND]
    assert early == [], arrived
    for refused in (r.json() for r in answers if r.status_code == 503):
        assert refused["code"] == "budget_exhausted"
        assert 3590 < refused["retry_in_seconds"] <= 3600.3
        assert f"BUDGET_STORE={store.describe()}" in refused["error"]
        assert refused["export"]["attempts"] == 0
    # Every hour-slot was taken by a worker of one of the two instances.
    hour = [json.loads(store.get(n)[0]) for n in store.names("hour/")]  # type: ignore[index]
    assert len(hour) == PER_HOUR
    assert {int(slot["by"].split("/")[1]) for slot in hour} <= workers
