"""The ledger's invariants, against a simulator whose late events arrive on the test's clock:

1. a day is rolled up only when its reads are all complete and none is due (a rollup is never
   read again, so one made while a refresh was owed would lose that refresh's late events);
2. a kept slice is used only as a slice of the length it was cut with: one of another length (a
   changed `LEDGER_SLICE_MINUTES`, two revisions during a deploy) is read again, never
   reinterpreted;
3. after any sequence of failed and successful reads, a complete answer holds at least what the
   export held at its `as_of` and never more than it holds now, and once every refresh is past
   and a read succeeds, it holds every event that arrived by its slice's last refresh age.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.errors import UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.ledger.service import LedgerService
from collector.ledger.slices import Slicing
from collector.ledger.store import Ledger
from collector.metrics.answer import MetricRequest
from collector.simulator import Fault, Simulator
from collector.stores import BlobStore, file_document
from collector.stores.directory import DirBlobStore
from collector.window import Window
from tests.conftest import sim_config
from tests.helpers import make_settings
from tests.reliability.chaos import FAULT_KINDS, make_fault
from tests.test_ledger import Clock  # the test's now: also when late events arrive

DAY = date(2026, 11, 20)  # the simulated calendar
MIDNIGHT = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
WHOLE_DAY = Window(MIDNIGHT, MIDNIGHT + timedelta(days=1))
REFRESH = (1.0, 24.0)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """One event in 16 arrives up to 40 hours late: some between a slice's 1 h and 24 h
    refreshes, some after its last."""
    config = sim_config(
        today=DAY + timedelta(days=6),
        events_per_minute=8,
        users=20_000,  # most seen once a day: a late event is often a new user
        late_rate=1 / 16,
        late_hours=40,
    )
    with Simulator(config) as running:
        yield running
        running.set_clock(None)


def ledger_service(
    sim: Simulator, blobs: BlobStore, clock: Clock, minutes: int, refresh=REFRESH
) -> LedgerService:
    settings = make_settings(
        sim.url,
        EXPORT_MAX_ATTEMPTS="2",
        EXPORT_DEADLINE_SECONDS="60",  # a whole day at once: no loaded machine cuts it short
        EXPORT_BACKOFF_BASE_SECONDS="0.01",  # the faults are the point here, not the waits
        EXPORT_BACKOFF_CAP_SECONDS="0.05",
    )
    reader = ExportReader(settings, QueryBudget(10_000, 1_000), now=clock)
    return LedgerService(Ledger(blobs, Slicing(minutes, refresh)), reader, 0, clock)


def value(sim: Simulator, request: MetricRequest, arrived_by: object) -> int:
    """What the export holds of the request's window once the events processed by `arrived_by`
    (a moment, or a function of an event's time to one) are in it."""
    window = request.window
    t = sim.truth(window.start, window.end, request.events or None, arrived_by)  # type: ignore[arg-type]
    return t.events if request.metric == "events" else t.distinct_users


def settled_by(minutes: int, last_refresh: float = REFRESH[-1]) -> Callable[[int], float]:
    """An event's last refresh moment: its slice's end plus the last refresh age."""
    step = minutes * 60
    return lambda t: (t // step + 1) * step + last_refresh * 3600


def failing() -> list[Fault]:
    return [Fault.status(503)] * 4  # every attempt of one read


# -- 1. no rollup while a refresh is owed ------------------------------------------------------


@pytest.mark.parametrize("minutes", [60, 15])
def test_a_day_whose_last_refresh_failed_is_not_rolled_up_and_its_late_events_count(
    sim: Simulator, tmp_path: Path, minutes: int
) -> None:
    blobs = DirBlobStore(tmp_path)
    clock = Clock(MIDNIGHT + timedelta(hours=25, minutes=5))  # every slice past its 1 h age
    sim.set_clock(clock)
    ledger = ledger_service(sim, blobs, clock, minutes)
    for metric in ("events", "distinct_users"):
        assert ledger.compute(MetricRequest(metric, WHOLE_DAY)).as_dict()["complete"] is True
    # Past the last refresh age of every slice: the refresh read fails.
    clock.moment = MIDNIGHT + timedelta(hours=48, minutes=10)
    sim.script(failing())
    failed = ledger.compute(MetricRequest("events", WHOLE_DAY)).as_dict()
    sim.clear_faults()
    assert failed["complete"] is False
    assert blobs.names("days/") == []  # it still owes the refresh that failed
    # The next answer reads what is due: late events of the last hours are in, and then the
    # day is rolled up from reads that owe nothing.
    # Due: every slice not read past its 24 h age at 25:05 (those that ended after 01:05).
    due = sum(1 for end in range(minutes, 24 * 60 + 1, minutes) if end > 65)
    for metric in ("events", "distinct_users"):  # the first reads, the second is kept
        request = MetricRequest(metric, WHOLE_DAY)
        body = ledger.compute(request).as_dict()
        assert body["complete"] is True
        assert body["ledger"]["slices_read_now"] == (due if metric == "events" else 0)
        settled = value(sim, request, settled_by(minutes))
        assert value(sim, request, MIDNIGHT + timedelta(hours=25, minutes=5)) < settled
        assert settled <= body["value"] <= value(sim, request, clock.moment)
    assert blobs.names("days/") == ["days/2026-11-20"]
    again = ledger.compute(MetricRequest("events", WHOLE_DAY)).as_dict()
    assert again["ledger"]["queries"] == 0 and again["ledger"]["as_of"] >= "2026-11-21T"


def test_a_rollup_made_under_a_shorter_last_refresh_is_read_again_and_replaced(
    sim: Simulator, tmp_path: Path
) -> None:
    """LEDGER_REFRESH_HOURS raised from 1,24 to 1,24,36: the day owes its 36 h refresh."""
    blobs = DirBlobStore(tmp_path)
    clock = Clock(MIDNIGHT + timedelta(hours=48, minutes=10))
    sim.set_clock(clock)
    request = MetricRequest("events", WHOLE_DAY)
    first = ledger_service(sim, blobs, clock, 60).compute(request).as_dict()
    assert first["complete"] is True and blobs.names("days/") == ["days/2026-11-20"]
    clock.moment = MIDNIGHT + timedelta(hours=60, minutes=10)
    longer = ledger_service(sim, blobs, clock, 60, refresh=(1.0, 24.0, 36.0))
    body = longer.compute(request).as_dict()
    # The slices that ended by 12:10 were read past their 36 h age already (at 48:10).
    assert body["ledger"]["slices_read_now"] == 12 and body["value"] >= first["value"]
    settled = value(sim, request, settled_by(60, 36.0))
    assert first["value"] < settled <= body["value"] <= value(sim, request, clock.moment)
    again = longer.compute(request).as_dict()  # rolled up again, now settled at 36 h
    assert again["ledger"]["queries"] == 0 and again["value"] == body["value"]
    assert again["ledger"]["slices_from_ledger"] == 24


def test_a_check_whose_read_fails_at_a_days_last_refresh_leaves_the_day_owing_it(
    sim: Simulator, tmp_path: Path
) -> None:
    """A /check stops reading after a failed read and answers every window from what is kept;
    a whole day in a baseline window must not be rolled up from reads that still owe their
    24 h refresh: the next /check reads them, and the baseline holds the late events."""
    rules = {
        "notifiers": {"log": {"type": "log"}},
        "defaults": {"lag_minutes": 0, "notify": ["log"]},
        "rules": [
            {
                "name": "day-over-day",
                "metric": "events",
                "window_minutes": 1440,
                "drop_pct": 99,
                "baseline": "day",
            }
        ],
    }
    clock = Clock(MIDNIGHT + timedelta(hours=25, minutes=10))
    sim.set_clock(clock)
    settings = make_settings(
        sim.url,
        LEDGER_STORE=str(tmp_path / "ledger"),
        LEDGER_SLICE_MINUTES="60",
        EXPORT_MAX_ATTEMPTS="1",
    )
    reader = ExportReader(settings, QueryBudget(60, 3), now=clock)
    app = create_app(
        settings,
        reader=reader,
        now=clock,
        rules=parse_rules(rules, {}),
        store=file_document(tmp_path / "state.json"),
    )
    http = app.test_client()
    kept = http.get("/events?from=2026-11-20T00:00:00Z&to=2026-11-21T01:00:00Z").get_json()
    assert kept["complete"] is True and kept["ledger"]["slices_read_now"] == 25  # at 25:10
    clock.moment = MIDNIGHT + timedelta(days=2)  # the day is the baseline window, due its 24 h
    sim.script([Fault.status(503)])
    failed = http.get("/check").get_json()
    sim.clear_faults()
    assert failed["rules"][0]["complete"] is False
    assert list((tmp_path / "ledger").glob("days/*")) == []  # the day still owes its refresh
    body = http.get("/check").get_json()
    [rule] = body["rules"]
    baseline = MetricRequest("events", WHOLE_DAY)
    assert rule["complete"] is True
    assert value(sim, baseline, MIDNIGHT + timedelta(hours=25, minutes=10)) < value(
        sim, baseline, settled_by(60)
    )
    assert value(sim, baseline, settled_by(60)) <= rule["previous"]["value"]


# -- 2. a slice is a slice of its own length ---------------------------------------------------


@pytest.mark.parametrize(("before", "after"), [(5, 10), (5, 1), (10, 15), (60, 5)])
def test_a_changed_slice_length_reads_again_and_never_reinterprets_kept_slices(
    sim: Simulator, tmp_path: Path, before: int, after: int
) -> None:
    clock = Clock(MIDNIGHT + timedelta(hours=14))
    sim.set_clock(clock)
    window = Window(MIDNIGHT + timedelta(hours=10), MIDNIGHT + timedelta(hours=11))
    for metric in ("events", "distinct_users"):
        blobs = DirBlobStore(tmp_path / metric)
        request = MetricRequest(metric, window)
        exact = value(sim, request, clock.moment)
        assert (
            ledger_service(sim, blobs, clock, before).compute(request).as_dict()["value"] == exact
        )
        changed = ledger_service(sim, blobs, clock, after)
        body = changed.compute(request).as_dict()
        assert body["complete"] is True and body["value"] == exact
        assert body["ledger"]["slices_read_now"] == 60 // after
        again = changed.compute(request).as_dict()  # kept at the new length now
        assert again["value"] == exact and again["ledger"]["queries"] == 0


def test_two_revisions_with_different_slice_lengths_share_a_store_and_both_stay_exact(
    sim: Simulator, tmp_path: Path
) -> None:
    """A rolling deploy: each revision keeps its own slices in the same hour objects, and
    neither loses the other's."""
    blobs = DirBlobStore(tmp_path)
    clock = Clock(MIDNIGHT + timedelta(hours=14))
    sim.set_clock(clock)
    old, new = (ledger_service(sim, blobs, clock, m) for m in (5, 15))
    request = MetricRequest("distinct_users", Window(MIDNIGHT, MIDNIGHT + timedelta(hours=3)))
    exact = value(sim, request, clock.moment)
    for revision in (old, new, old, new):
        body = revision.compute(request).as_dict()
        assert body["complete"] is True and body["value"] == exact
    for revision in (old, new):
        assert revision.compute(request).as_dict()["ledger"]["queries"] == 0


# -- 3. any sequence of reads, faults, refresh ages and slice lengths ---------------------------

faults = st.builds(
    make_fault,
    st.sampled_from([k for k in FAULT_KINDS if k not in ("stall", "stall_headers", "trickle")]),
    st.integers(0, 20_000),
    st.integers(0, 3),
)
steps = st.tuples(
    st.sampled_from([0.1, 0.5, 1.0, 2.0, 6.0, 12.0, 23.0, 24.0, 30.0]),  # hours the clock moves
    st.sampled_from([15, 30, 60]),  # the slice length of the revision that answers
    st.sampled_from(["events", "distinct_users"]),
    st.one_of(st.none(), st.tuples(st.integers(0, 23 * 60), st.integers(1, 24 * 60))),  # window
    st.lists(faults, max_size=3),
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start_hours=st.integers(6, 30), script=st.lists(steps, min_size=1, max_size=6))
def test_as_of_and_complete_stay_true_after_any_sequence_of_failed_and_successful_reads(
    sim: Simulator, tmp_path_factory, start_hours: int, script
) -> None:
    blobs = DirBlobStore(tmp_path_factory.mktemp("ledger"))
    clock = Clock(MIDNIGHT + timedelta(hours=start_hours))
    sim.set_clock(clock)
    minutes = 60
    for hours, minutes, metric, span, script_faults in script:
        clock.moment += timedelta(hours=hours)
        window = WHOLE_DAY
        if span is not None:
            start = MIDNIGHT + timedelta(minutes=span[0])
            end = min(start + timedelta(minutes=span[1]), clock.moment)
            if end <= start:
                continue
            window = Window(start, end)
        if window.end > clock.moment:
            continue  # the day is not over yet: a window may not end in the future
        request = MetricRequest(metric, window)
        sim.script(script_faults)
        try:
            body = ledger_service(sim, blobs, clock, minutes).compute(request).as_dict()
        except UpstreamUnavailable:
            body = None
        finally:
            sim.clear_faults()
        if body is None:
            continue
        now = value(sim, request, clock.moment)
        assert body["value"] <= now  # never more than the export holds
        if body["complete"]:
            as_of = datetime.fromisoformat(body["ledger"]["as_of"])
            assert body["value"] >= value(sim, request, as_of)
    # Every refresh past, the export healthy: the whole day holds every event that arrived by
    # its slice's last refresh age, from the ledger's reads or this one, and is rolled up.
    clock.moment = max(clock.moment, MIDNIGHT + timedelta(days=2, hours=1))
    final = ledger_service(sim, blobs, clock, minutes)
    for metric in ("events", "distinct_users"):
        request = MetricRequest(metric, WHOLE_DAY)
        body = final.compute(request).as_dict()
        assert body["complete"] is True
        assert value(sim, request, settled_by(minutes)) <= body["value"]
        assert body["value"] <= value(sim, request, clock.moment)
    assert blobs.names("days/") == ["days/2026-11-20"]
