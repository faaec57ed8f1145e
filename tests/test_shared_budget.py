"""The project's query budget in a shared store (BUDGET_STORE), on a clock the tests move:
slots are taken and free again by time, a taker that loses a slot moves on, both limits hold
across budgets that share one directory, the cache answers without a request, a caller may
wait for the hour, and a store that fails stops the query instead of letting it through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.export.budget import QueryBudget
from collector.export.deadline import Deadline
from collector.export.shared_budget import MARGIN, STORE_RETRY_SECONDS, SharedBudget
from collector.stores import BlobStore
from collector.stores.directory import DirBlobStore

T0 = 1_800_000_000.0


class Clock:
    """Wall and monotonic time at once: a sleep moves both."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Counted:
    """A real store that counts the requests made of it."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.gets = self.puts = 0

    def get(self, name: str) -> Any:
        self.gets += 1
        return self.store.get(name)

    def put(self, name: str, data: bytes, *, if_version: Any = None) -> Any:
        self.puts += 1
        return self.store.put(name, data, if_version=if_version)

    def names(self, prefix: str = "") -> list[str]:
        return self.store.names(prefix)

    def delete(self, name: str) -> None:
        self.store.delete(name)

    def describe(self) -> str:
        return self.store.describe()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "budget"


def budget(root: Path, clock: Clock, taker: str, per_hour: int = 5, per_second: int = 3) -> Any:
    """One process's budget: a store object of its own over the shared directory."""
    return SharedBudget(DirBlobStore(root), per_hour, per_second, clock=clock, taker=taker)


def slots(root: Path, kind: str) -> dict[str, dict[str, Any]]:
    store = DirBlobStore(root)
    return {n: json.loads(store.get(n)[0]) for n in store.names(f"{kind}/")}  # type: ignore[index]


def test_a_take_writes_one_second_slot_and_one_hour_slot_saying_when_and_who(root, clock):
    a = budget(root, clock, "host-a/1/x")
    assert a.try_acquire() == 0.0
    [second] = slots(root, "second").values()
    [hour] = slots(root, "hour").values()
    assert second == hour == {"at": T0, "by": "host-a/1/x"}
    assert a.remaining() == 4 and a.hourly_wait() == 0.0


def test_the_per_second_limit_holds_across_processes_and_frees_after_a_second(root, clock):
    a, b = budget(root, clock, "a", per_hour=60), budget(root, clock, "b", per_hour=60)
    assert [a.try_acquire(), b.try_acquire(), a.try_acquire()] == [0.0, 0.0, 0.0]
    wait = b.try_acquire()  # the fourth in one second, from the process that took one
    assert wait == pytest.approx(1.0 + MARGIN)
    assert b.hourly_wait() == 0.0  # only the second is full: a caller waits, it does not fail
    clock.t += 1.0
    assert a.try_acquire() > 0  # a second is not enough: the margin is for clocks and trips
    clock.t += MARGIN
    assert [b.try_acquire(), a.try_acquire(), b.try_acquire()] == [0.0, 0.0, 0.0]
    assert len(slots(root, "second")) == 3 and len(slots(root, "hour")) == 6


def test_the_hourly_limit_holds_across_processes_and_frees_an_hour_after_each_take(root, clock):
    a, b = budget(root, clock, "a"), budget(root, clock, "b")
    taken = []
    for i in range(5):
        assert (a if i % 2 else b).try_acquire() == 0.0
        taken.append(clock.t)
        clock.t += 2.0
    for who in (a, b):
        wait = who.try_acquire()
        assert wait == pytest.approx(taken[0] + 3600 + MARGIN - clock.t)
        assert who.hourly_wait() == pytest.approx(wait) and who.remaining() == 0
    clock.t = taken[0] + 3600 + MARGIN
    assert b.try_acquire() == 0.0  # the first slot of the hour is free again, and only it
    assert a.try_acquire() == pytest.approx(2.0)
    assert {s["by"] for s in slots(root, "hour").values()} == {"a", "b"}


def test_a_taker_that_loses_a_slot_moves_on_and_never_overwrites_it(root, clock):
    a = budget(root, clock, "a", per_hour=2, per_second=1)
    assert a.try_acquire() == 0.0  # a has seen the second-slot
    clock.t += 3601.0
    b = budget(root, clock, "b", per_hour=2, per_second=1)
    assert b.try_acquire() == 0.0  # b takes it now: the version a saw is stale
    [b_hour] = [n for n, s in slots(root, "hour").items() if s["by"] == "b"]
    wait = a.try_acquire()  # a writes with what it saw, loses, reads, finds it taken
    assert wait == pytest.approx(1.0 + MARGIN)
    assert slots(root, "second") == {"second/0": {"at": T0 + 3601.0, "by": "b"}}
    clock.t += 1.0 + MARGIN
    assert a.try_acquire() == 0.0  # the other hour-slot
    hour = slots(root, "hour")
    assert hour[b_hour] == {"at": T0 + 3601.0, "by": "b"}
    assert {s["by"] for s in hour.values()} == {"a", "b"}
    # Now every hour-slot is taken, which b learns by reading, writing nothing.
    b_seconds = slots(root, "second")
    assert b.try_acquire() == pytest.approx(3600.0 + MARGIN - (1.0 + MARGIN))
    assert slots(root, "second") == b_seconds and b.hourly_wait() > 3500


def test_budgets_of_one_store_split_a_burst_over_different_slots(root, clock):
    takers = [budget(root, clock, f"t{i}", per_hour=60) for i in range(3)]
    assert [t.try_acquire() for t in takers] == [0.0, 0.0, 0.0]
    assert len(slots(root, "second")) == 3 and len(slots(root, "hour")) == 3


def test_what_was_seen_answers_without_a_request(root, clock):
    store = Counted(DirBlobStore(root))
    a = SharedBudget(store, 3, 1, clock=clock, taker="a")
    for _ in range(3):
        assert a.try_acquire() == 0.0
        clock.t += 1.5
    assert a.try_acquire() > 3000  # learns the last hour-slots are taken
    before = (store.gets, store.puts)
    assert a.try_acquire() > 3000  # every hour-slot seen taken: nothing asked
    assert a.remaining() == 0 and a.hourly_wait() > 3000  # /healthz costs no request
    assert (store.gets, store.puts) == before
    # A take reads the hour-slot it found free, then writes it and a second-slot seen free.
    clock.t += 3600.0
    assert a.remaining() == 3
    reads, writes = store.gets, store.puts
    assert a.try_acquire() == 0.0
    assert (store.gets, store.puts) == (reads + 1, writes + 2) and a.remaining() == 2


def test_a_budget_counts_only_what_it_has_seen_until_it_takes(root, clock):
    a, b = budget(root, clock, "a"), budget(root, clock, "b")
    for _ in range(4):
        assert a.try_acquire() == 0.0
        clock.t += 1.5
    assert b.remaining() == 5  # b has seen nothing yet: its figure is optimistic
    assert b.try_acquire() == 0.0
    assert b.try_acquire() > 3000  # the last one; b now knows every slot
    assert b.remaining() == 0


def test_a_slot_nobody_can_read_counts_as_free_and_is_rewritten(root, clock):
    store = DirBlobStore(root)
    store.put("second/0", b"not json")
    store.put("hour/0", json.dumps({"at": T0 + 86400}).encode())  # a clock a day ahead
    a = budget(root, clock, "a", per_hour=1, per_second=1)
    assert a.try_acquire() == 0.0
    assert slots(root, "hour") == {"hour/0": {"at": T0, "by": "a"}}


def test_take_waits_for_the_hour_when_asked_to_and_the_deadline_allows(root, clock):
    a = budget(root, clock, "a", per_hour=1)
    assert a.try_acquire() == 0.0
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.sleep(seconds)

    assert a.take(Deadline(4000, clock), sleep, wait_for_hourly=True) is None
    assert sum(slept) == pytest.approx(3600 + MARGIN)
    # Without waiting, a spent hour stops the attempt at once, saying when to come back.
    stop = a.take(Deadline(4000, clock), sleep)
    assert stop is not None and stop.kind == "budget" and stop.next == "stop: budget spent"
    assert "BUDGET_STORE=file:" in stop.message and "free again in 3600 s" in stop.message


def test_take_does_not_wait_for_an_hour_that_frees_after_the_deadline(root, clock):
    a = budget(root, clock, "a", per_hour=1)
    assert a.try_acquire() == 0.0
    slept: list[float] = []
    stop = a.take(Deadline(60, clock), slept.append, wait_for_hourly=True)
    assert stop is not None and stop.kind == "budget" and slept == []
    assert "after the deadline (EXPORT_DEADLINE_SECONDS)" in stop.message


def test_the_per_process_budget_waits_for_the_hour_the_same_way(clock):
    local = QueryBudget(per_hour=1, per_second=3, clock=clock)
    assert local.try_acquire() == 0.0
    assert local.take(Deadline(4000, clock), clock.sleep, wait_for_hourly=True) is None
    assert clock.t == pytest.approx(T0 + 3600)
    stop = local.take(Deadline(10, clock), clock.sleep)
    assert stop is not None and "budget of this process is spent" in stop.message


def test_a_store_that_fails_stops_the_query_naming_budget_store(root, clock):
    a = budget(root, clock, "a")
    assert a.try_acquire() == 0.0
    for path in sorted(root.rglob("*"), reverse=True):  # the directory goes; a file takes it
        path.rmdir() if path.is_dir() else path.unlink()
    root.rmdir()
    root.write_text("not a directory")
    clock.t += 5.0
    stop = a.take(Deadline(60, clock), clock.sleep)
    assert stop is not None and stop.kind == "budget" and stop.next == "stop: budget store failed"
    assert stop.message.startswith(f"the project's Export query budget (BUDGET_STORE=file:{root})")
    assert "No query was sent" in stop.message and "unset BUDGET_STORE" in stop.message
    assert a.hourly_wait() == pytest.approx(STORE_RETRY_SECONDS)  # the answer's retry_in_seconds
    root.unlink()  # the store is back: the next take works and forgets the failure
    assert a.try_acquire() == 0.0 and a.hourly_wait() == 0.0
