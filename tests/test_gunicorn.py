"""Real gunicorn with the shipped config, concurrent requests through faults and stalls.

The predecessor lost its worker when a stream broke. Here every answer must be well-formed JSON
inside the deadline, and the arbiter must never have to replace a worker.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from collector.simulator import Fault, Simulator
from tests.conftest import past_window
from tests.helpers import gunicorn_service

DEADLINE = 3.0
WORKERS = 2
THREADS = 4


@pytest.fixture
def service(sim: Simulator, tmp_path: Path):
    with gunicorn_service(sim.url, tmp_path, WORKERS, THREADS, DEADLINE) as running:
        yield running


def test_concurrent_requests_through_faults_never_lose_a_worker(sim: Simulator, service) -> None:
    base, proc, log_path = service
    rng = random.Random(11)
    menu = [
        Fault.none,
        lambda: Fault.reset(rng.randrange(1_000, 200_000)),
        lambda: Fault.cut_silent(rng.randrange(1_000, 200_000)),
        lambda: Fault.terminated_early(rng.randrange(1_000, 200_000)),
        lambda: Fault.stall(rng.randrange(1_000, 200_000), seconds=30),
        lambda: Fault.trickle(rng.randrange(1_000, 200_000), interval=0.05),
        lambda: Fault.status(503),
        lambda: Fault.status(429, retry_after=0),
        lambda: Fault.gzip_corrupt(rng.randrange(1_000, 200_000)),
    ]
    sim.script([rng.choice(menu)() for _ in range(80)])
    window = past_window()
    params = {"from": window.start.isoformat(), "to": window.end.isoformat()}
    paths = ["/distinct-users", "/events"]

    def call(i: int) -> tuple[str, int, dict, float]:
        path = paths[i % 2]
        started = time.monotonic()
        r = requests.get(base + path, params=params, timeout=DEADLINE + 10)
        return path, r.status_code, r.json(), time.monotonic() - started

    # No more clients than one worker has threads: gthread workers accept unevenly, and a
    # request queued behind busy threads would measure the queue, not the deadline.
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(call, range(24)))

    truth = sim.truth(window.start, window.end)
    statuses = {}
    for path, status, body, elapsed in results:
        statuses[status] = statuses.get(status, 0) + 1
        server_seconds = body.get("export", {}).get("seconds", 0.0)
        assert server_seconds <= DEADLINE + 0.25, (path, status, server_seconds)
        assert elapsed < DEADLINE + 1.5, (path, status, elapsed, server_seconds)
        assert status in (200, 503), body
        if status == 503:
            assert body["code"] in {"upstream_unavailable", "budget_exhausted"}
            continue
        exact = truth.events if path == "/events" else truth.distinct_users
        if body["complete"]:
            assert body["value"] == exact
        else:
            assert body["value"] <= exact
    assert statuses.get(200, 0) > 0

    assert proc.poll() is None
    log = log_path.read_text()
    assert log.count("Booting worker") == WORKERS  # no worker was ever replaced
    for sign in ("WORKER TIMEOUT", "Worker exited", "SystemExit", "Traceback"):
        assert sign not in log
