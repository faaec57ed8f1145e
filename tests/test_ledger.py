"""The slice ledger against the simulator: the same answers as a full export, for the cost of
the slices it lacks; lower bounds when a read was partial; refreshes pick up late events."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.ledger import store as ledger_store
from collector.ledger.service import LedgerService
from collector.ledger.slices import Slicing
from collector.ledger.store import Ledger
from collector.metrics.answer import MetricRequest
from collector.simulator import Fault, Simulator
from collector.stores import BlobStore
from collector.stores.directory import DirBlobStore
from collector.stores.gcs import GcsBlobStore
from collector.window import Window
from tests.conftest import sim_config
from tests.gcs import client
from tests.helpers import compute, make_settings
from tests.reliability.chaos import FAULT_KINDS, make_fault

DAY = date(2026, 11, 20)  # the simulated calendar: the simulator's today is two days later
BASE = datetime(DAY.year, DAY.month, DAY.day, 6, tzinfo=UTC)
NAMES = ("Page View", "Sign Up", "Purchase", "Search", "Add To Cart")


class Clock:
    """A settable now, for the reader (its `to_date`) and the ledger (ages of slices)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config(today=DAY + timedelta(days=2))) as running:
        yield running


def service(sim: Simulator, blobs: BlobStore, clock: Clock, minutes: int = 5, **env: str):
    env = {"EXPORT_MAX_ATTEMPTS": "2", "EXPORT_DEADLINE_SECONDS": "5", **env}
    reader = ExportReader(
        make_settings(sim.url, **env),
        QueryBudget(60, 3),
        now=clock,
    )
    return LedgerService(Ledger(blobs, Slicing(minutes)), reader, 0, clock), reader


def truth(sim: Simulator, request: MetricRequest) -> int:
    t = sim.truth(request.window.start, request.window.end, request.events or None)
    return t.events if request.metric == "events" else t.distinct_users


# -- the same answer as the full export ------------------------------------------------------

faults = st.builds(
    make_fault,
    st.sampled_from([k for k in FAULT_KINDS if k not in ("stall", "stall_headers", "trickle")]),
    st.integers(0, 40_000),
    st.integers(0, 3),
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    metric=st.sampled_from(["events", "distinct_users"]),
    offset=st.integers(0, 240),
    minutes=st.integers(1, 300),
    names=st.lists(st.sampled_from(NAMES), max_size=2, unique=True).map(tuple),
    slice_minutes=st.sampled_from([1, 5, 15, 60]),
    script=st.lists(faults, max_size=3).map(tuple),
)
def test_a_ledger_answer_equals_the_full_export_and_is_a_lower_bound_when_partial(
    sim: Simulator, tmp_path_factory, metric, offset, minutes, names, slice_minutes, script
) -> None:
    blobs = DirBlobStore(tmp_path_factory.mktemp("ledger"))
    clock = Clock(BASE + timedelta(days=1, hours=12))
    ledger, reader = service(sim, blobs, clock, slice_minutes)
    start = BASE + timedelta(minutes=offset)
    request = MetricRequest(metric, Window(start, start + timedelta(minutes=minutes)), names)
    exact = truth(sim, request)
    sim.script(script)
    try:
        first = ledger.compute(request).as_dict()
    except UpstreamUnavailable:
        first = None
    sim.clear_faults()
    if first is not None:
        assert first["value"] == exact if first["complete"] else first["value"] <= exact
    # Faults gone: partial slices are read again, complete ones come from the ledger.
    again = ledger.compute(request).as_dict()
    assert again["complete"] is True and again["value"] == exact
    assert again["value"] == compute(request, reader)["value"]
    if metric == "events":
        assert (
            again["by_event"]
            == sim.truth(request.window.start, request.window.end, names or None).by_event
        )
    # And once more: nothing left to read but the window's unaligned edges.
    third = ledger.compute(request).as_dict()
    assert third["value"] == exact and third["ledger"]["slices_read_now"] == 0
    assert third["ledger"]["queries"] <= 1


windows = st.tuples(
    st.sampled_from(["events", "distinct_users"]),
    st.integers(0, 180),  # start, minutes after BASE
    st.integers(1, 120),  # length in minutes
    st.lists(st.sampled_from(NAMES), max_size=2, unique=True).map(tuple),
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    asked=st.lists(windows, min_size=1, max_size=5),
    slice_minutes=st.sampled_from([1, 5, 15, 60]),
    kept_first=st.booleans(),
)
def test_windows_prefetched_together_answer_as_the_full_export_in_one_query(
    sim: Simulator, tmp_path_factory, asked, slice_minutes, kept_first
) -> None:
    """A run's windows (a /check's), with edges that overlap each other and slices that other
    windows read whole: one query reads what they all lack, then each answers the truth from
    the ledger and the run's memo, with no query of its own."""
    blobs = DirBlobStore(tmp_path_factory.mktemp("ledger"))
    clock = Clock(BASE + timedelta(days=1, hours=12))
    ledger, reader = service(sim, blobs, clock, slice_minutes)
    requests = [
        MetricRequest(m, Window(BASE + timedelta(minutes=a), BASE + timedelta(minutes=a + n)), e)
        for m, a, n, e in asked
    ]
    if kept_first:  # some of it kept already, by an earlier answer
        ledger.compute(requests[0]).as_dict()
    memo: dict = {}
    deadline = reader.deadline()
    before = sim.queries
    figures, failed = ledger.prefetch(requests, memo, deadline)
    assert failed is None and sim.queries - before == figures["queries"] <= 1
    for request in requests:
        body = ledger.compute(request, memo, deadline).as_dict()
        assert body["complete"] is True and body["value"] == truth(sim, request)
        assert body["ledger"]["queries"] == 0
    assert sim.queries - before <= 1


def test_an_answer_costs_the_new_slices_only(sim: Simulator, tmp_path: Path) -> None:
    clock = Clock(BASE + timedelta(hours=3))
    ledger, _ = service(sim, DirBlobStore(tmp_path), clock)
    day_so_far = Window(BASE.replace(hour=0), BASE + timedelta(hours=2, minutes=55))
    request = MetricRequest("distinct_users", day_so_far)
    first = ledger.compute(request).as_dict()
    before = sim.queries
    clock.moment += timedelta(minutes=5)
    later = Window(day_so_far.start, day_so_far.end + timedelta(minutes=5))
    second = ledger.compute(MetricRequest("distinct_users", later)).as_dict()
    # One query, for the new slice and the one that has just turned an hour old (late events).
    assert sim.queries - before == 1
    assert second["ledger"]["slices_read_now"] == 2
    assert second["ledger"]["slices_from_ledger"] == first["ledger"]["slices_read_now"] - 1
    assert second["export"]["bytes"] * 20 < first["export"]["bytes"]
    assert second["value"] == truth(sim, MetricRequest("distinct_users", later))


# -- late events and refreshes -----------------------------------------------------------------


def line(i: int, t: int) -> str:
    props = f'"time":{t},"distinct_id":"u{i}","$insert_id":"i{i}"'
    return '{"event":"A","properties":{' + props + "}}\n"


def test_a_slice_is_read_again_when_it_reaches_a_refresh_age_and_late_events_count(
    sim: Simulator, tmp_path: Path
) -> None:
    start = int(BASE.timestamp())
    window = Window(BASE, BASE + timedelta(minutes=5))
    request = MetricRequest("events", window)
    clock = Clock(BASE + timedelta(minutes=20))
    ledger, _ = service(sim, DirBlobStore(tmp_path), clock)
    body = "".join(line(i, start + 10 * i) for i in range(3))
    sim.script([Fault.raw_body(body)])
    assert ledger.compute(request).as_dict()["value"] == 3
    # Before the first refresh age the ledger answers alone, whatever arrived since.
    clock.moment = BASE + timedelta(minutes=50)
    quiet = ledger.compute(request).as_dict()
    assert quiet["value"] == 3 and quiet["ledger"]["queries"] == 0
    # An hour after the slice's end it is read again: an offline device's event has arrived.
    sim.script([Fault.raw_body(body + line(9, start + 200))])
    clock.moment = BASE + timedelta(hours=1, minutes=10)
    refreshed = ledger.compute(request).as_dict()
    assert refreshed["value"] == 4 and refreshed["ledger"]["slices_read_now"] == 1
    assert refreshed["ledger"]["as_of"] == "2026-11-20T07:10:00Z"


def test_a_partial_re_read_never_lowers_what_a_complete_read_knew(
    sim: Simulator, tmp_path: Path
) -> None:
    window = Window(BASE, BASE + timedelta(minutes=30))
    request = MetricRequest("events", window)
    clock = Clock(BASE + timedelta(minutes=40))
    ledger, _ = service(sim, DirBlobStore(tmp_path), clock)
    exact = truth(sim, request)
    assert ledger.compute(request).as_dict()["value"] == exact
    clock.moment = BASE + timedelta(hours=1, minutes=40)  # every slice is due a refresh
    sim.script([Fault.reset(after_bytes=2_000)] * 2)
    cut = ledger.compute(request).as_dict()
    sim.clear_faults()
    assert cut["value"] == exact and cut["complete"] is True  # the complete reads stand


# -- rollups, many writers ---------------------------------------------------------------------


def test_a_settled_day_is_rolled_up_and_answers_the_same(sim: Simulator, tmp_path: Path) -> None:
    blobs = DirBlobStore(tmp_path)
    clock = Clock(BASE + timedelta(days=1, hours=20))  # past the 24 h refresh of the whole day
    # A whole day is read at once: a deadline a loaded machine cannot cut short.
    ledger, _ = service(sim, blobs, clock, minutes=60, EXPORT_DEADLINE_SECONDS="60")
    whole_day = Window(BASE.replace(hour=0), BASE.replace(hour=0) + timedelta(days=1))
    request = MetricRequest("distinct_users", whole_day)
    exact = truth(sim, request)
    first = ledger.compute(request).as_dict()
    assert first["value"] == exact and first["ledger"]["slices_read_now"] == 24
    assert blobs.names("days/") == ["days/2026-11-20"]
    assert len(blobs.names("hours/2026-11-20/")) == 24  # kept for windows of part of the day
    again = ledger.compute(request).as_dict()
    # The rollup is one object, and it stands for the day's 24 slices.
    assert again["value"] == exact and again["ledger"]["slices_from_ledger"] == 24
    assert again["ledger"]["queries"] == 0


@pytest.mark.parametrize(
    "other",
    [{"version": 99}, {"hash": "xxh3-64/splitmix64/1"}],  # the second: what 0.3.0 wrote
    ids=["state-version", "hash-version"],
)
def test_a_damaged_object_is_read_again_from_the_export_and_replaced(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, other: dict[str, object]
) -> None:
    """An hour object of garbage and a day rollup of another version: each is treated as
    absent (its slices are read again, the answer stays exact) and the next write replaces it."""
    blobs = DirBlobStore(tmp_path)
    clock = Clock(BASE + timedelta(days=1, hours=20))
    # A whole day is read at once: a deadline a loaded machine cannot cut short.
    ledger, _ = service(sim, blobs, clock, minutes=60, EXPORT_DEADLINE_SECONDS="60")
    day = Window(BASE.replace(hour=0), BASE.replace(hour=0) + timedelta(days=1))
    request = MetricRequest("events", day)
    exact = truth(sim, request)
    assert (
        ledger.compute(request).as_dict()["value"] == exact
    )  # fills the hours and rolls the day up
    rollup = tmp_path / "days/2026-11-20"
    rolled = msgspec.msgpack.decode(rollup.read_bytes())
    assert rolled["hash"] != other.get("hash")
    rollup.write_bytes(msgspec.msgpack.encode({**rolled, **other}))
    (tmp_path / "hours/2026-11-20/07").write_bytes(b"\x00 not msgpack at all \xff")
    caplog.set_level(logging.WARNING, "collector.ledger")
    again = ledger.compute(request).as_dict()
    assert again["value"] == exact and again["complete"] is True
    assert again["ledger"]["slices_read_now"] == 1 and again["ledger"]["queries"] == 1
    assert "error" not in again["ledger"]
    fields = [getattr(r, "json_fields", {}) for r in caplog.records]
    damaged = {f["ledger_unreadable_object"] for f in fields if "ledger_unreadable_object" in f}
    assert damaged == {"days/2026-11-20", "hours/2026-11-20/07"}
    # Both were replaced: the day answers from its rollup again, with no query.
    third = ledger.compute(request).as_dict()
    assert third["value"] == exact and third["ledger"]["queries"] == 0
    assert third["ledger"]["slices_from_ledger"] == 24


class SlowStore(DirBlobStore):
    """A directory that answers slowly. No real store can be slowed here (fake-gcs-server has
    no latency setting), so the delay is added around the real directory store."""

    def __init__(self, root: Path, get_delay: float, put_delay: float) -> None:
        super().__init__(root)
        self.get_delay, self.put_delay = get_delay, put_delay

    def get(self, name: str, *, seconds: float | None = None):  # type: ignore[no-untyped-def]
        time.sleep(min(self.get_delay, seconds if seconds is not None else self.get_delay))
        return super().get(name)

    def put(self, name: str, data: bytes, **kwargs):  # type: ignore[no-untyped-def]
        seconds = kwargs.pop("seconds", None)
        time.sleep(min(self.put_delay, seconds if seconds is not None else self.put_delay))
        return super().put(name, data, **kwargs)


@pytest.fixture(scope="module")
def quiet() -> Iterator[Simulator]:
    """Few events a day: a read of the export takes no time to speak of, even on a busy
    machine, so that only the store's time is measured."""
    with Simulator(sim_config(today=DAY + timedelta(days=2), events_per_minute=2)) as running:
        yield running


@pytest.mark.timing
def test_a_slow_store_costs_at_most_half_the_deadline_to_load_and_a_little_more_to_keep(
    quiet: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = quiet
    monkeypatch.setattr(ledger_store, "WRITE_SECONDS", 1.0)  # 5 s in service: less to wait here
    write_seconds = ledger_store.WRITE_SECONDS
    clock = Clock(BASE + timedelta(days=1, hours=1))
    day = Window(BASE.replace(hour=0), BASE.replace(hour=0) + timedelta(days=1))
    request = MetricRequest("distinct_users", day)
    fast, _ = service(sim, DirBlobStore(tmp_path), clock, minutes=60)
    fast.compute(request).as_dict()  # the day's 24 hour objects, kept
    deadline_seconds = 2.0
    env = {"EXPORT_DEADLINE_SECONDS": str(deadline_seconds)}
    # Loading: 0.2 s a read, 24 objects to read (4.8 s): half the deadline, then the export;
    # keeping what it read (a read of each hour object on the way) until a little past the end.
    slow, _ = service(sim, SlowStore(tmp_path, 0.2, 0), clock, minutes=60, **env)
    started = time.monotonic()
    body = slow.compute(request).as_dict()
    assert time.monotonic() - started < deadline_seconds + write_seconds + 0.5
    assert body["value"] == truth(sim, request) and body["complete"] is True
    assert "answered slowly" in body["ledger"]["warning"]
    assert 0 < body["ledger"]["slices_from_ledger"] < 24
    # Keeping: 1 s a write, 24 hour objects to write (24 s): until a little past the deadline.
    clock.moment += timedelta(hours=30)  # every slice due again (its 24 h refresh)
    slow = service(sim, SlowStore(tmp_path, 0, 1.0), clock, minutes=60, **env)[0]
    started = time.monotonic()
    body = slow.compute(request).as_dict()
    assert time.monotonic() - started < deadline_seconds + write_seconds + 1
    assert body["value"] == truth(sim, request) and body["complete"] is True
    assert "ran out of time" in body["ledger"]["error"]


@pytest.mark.parametrize("backend", ["dir", "gcs"])
def test_readers_of_the_same_hour_never_lose_each_others_slices(
    sim: Simulator, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    clock = Clock(BASE + timedelta(hours=2))

    def blobs() -> BlobStore:
        if backend == "dir":
            return DirBlobStore(tmp_path)
        return GcsBlobStore(request.getfixturevalue("bucket"), "ledger", client())

    store = blobs()
    windows = [
        Window(BASE + timedelta(minutes=m), BASE + timedelta(minutes=m + 5))
        for m in range(0, 60, 5)
    ]
    services = [service(sim, store if backend == "dir" else blobs(), clock)[0] for _ in windows]
    threads = [
        threading.Thread(target=s.compute, args=(MetricRequest("events", w),))
        for s, w in zip(services, windows, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    hour = Window(BASE, BASE + timedelta(hours=1))
    before = sim.queries
    whole = services[0].compute(MetricRequest("events", hour)).as_dict()
    assert sim.queries == before  # all twelve slices were kept by the twelve readers
    assert whole["value"] == truth(sim, MetricRequest("events", hour))


def test_past_the_exact_cap_a_ledger_answer_is_an_estimate_within_its_bound(
    tmp_path: Path,
) -> None:
    with Simulator(
        sim_config(today=DAY + timedelta(days=2), users=8000, events_per_minute=400)
    ) as crowd:
        clock = Clock(BASE + timedelta(days=1))
        reader = ExportReader(make_settings(crowd.url), QueryBudget(60, 3), now=clock)
        ledger = LedgerService(Ledger(DirBlobStore(tmp_path), Slicing(15)), reader, 1000, clock)
        request = MetricRequest("distinct_users", Window(BASE, BASE + timedelta(hours=2)))
        truth_users = crowd.truth(request.window.start, request.window.end).distinct_users
        for _ in range(2):  # read, then from the ledger alone: the same estimate
            body = ledger.compute(request).as_dict()
            assert body["estimate"] is True and truth_users > 1000
            assert abs(body["value"] - truth_users) <= truth_users * body["relative_error"]
        assert body["ledger"]["slices_read_now"] == 0
