"""Decode helpers: real forked processes over real loopback streams, compared with one process.

Helpers must change nothing but speed: the same answers and figures, retries still idempotent,
a helper that dies or cannot be forked loses nothing, and no process or descriptor outlives a
read. Here helpers start at the first byte (`decode_after_bytes=0`) so that small simulator
bodies use them; the service starts them only for long bodies.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from collector.export import parallel
from collector.export.batch import Batch, Row
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.metrics.service import MetricRequest, compute
from collector.simulator import Fault, Simulator
from tests.conftest import past_window, sim_config
from tests.helpers import gunicorn_service, make_settings

AFTER = 60_000


def run(sim: Simulator, metric: str, processes: int, **env: str) -> dict:
    settings = make_settings(sim.url, EXPORT_DECODE_PROCESSES=str(processes), **env)
    reader = ExportReader(settings, QueryBudget(60, 3), decode_after_bytes=0)
    return compute(MetricRequest(metric, past_window()), reader)


def figures(body: dict) -> dict:
    export = body["export"]
    keep = ("attempts", "events", "duplicates", "bad_lines", "skipped", "lines", "bytes")
    return {
        "value": body["value"],
        "by_event": body.get("by_event"),
        **{k: export[k] for k in keep},
    }


def children() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("metric", ["distinct_users", "events", "active_users"])
def test_helpers_give_exactly_the_figures_of_one_process(sim: Simulator, metric: str) -> None:
    alone = run(sim, metric, 0)
    helped = run(sim, metric, 2)
    assert helped["complete"] and alone["complete"]
    assert (helped["export"]["decode_helpers"], alone["export"]["decode_helpers"]) == (2, 0)
    assert figures(helped) == figures(alone)
    truth = sim.truth(past_window().start, past_window().end)
    assert helped["value"] == (truth.events if metric == "events" else truth.distinct_users)
    assert helped["export"]["bad_lines"] >= 1  # the simulator's malformed lines, seen by a helper


@pytest.mark.parametrize(
    "fault",
    [
        Fault.reset(after_bytes=AFTER),
        Fault.cut_silent(after_bytes=AFTER),
        Fault.terminated_early(after_bytes=AFTER),
        Fault.gzip_corrupt(after_bytes=AFTER),
    ],
    ids=lambda f: f.kind,
)
def test_a_retry_with_helpers_never_double_counts(sim: Simulator, fault: Fault) -> None:
    for metric in ("events", "distinct_users"):
        sim.script([fault])
        body = run(sim, metric, 1)
        truth = sim.truth(past_window().start, past_window().end)
        assert body["complete"] is True and body["export"]["attempts"] == 2
        assert body["export"]["decode_helpers"] == 1
        assert body["value"] == (truth.events if metric == "events" else truth.distinct_users)
        assert body["export"]["events"] - body["export"]["duplicates"] == truth.events


def test_the_deadline_holds_with_helpers(sim: Simulator) -> None:
    sim.script([Fault.trickle(after_bytes=AFTER, interval=0.05)] * 5)
    started = time.monotonic()
    body = run(sim, "events", 1, EXPORT_DEADLINE_SECONDS="2", EXPORT_READ_TIMEOUT_SECONDS="30")
    assert time.monotonic() - started < 2.5
    truth = sim.truth(past_window().start, past_window().end)
    assert body["complete"] is False and 0 < body["value"] <= truth.events
    assert body["export"]["errors"][-1]["kind"] == "deadline"
    assert children() == []


@pytest.mark.parametrize("blocks_answered", [0, 2])
def test_a_helper_that_dies_mid_read_loses_nothing(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog, blocks_answered: int
) -> None:
    """The helper (a real fork) answers some blocks, then dies holding the next one."""
    serve = parallel._child

    def dies_after_some(conn, memory, event_filter) -> None:
        class Dying:
            def __init__(self) -> None:
                self.answered = 0

            def recv(self):
                message = conn.recv()
                if self.answered == blocks_answered:
                    os._exit(3)  # dies holding this block
                self.answered += 1
                return message

            def send(self, answer) -> None:
                conn.send(answer)

            def fileno(self) -> int:
                return conn.fileno()

        serve(Dying(), memory, event_filter)

    monkeypatch.setattr(parallel, "_child", dies_after_some)
    with caplog.at_level(logging.WARNING, logger="collector.export"):
        helped = run(sim, "events", 1)
    alone = run(sim, "events", 0)
    assert helped["complete"] and helped["export"]["attempts"] == 1
    assert figures(helped) == figures(alone)
    assert any("decode helper stopped" in r.getMessage() for r in caplog.records)
    assert children() == []


def test_a_stuck_helper_costs_at_most_a_second_and_loses_nothing(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    def stops(conn, memory, event_filter) -> None:
        conn.recv()
        os.kill(os.getpid(), signal.SIGSTOP)  # alive, holding a block, never answering

    monkeypatch.setattr(parallel, "_child", stops)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="collector.export"):
        helped = run(sim, "events", 1)
    assert time.monotonic() - started < parallel.ANSWER_SECONDS + 1.0
    assert figures(helped) == figures(run(sim, "events", 0))
    assert any("no answer in 1 s" in r.getMessage() for r in caplog.records)
    assert children() == []  # the stopped helper was killed and reaped


def test_a_fork_that_fails_falls_back_to_one_process(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(parallel.os, "fork", no_fork)
    with caplog.at_level(logging.WARNING, logger="collector.export"):
        body = run(sim, "events", 1)
    assert (
        body["complete"]
        and body["value"] == sim.truth(past_window().start, past_window().end).events
    )
    assert any("could not start a decode helper" in r.getMessage() for r in caplog.records)


def test_no_helper_or_descriptor_outlives_its_read(sim: Simulator) -> None:
    run(sim, "events", 2)  # warm: first-use imports and pools
    before = open_fds()
    for metric in ("events", "distinct_users"):
        run(sim, metric, 2)
    assert children() == []
    assert open_fds() <= before  # other tests' sockets may close meanwhile; a leak adds


def test_a_hashed_batch_says_it_cannot_be_iterated() -> None:
    rows = [Row("a", "u", 1.0, "i"), Row("b", "v", 2.0, None)]
    plain = Batch.of(rows)
    hashed = Batch.hashed(
        plain.names, plain.times, plain.user_hashes(), plain.key_hashes(), plain.keyed()
    )
    with pytest.raises(TypeError, match="hashed batch"):
        list(hashed)
    part = hashed.within(1.5, 3.0, None)
    assert part.names == ["b"] and part.keyed().tolist() == [False]
    assert part.user_hashes().tolist() == [hash("v")]


@pytest.fixture(scope="module")
def busy_sim():
    # ~9,000 events in the window: a body of ~7 MB, past the service's 4 MiB before helpers.
    with Simulator(sim_config(events_per_minute=300, seed=3)) as running:
        yield running


def test_helpers_under_real_gunicorn_threads(busy_sim: Simulator, tmp_path: Path) -> None:
    """Forked from a gthread worker's request threads, with faults: no worker lost, no zombie."""
    busy_sim.script(
        [Fault.reset(after_bytes=5_500_000), Fault.none(), Fault.cut_silent(6_000_000)] * 3
    )
    window = past_window()
    params = {"from": window.start.isoformat(), "to": window.end.isoformat()}
    truth = busy_sim.truth(window.start, window.end)
    with gunicorn_service(busy_sim.url, tmp_path, 1, 4, 20.0, EXPORT_DECODE_PROCESSES="1") as (
        base,
        proc,
        log_path,
    ):

        def call(i: int) -> tuple[str, dict]:
            path = ("/events", "/distinct-users")[i % 2]
            return path, requests.get(base + path, params=params, timeout=40).json()

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(call, range(8)))
        (worker,) = psutil.Process(proc.pid).children()
        assert worker.children() == []  # every helper was reaped
    for path, body in results:
        assert body["complete"] is True, body
        assert body["export"]["decode_helpers"] == 1
        assert body["value"] == (truth.events if path == "/events" else truth.distinct_users)
    log = log_path.read_text()
    assert log.count("Booting worker") == 1
    for sign in ("WORKER TIMEOUT", "Worker exited", "Traceback"):
        assert sign not in log
