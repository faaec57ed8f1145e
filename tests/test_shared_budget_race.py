"""Many takers at once on one shared budget, in real time: a directory and Cloud Storage
(fake-gcs-server). Each taker has its own store object (its own client), as separate
processes would; together they never take more than the hour allows nor more than three in
any second, and they do take all of it.

The second is judged by the times the takers wrote into the second-slots, the budget's own
record of each take: when a thread got to note a take depends on the machine's speed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.export.shared_budget import SharedBudget
from collector.stores import BlobStore
from collector.stores.directory import DirBlobStore
from collector.stores.gcs import GcsBlobStore
from tests.gcs import client

PER_HOUR, PER_SECOND, TAKERS = 6, 3, 8


@pytest.fixture(params=["dir", "gcs"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BlobStore]:
    """A fresh store object over one shared place, each time it is called."""
    if request.param == "dir":
        return lambda: DirBlobStore(tmp_path / "budget")
    bucket = request.getfixturevalue("bucket")
    return lambda: GcsBlobStore(bucket, "budget", client())


class Stamped:
    """A taker's store, noting the time written into every second-slot write that landed."""

    def __init__(self, store: BlobStore, stamps: list[float]) -> None:
        self.store, self.stamps = store, stamps

    def put(self, name: str, data: bytes, **kwargs: Any) -> Any:
        version = self.store.put(name, data, **kwargs)
        if name.startswith("second/"):
            self.stamps.append(json.loads(data)["at"])
        return version

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def race(
    new_store: Callable[[], BlobStore], stamps: list[float]
) -> tuple[list[float], list[Exception]]:
    """Every taker takes as fast as it may until it sees the hour spent; when each took."""
    taken: list[float] = []
    errors: list[Exception] = []
    lock = threading.Lock()
    start = threading.Barrier(TAKERS)
    stop_at = time.monotonic() + 8.0

    def taker(n: int) -> None:
        store = Stamped(new_store(), stamps)
        budget = SharedBudget(store, PER_HOUR, PER_SECOND, taker=f"taker-{n}")  # type: ignore[arg-type]
        start.wait()
        try:
            while time.monotonic() < stop_at:
                wait = budget.try_acquire()
                if wait == 0:
                    with lock:
                        taken.append(time.time())
                elif budget.hourly_wait() > 0:
                    return  # the hour is spent: what a request would answer 503 for
                else:
                    time.sleep(wait)
        except Exception as exc:  # reported by the test, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=taker, args=(n,)) for n in range(TAKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    return sorted(taken), errors


def test_concurrent_takers_never_exceed_either_limit_and_use_the_whole_hour(new_store) -> None:
    stamps: list[float] = []
    taken, errors = race(new_store, stamps)
    assert errors == []
    assert len(taken) == PER_HOUR
    # No fourth take within a second of three others: every query took a second-slot first
    # (a take that then lost the hour-slot wasted one), so the second-slots' stamps hold them all.
    stamps.sort()
    assert len(stamps) >= PER_HOUR
    spans = [stamps[i + PER_SECOND] - stamps[i] for i in range(len(stamps) - PER_SECOND)]
    assert min(spans) >= 1.0, spans
    # Each take holds an hour-slot of its own, stamped by whoever won it.
    store = new_store()
    hour = store.names("hour/")
    assert len(hour) == PER_HOUR
    assert len(store.names("second/")) == PER_SECOND
    # One more taker, new to the store, finds the hour spent and says for how long.
    late = SharedBudget(store, PER_HOUR, PER_SECOND, taker="late")
    wait = late.try_acquire()
    assert 3590 < wait <= 3600.25 and late.remaining() == 0
