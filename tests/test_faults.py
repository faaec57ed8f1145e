"""Every fault class over real loopback sockets: exact when complete, a lower bound when not."""

from __future__ import annotations

import time

import pytest

from collector.errors import BudgetExhausted, UpstreamRefused, UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.metrics.answer import MetricRequest
from collector.simulator import Fault, Simulator
from tests.conftest import past_window, sim_config
from tests.helpers import compute, make_settings

AFTER = 60_000  # bytes of body before a mid-stream fault: well inside a ~600 KB body


def run(sim: Simulator, metric: str = "events", events: tuple[str, ...] = (), **env: str):
    settings = make_settings(sim.url, **env)
    reader = ExportReader(settings, QueryBudget(60, 3))
    window = past_window()
    body = compute(MetricRequest(metric, window, events), reader)
    return body, sim.truth(window.start, window.end, events or None)


def assert_exact(body: dict, truth) -> None:
    assert body["complete"] is True
    if body["metric"] == "events":
        assert body["value"] == truth.events
        assert body["by_event"] == truth.by_event
    else:
        assert body["value"] == truth.distinct_users


def assert_lower_bound(body: dict, truth) -> None:
    assert body["complete"] is False
    if body["metric"] == "events":
        assert body["value"] <= truth.events
        assert all(n <= truth.by_event.get(k, 0) for k, n in body["by_event"].items())
    else:
        assert body["value"] <= truth.distinct_users


@pytest.mark.parametrize("metric", ["distinct_users", "events", "active_users"])
def test_clean_stream_is_exact(sim: Simulator, metric: str) -> None:
    body, truth = run(sim, metric)
    assert_exact(body, truth)
    assert body["export"]["attempts"] == 1
    assert body["export"]["bad_lines"] >= 1  # the simulator's malformed lines, skipped
    if metric == "events":
        assert body["export"]["events"] - body["export"]["duplicates"] == truth.events
    else:
        assert "duplicates" not in body["export"]  # user metrics keep no event keys


def test_event_filter_is_exact(sim: Simulator) -> None:
    body, truth = run(sim, "events", ("Sign Up", "Purchase"))
    assert_exact(body, truth)
    assert set(body["by_event"]) <= {"Sign Up", "Purchase"}


@pytest.mark.parametrize(
    ("fault", "kinds"),
    [
        (Fault.reset(after_bytes=AFTER), {"connection_broken", "connection_error"}),
        (Fault.cut_chunked(after_bytes=AFTER), {"connection_broken"}),
        (Fault.cut_length(after_bytes=AFTER), {"connection_broken"}),
        (Fault.cut_silent(after_bytes=AFTER), {"truncated"}),
        (Fault.terminated_early(after_bytes=AFTER), {"terminated_early"}),
        (Fault.stall(after_bytes=AFTER, seconds=30), {"read_timeout"}),
        (Fault.stall_headers(seconds=30), {"read_timeout"}),
        (Fault.status(503), {"http_5xx"}),
        (Fault.status(500), {"http_5xx"}),
        (Fault.status(429, retry_after=1), {"http_429"}),
        (Fault.gzip_corrupt(after_bytes=AFTER), {"content_decoding"}),
    ],
    ids=lambda v: getattr(v, "kind", None) or "",
)
@pytest.mark.parametrize("metric", ["distinct_users", "events"])
def test_a_failed_attempt_is_retried_without_double_counting(sim, fault, kinds, metric) -> None:
    sim.script([fault])
    started = time.monotonic()
    body, truth = run(sim, metric, EXPORT_READ_TIMEOUT_SECONDS="0.5")
    assert_exact(body, truth)
    export = body["export"]
    assert export["attempts"] == 2
    (error,) = export["errors"]
    assert error["kind"] in kinds
    if fault.kind == "status" and getattr(fault, "retry_after", None):
        assert error["wait"] >= 1.0  # Retry-After honoured
        assert time.monotonic() - started >= 1.0


def test_every_attempt_failing_mid_body_gives_a_flagged_lower_bound(sim: Simulator) -> None:
    sim.script([Fault.reset(after_bytes=AFTER * (i + 1)) for i in range(3)])
    for metric in ("events", "distinct_users"):
        body, truth = run(sim, metric, EXPORT_MAX_ATTEMPTS="3")
        assert_lower_bound(body, truth)
        assert body["export"]["attempts"] == 3
        assert len(body["export"]["errors"]) == 3
        assert "lower bound" in body["note"]
        sim.script([Fault.reset(after_bytes=AFTER * (i + 1)) for i in range(3)])


def test_refusal_is_not_retried(sim: Simulator) -> None:
    sim.script([Fault.status(403)])
    before = sim.queries
    with pytest.raises(UpstreamRefused) as err:
        run(sim)
    assert sim.queries - before == 1
    assert err.value.upstream_status == 403


def test_wrong_credentials_are_refused_with_mixpanel_text(sim: Simulator) -> None:
    with pytest.raises(UpstreamRefused) as err:
        run(sim, MIXPANEL_SERVICE_ACCOUNT_SECRET="not-the-secret")
    assert err.value.upstream_status == 401
    assert "Invalid credentials" in err.value.message


def test_nothing_read_is_unavailable(sim: Simulator) -> None:
    sim.script([Fault.status(503)] * 2)
    with pytest.raises(UpstreamUnavailable) as err:
        run(sim, EXPORT_MAX_ATTEMPTS="2")
    assert err.value.export["attempts"] == 2


@pytest.mark.timing
@pytest.mark.parametrize(
    "fault",
    [Fault.trickle(after_bytes=AFTER, interval=0.05), Fault.stall(after_bytes=AFTER, seconds=60)],
    ids=["trickle", "stall"],
)
def test_the_total_deadline_holds_whatever_the_server_does(sim: Simulator, fault) -> None:
    # Read timeout longer than the deadline: only the reader's own deadline can stop this.
    sim.script([fault] * 5)
    started = time.monotonic()
    body, truth = run(sim, EXPORT_DEADLINE_SECONDS="2", EXPORT_READ_TIMEOUT_SECONDS="30")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 0.5
    assert_lower_bound(body, truth)
    assert body["export"]["errors"][-1]["kind"] == "deadline"


@pytest.mark.timing
def test_a_retry_after_beyond_the_deadline_ends_the_run_instead_of_sleeping(sim) -> None:
    sim.script([Fault.status(429, retry_after=60)])
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as err:
        run(sim, EXPORT_DEADLINE_SECONDS="3")
    assert time.monotonic() - started < 1.5
    assert "cross the deadline" in str(err.value.export["errors"])  # type: ignore[index]


def test_spent_budget_answers_before_mixpanel_does(sim: Simulator) -> None:
    settings = make_settings(sim.url)
    reader = ExportReader(settings, QueryBudget(per_hour=2, per_second=3))
    request = MetricRequest("events", past_window())
    compute(request, reader)
    compute(request, reader)
    before = sim.queries
    with pytest.raises(BudgetExhausted) as err:
        compute(request, reader)
    assert sim.queries == before
    assert "EXPORT_QUERIES_PER_HOUR" in err.value.message
    assert err.value.retry_in > 3500


@pytest.mark.parametrize("gzip", ["true", "false"])
def test_gzip_and_identity_bodies_are_equally_exact(sim: Simulator, gzip: str) -> None:
    body, truth = run(sim, EXPORT_GZIP=gzip)
    assert_exact(body, truth)
    assert ("gzip" in sim.requests[-1]["headers"].get("accept-encoding", "")) == (gzip == "true")


def test_server_side_filters_are_not_trusted() -> None:
    with Simulator(sim_config(honour_where=False, honour_event_filter=False)) as loose:
        body, truth = run(loose, "events", ("Sign Up",))
        assert_exact(body, truth)
        assert body["export"]["skipped"] > 0  # whole days and other names were sent


def test_legacy_project_timezone_is_exact() -> None:
    zone = "America/Los_Angeles"
    with Simulator(sim_config(project_timezone=zone)) as legacy:
        body, truth = run(legacy, "distinct_users", MIXPANEL_PROJECT_TIMEZONE=zone)
        assert_exact(body, truth)
        params = legacy.requests[-1]["params"]
        assert params["from_date"] <= params["to_date"]
