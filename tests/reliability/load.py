"""Load: real gunicorn under concurrent clients and random upstream faults."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from collector.simulator import Fault, Simulator
from tests.helpers import Service, gunicorn, service_env
from tests.reliability.chaos import (
    Outcome,
    answer_kind,
    base_hour,
    contract_violations,
    fault_label,
    random_fault,
    request_for,
    truth_for,
)
from tests.reliability.common import PATHS, secret_forms

# -- load -------------------------------------------------------------------------------------


@dataclass
class LoadFigures:
    seconds: float
    clients: int
    workers: int
    threads: int
    deadline: float
    requests: int = 0
    queries: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    worst_server: float = 0.0
    worst_client: float = 0.0
    latencies: list[float] = field(default_factory=list)  # client seconds, in order
    booted: int = 0
    log_problems: list[str] = field(default_factory=list)
    rss_start: dict[int, float] = field(default_factory=dict)  # MiB per worker pid
    rss_end: dict[int, float] = field(default_factory=dict)
    rss_series: list[tuple[float, float]] = field(default_factory=list)  # (s, largest MiB)
    scanned_lines: int = 0
    scanned_bodies: int = 0
    secret_hits: int = 0

    @property
    def restarts(self) -> int:
        return self.booted - self.workers

    @property
    def rss_drift(self) -> float:
        drifts = [self.rss_end[p] - self.rss_start[p] for p in self.rss_start if p in self.rss_end]
        return max(drifts, default=0.0)


LOG_PROBLEMS = ("WORKER TIMEOUT", "Worker exited", "SystemExit", "Traceback", "SIGKILL")


def _rss(service: Service) -> dict[int, float]:
    out = {}
    for proc in service.workers():
        try:
            out[proc.pid] = proc.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
    return out


def run_load(
    sim: Simulator,
    log: Path,
    *,
    seconds: float = 8.0,
    clients: int = 4,
    workers: int = 2,
    threads: int = 4,
    deadline: float = 3.0,
    seed: int = 1,
    entry: str = "main:app",
    fault_rate: float = 0.6,
    in_time: bool = True,
) -> LoadFigures:
    """Concurrent clients against real gunicorn through random faults, for `seconds`."""
    if clients > threads:
        # gthread workers accept unevenly: a request queued behind busy threads would measure
        # the queue, not the deadline.
        raise ValueError("clients must not exceed threads per worker")
    rng = random.Random(seed)
    figures = LoadFigures(seconds, clients, workers, threads, deadline)
    env = service_env(sim, EXPORT_DEADLINE_SECONDS=str(deadline), EXPORT_READ_TIMEOUT_SECONDS="1")
    most_queries = int(seconds * 3 * workers) + 100  # the per-second limit caps queries
    script = [
        random_fault(rng) if rng.random() < fault_rate else Fault.none()
        for _ in range(most_queries)
    ]
    base = base_hour()
    menu = [
        ("distinct_users", request_for("distinct_users", base, 60, ())),
        ("events", request_for("events", base + timedelta(minutes=30), 90, ())),
        ("events", request_for("events", base, 120, ("Sign Up", "Purchase"))),
        ("distinct_users", request_for("distinct_users", base, 15, ("Page View",))),
        ("active_users", request_for("active_users", base, 0, ())),
    ]
    truths = [truth_for(sim, metric, params) for metric, params in menu]
    results: list[tuple[int, int, dict[str, Any], float]] = []
    lock = threading.Lock()

    with gunicorn(env, log, workers=workers, threads=threads, entry=entry) as service:
        sim.clear_faults()
        sim.script(script)
        before = len(sim.requests)
        stop_at = time.monotonic() + seconds

        def client(i: int) -> None:
            crng = random.Random(seed * 1000 + i)
            for _ in range(100_000):  # bounded; the clock ends it first
                if time.monotonic() >= stop_at:
                    return
                pick = crng.randrange(len(menu))
                metric, params = menu[pick]
                started = time.monotonic()
                try:
                    r = requests.get(
                        service.base + PATHS[metric], params=params, timeout=deadline + 10
                    )
                    status, body = r.status_code, r.json()
                except (requests.RequestException, ValueError) as exc:
                    status, body = 0, {"error": f"client: {type(exc).__name__}: {exc}"}
                with lock:
                    results.append((pick, status, body, time.monotonic() - started))

        pool = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in pool:
            t.start()
        warm_at = time.monotonic() + min(10.0, seconds / 5)  # imports, first allocations
        while any(t.is_alive() for t in pool) and time.monotonic() < stop_at + deadline + 15:
            now_rss = _rss(service)
            if not figures.rss_start and time.monotonic() >= warm_at:
                figures.rss_start = now_rss
            figures.rss_end = now_rss or figures.rss_end
            if now_rss:
                elapsed = seconds - (stop_at - time.monotonic())
                figures.rss_series.append((elapsed, max(now_rss.values())))
            time.sleep(0.5)
        for t in pool:
            t.join(timeout=deadline + 15)
        figures.rss_end = _rss(service) or figures.rss_end
        figures.queries = len(sim.requests) - before
        # The simulator hands out the script in order, one fault per export query.
        figures.faults.update(fault_label(f) for f in script[: figures.queries] if f.kind != "none")
        sim.clear_faults()
    text = log.read_text(errors="replace")
    figures.booted = text.count("Booting worker")
    figures.log_problems = [p for p in LOG_PROBLEMS if p in text]

    secrets = secret_forms([sim.config.secret], sim.config.username)
    bodies = [json.dumps(body) for _, _, body, _ in results]
    figures.scanned_lines = len(text.splitlines())
    figures.scanned_bodies = len(bodies)
    figures.secret_hits = sum(
        s in chunk for s in secrets for chunk in [*text.splitlines(), *bodies]
    )
    for pick, status, body, elapsed in results:
        metric = menu[pick][0]
        figures.requests += 1
        figures.answers[answer_kind(status, body)] += 1
        figures.worst_client = max(figures.worst_client, elapsed)
        figures.latencies.append(elapsed)
        figures.worst_server = max(figures.worst_server, body.get("export", {}).get("seconds", 0))
        outcome = Outcome(metric, status, body, elapsed, truths[pick], deadline, margin=1.5)
        figures.violations += [
            f"{metric}: {v}" for v in contract_violations(outcome, in_time=in_time)
        ]
    return figures
