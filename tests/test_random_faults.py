"""Random fault scripts, windows and filters against the simulator: the contract always holds."""

from __future__ import annotations

import time
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.metrics.service import MetricRequest, compute
from collector.simulator import Fault, Simulator
from collector.window import Window
from tests.conftest import past_window
from tests.helpers import make_settings

DEADLINE = 1.5
NAMES = ("Page View", "Sign Up", "Purchase", "Search", "Add To Cart")

at = st.integers(min_value=0, max_value=120_000)
faults = st.one_of(
    st.just(Fault.none()),
    at.map(Fault.reset),
    at.map(Fault.cut_chunked),
    at.map(Fault.cut_length),
    at.map(Fault.cut_silent),
    at.map(Fault.terminated_early),
    at.map(Fault.gzip_corrupt),
    at.map(lambda n: Fault.stall(n, seconds=5)),
    at.map(lambda n: Fault.trickle(n, interval=0.05)),
    st.sampled_from([500, 502, 503]).map(Fault.status),
    st.integers(0, 1).map(lambda s: Fault.status(429, retry_after=s)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.lists(faults, min_size=0, max_size=4),
    metric=st.sampled_from(["distinct_users", "events"]),
    offset=st.integers(0, 50),
    minutes=st.integers(1, 40),
    names=st.lists(st.sampled_from(NAMES), max_size=2, unique=True),
    gzip=st.booleans(),
)
def test_contract_under_random_faults(
    sim: Simulator, script, metric, offset, minutes, names, gzip
) -> None:
    sim.clear_faults()
    sim.script(script)
    base = past_window(60)
    start = base.start + timedelta(minutes=offset)
    window = Window(start, start + timedelta(minutes=minutes))
    reader = ExportReader(
        make_settings(
            sim.url,
            EXPORT_DEADLINE_SECONDS=str(DEADLINE),
            EXPORT_READ_TIMEOUT_SECONDS="0.5",
            EXPORT_MAX_ATTEMPTS="4",
            EXPORT_GZIP=str(gzip).lower(),
        ),
        QueryBudget(60, 3),
    )
    truth = sim.truth(window.start, window.end, names or None)
    started = time.monotonic()
    try:
        body = compute(MetricRequest(metric, window, tuple(names)), reader)
    except UpstreamUnavailable as err:
        assert err.export is not None and err.export["events"] == 0
        body = None
    assert time.monotonic() - started < DEADLINE + 0.5
    if body is None:
        return
    export = body["export"]
    assert export["attempts"] == len(export["errors"]) + (1 if body["complete"] else 0)
    exact = truth.events if metric == "events" else truth.distinct_users
    if body["complete"]:
        assert body["value"] == exact
        if metric == "events":
            assert body["by_event"] == truth.by_event
            assert export["events"] - export["duplicates"] == truth.events
    else:
        assert body["value"] <= exact
        if metric == "events":
            assert all(n <= truth.by_event.get(k, 0) for k, n in body["by_event"].items())
