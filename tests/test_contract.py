"""The contract under faults, in one suite: any fault script, window, filter and metric.

Every fault the simulator has (cuts, resets, stalls, trickles, corrupt gzip, headers that never
come, 5xx, 429 with any Retry-After, duplicated lines, leaks of other days and names, every form
of the early-end marker, a portal page, invalid UTF-8, an unframed body) meets every metric,
through the HTTP routes, and the answer is checked against
`tests.reliability.chaos.contract_violations`: exact when complete, a lower bound when not, the
figures adding up, inside the deadline. Then the scripts worth keeping, each pinning one way a
run can go, and a short load through real gunicorn with the shipped config (no worker lost,
none replaced). `python -m bench.reliability` runs the same at length for the figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.app import create_app
from collector.config import Settings
from collector.simulator import Fault, Simulator
from tests.helpers import service_env
from tests.reliability.chaos import (
    FAULT_KINDS,
    Scenario,
    base_hour,
    contract_violations,
    export_violations,
    make_fault,
    request_for,
    run_scenario,
)
from tests.reliability.common import METRICS, NAMES, small_sim_config
from tests.reliability.load import run_load

DEADLINE = 1.2


@pytest.fixture(scope="module")
def chaos_sim() -> Iterator[Simulator]:
    with Simulator(small_sim_config()) as running:
        yield running


faults = st.builds(
    make_fault, st.sampled_from(FAULT_KINDS), st.integers(0, 60_000), st.integers(0, 3)
)
scenarios = st.builds(
    Scenario,
    script=st.lists(faults, max_size=4).map(tuple),
    metric=st.sampled_from(METRICS),
    offset=st.integers(0, 180),
    minutes=st.integers(1, 120),
    names=st.lists(st.sampled_from(NAMES), max_size=3, unique=True).map(tuple),
    gzip=st.booleans(),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sc=scenarios)
def test_the_contract_holds_under_any_fault_script(
    chaos_sim: Simulator, sc: Scenario, timing_asserted: bool
) -> None:
    outcome = run_scenario(chaos_sim, sc, DEADLINE)
    assert contract_violations(outcome, in_time=timing_asserted) == [], (
        sc,
        outcome.status,
        outcome.body,
    )


# -- scripts worth keeping: each pins one way a run can go -----------------------------------


def test_a_trickle_on_the_retry_after_a_5xx_still_ends_at_the_deadline(
    chaos_sim, timing_asserted: bool
) -> None:
    # The retry reuses the pooled keep-alive socket of the 503: the watchdog must cover it.
    sc = Scenario((Fault.status(503), Fault.trickle(1_000, interval=0.05)), "distinct_users")
    outcome = run_scenario(chaos_sim, sc, DEADLINE)
    assert contract_violations(outcome, in_time=timing_asserted) == []
    assert outcome.body["complete"] is False
    assert outcome.body["export"]["errors"][-1]["kind"] == "deadline"


def test_an_attempt_the_per_second_budget_cannot_fit_is_reported_not_made(
    chaos_sim, timing_asserted: bool
) -> None:
    # One query a second and a 1 s deadline: the retry would wait past the deadline. `errors`
    # then holds an entry for an attempt never made, so attempts == failed + complete counts
    # only the entries of attempts made.
    sc = Scenario((Fault.status(500),), "events")
    outcome = run_scenario(chaos_sim, sc, 1.0, EXPORT_QUERIES_PER_SECOND="1")
    assert contract_violations(outcome, in_time=timing_asserted) == []
    assert outcome.status == 503
    export = outcome.body["export"]
    assert export["attempts"] == 1
    assert [(e["attempt"], e["kind"]) for e in export["errors"]] == [
        (1, "http_5xx"),
        (None, "deadline"),  # the attempt it stopped was never made: no number
    ]


def test_a_spent_budget_answers_that_no_attempt_was_made(chaos_sim) -> None:
    # Before, the 503 said `attempts: 0` while its one error said `attempt: 1`.
    chaos_sim.clear_faults()
    env = service_env(chaos_sim, EXPORT_QUERIES_PER_HOUR="1", LOG_LEVEL="error")
    client = create_app(Settings.from_env(env)).test_client()
    params = request_for("events", base_hour(), 60, ())
    assert client.get("/events", query_string=params).status_code == 200
    refused = client.get("/events", query_string=params)
    body = refused.get_json()
    assert (refused.status_code, body["code"]) == (503, "budget_exhausted")
    export = body["export"]
    assert export["attempts"] == 0
    assert [(e["attempt"], e["kind"], e["bytes"], e["next"]) for e in export["errors"]] == [
        (None, "budget", 0, "stop: budget spent")
    ]
    assert export_violations(export, False, 60) == []


def test_every_line_duplicated_then_a_reset_is_exact_on_the_retry(
    chaos_sim, timing_asserted: bool
) -> None:
    sc = Scenario((Fault.duplicate_lines(1.0), Fault.none()), "events", minutes=90)
    outcome = run_scenario(chaos_sim, sc, DEADLINE)
    assert contract_violations(outcome, in_time=timing_asserted) == []
    assert outcome.body["complete"] is True and outcome.body["export"]["duplicates"] > 0
    sc = Scenario((Fault.reset(5_000), Fault.duplicate_lines(1.0)), "events", minutes=90)
    outcome = run_scenario(chaos_sim, sc, DEADLINE)
    assert contract_violations(outcome, in_time=timing_asserted) == []
    export = outcome.body["export"]
    assert outcome.body["complete"] is True and export["attempts"] == 2
    assert export["events"] - export["duplicates"] == outcome.truth.events


def test_a_leak_of_whole_days_and_other_names_is_filtered_exactly(
    chaos_sim, timing_asserted: bool
) -> None:
    sc = Scenario((Fault.leak(), Fault.none()), "events", names=("Sign Up",), gzip=False)
    outcome = run_scenario(chaos_sim, sc, DEADLINE)
    assert contract_violations(outcome, in_time=timing_asserted) == []
    assert outcome.body["complete"] is True
    assert outcome.body["export"]["skipped"] > outcome.body["export"]["events"]


def test_terminated_early_on_the_first_record_then_a_corrupt_gzip_day(
    chaos_sim, timing_asserted: bool
) -> None:
    script = (Fault.terminated_early(0), Fault.gzip_corrupt(2_000), Fault.none())
    outcome = run_scenario(chaos_sim, Scenario(script, "active_users"), DEADLINE)
    assert contract_violations(outcome, in_time=timing_asserted) == []
    export = outcome.body["export"]
    assert outcome.body["complete"] is True
    assert [e["kind"] for e in export["errors"]] == ["terminated_early", "content_decoding"]


def test_headers_that_never_come_then_429_with_an_unparseable_retry_after(
    chaos_sim, timing_asserted: bool
) -> None:
    script = (Fault.stall_headers(30), Fault.status(429, retry_after="soon"), Fault.none())
    outcome = run_scenario(chaos_sim, Scenario(script, "distinct_users"), 2.0)
    assert contract_violations(outcome, in_time=timing_asserted) == []
    assert [e["kind"] for e in outcome.body["export"]["errors"]] == ["read_timeout", "http_429"]


# -- load on real gunicorn, briefly -----------------------------------------------------------


def test_load_on_real_gunicorn_through_random_faults(
    chaos_sim, tmp_path: Path, timing_asserted: bool
) -> None:
    figures = run_load(
        chaos_sim, tmp_path / "gunicorn.log", seconds=5, clients=4, seed=2, in_time=timing_asserted
    )
    assert figures.requests >= 8
    assert figures.violations == []
    assert figures.restarts == 0 and figures.booted == 2
    assert figures.log_problems == []
    assert figures.secret_hits == 0 and figures.scanned_lines > 0
    if timing_asserted:
        assert figures.worst_server <= figures.deadline + 0.3
        assert figures.worst_client <= figures.deadline + 1.5
    assert figures.rss_drift < 64
    assert sum(figures.faults.values()) > 0
