"""SIGTERM with reads in flight: every request still answers inside Cloud Run's 10 s grace.

Cloud Run sends SIGTERM and kills 10 s later; gunicorn waits `graceful_timeout` (8 s) for the
requests it serves, while a read may have minutes of its own deadline left. The drain cuts every
read short (`collector.shutdown.drain`, wired in gunicorn.conf.py): the answer is what
was read, flagged partial, and its summary entry is logged before the worker exits.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from collector.errors import UpstreamUnavailable
from collector.export.budget import QueryBudget
from collector.export.deadline import Deadline
from collector.export.reader import ExportReader
from collector.metrics.answer import MetricRequest
from collector.shutdown import DRAIN_SECONDS, drain, draining, install, pause, report, reset_drain
from collector.simulator import Fault, Simulator
from tests.conftest import past_window
from tests.helpers import compute, make_settings
from tests.reliability.shutdown import IN_FLIGHT, run_shutdown, shutdown_problems


@pytest.fixture(autouse=True)
def _no_drain_left_over() -> Iterator[None]:
    reset_drain()
    yield
    reset_drain()


def slow_reader(sim: Simulator) -> ExportReader:
    settings = make_settings(
        sim.url, EXPORT_DEADLINE_SECONDS="60", EXPORT_READ_TIMEOUT_SECONDS="30"
    )
    return ExportReader(settings, QueryBudget(60, 3))


def run_in_thread(target, *args) -> tuple[threading.Thread, dict]:  # type: ignore[no-untyped-def]
    out: dict = {}

    def run() -> None:
        try:
            out["body"] = target(*args)
        except Exception as exc:  # handed to the test, which asserts on it
            out["error"] = exc
        out["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.timing
def test_a_drain_cuts_a_stalled_read_short_and_it_answers_partial(sim: Simulator) -> None:
    sim.script([Fault.stall(after_bytes=20_000, seconds=60)])
    window = past_window()
    reader = slow_reader(sim)
    thread, out = run_in_thread(compute, MetricRequest("events", window), reader)
    time.sleep(0.5)  # the stall has begun
    drained_at = time.monotonic()
    assert drain(0.5) == 1
    thread.join(timeout=5)
    assert out["ended"] - drained_at < 0.5 + 0.3
    body = out["body"]
    assert body["complete"] is False
    assert 0 < body["value"] <= sim.truth(window.start, window.end).events
    last = body["export"]["errors"][-1]
    assert last["kind"] == "shutdown" and last["next"] == "stop: shutting down"
    assert "shutting down" in last["message"]


@pytest.mark.timing
def test_a_backoff_wait_ends_at_the_drain_and_no_query_is_spent_after_it(sim: Simulator) -> None:
    sim.script([Fault.status(429, retry_after=30)])
    before = sim.queries
    thread, out = run_in_thread(compute, MetricRequest("events", past_window()), slow_reader(sim))
    time.sleep(0.3)  # waiting out the Retry-After
    drained_at = time.monotonic()
    drain(0.0)
    thread.join(timeout=5)
    assert out["ended"] - drained_at < 0.3
    assert isinstance(out["error"], UpstreamUnavailable)
    errors = out["error"].export["errors"]
    assert [(e["attempt"], e["kind"]) for e in errors] == [(1, "http_429"), (None, "shutdown")]
    assert errors[-1]["next"] == "stop: shutting down"
    assert sim.queries - before == 1


def test_a_deadline_made_during_a_drain_gets_only_what_is_left_of_it() -> None:
    drain(1.0)
    deadline = Deadline(120)
    assert deadline.remaining() <= 1.0
    assert deadline.cause == "shutdown"


def test_a_deadline_shorter_than_the_grace_keeps_its_own_end_and_cause() -> None:
    deadline = Deadline(0.2)
    drain(5.0)
    assert deadline.remaining() <= 0.2
    assert deadline.cause == "deadline"


@pytest.mark.timing
def test_pause_returns_as_soon_as_the_drain_begins() -> None:
    thread, out = run_in_thread(pause, 30)
    time.sleep(0.1)
    drained_at = time.monotonic()
    drain(1.0)
    thread.join(timeout=2)
    assert out["ended"] - drained_at < 0.2
    assert draining()


def test_the_sigterm_hook_drains_first_then_calls_gunicorns_handler() -> None:
    calls: list[str] = []
    worker = SimpleNamespace(pid=1, handle_exit=lambda sig, frame: calls.append("gunicorn"))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        install(worker, seconds=1.5)
        handler = signal.getsignal(signal.SIGTERM)
        assert handler is worker.handle_exit
        handler(signal.SIGTERM, None)  # type: ignore[operator]
        assert calls == ["gunicorn"]
        assert draining()
        assert Deadline(60).remaining() <= 1.5
        handler(signal.SIGTERM, None)  # type: ignore[operator]
        assert calls == ["gunicorn", "gunicorn"]  # a second SIGTERM is gunicorn's alone
        assert worker.drain_cut == 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_worker_exit_logs_one_drain_entry(caplog) -> None:
    worker = SimpleNamespace(pid=7, drain_started=time.monotonic() - 2.0, drain_cut=3)
    with caplog.at_level("INFO", logger="collector.shutdown"):
        report(worker)
        report(SimpleNamespace(pid=8))  # no SIGTERM, no entry
    (record,) = caplog.records
    assert record.json_fields["drain"] is True and record.json_fields["reads_cut"] == 3


@pytest.mark.timing
def test_sigterm_to_gunicorn_answers_every_slow_request_inside_the_grace(
    sim: Simulator, tmp_path: Path
) -> None:
    # A stall, a trickle, headers that never come, a 40 s Retry-After wait: EXPORT_DEADLINE
    # 60 s, so without the drain each would outlive Cloud Run's 10 s.
    figures = run_shutdown(sim, tmp_path / "gunicorn.log")
    assert shutdown_problems(figures) == []
    assert figures.worst_answer < DRAIN_SECONDS + 1.0
    assert figures.exit_seconds < DRAIN_SECONDS + 3.0
    statuses = sorted(status for status, _, _ in figures.answers)
    assert statuses == [200, 200, 503, 503]
    for status, body, _ in figures.answers:
        if status == 200:
            assert body["complete"] is False and "lower bound" in body["note"]
    assert [s["status"] for s in figures.summaries].count(200) == 2
    assert len(figures.summaries) == IN_FLIGHT
