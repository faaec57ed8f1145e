"""Shutdown: SIGTERM with slow reads in flight, and what a Cloud Run scale-down would get wrong."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from collector.simulator import Fault, Simulator
from tests.helpers import gunicorn, json_entries, service_env
from tests.reliability.chaos import base_hour, request_for
from tests.reliability.load import LOG_PROBLEMS

# -- shutdown ---------------------------------------------------------------------------------


IN_FLIGHT = 4


def slow_faults() -> list[Fault]:
    """Four requests that would outlive Cloud Run's 10 s grace: a stall, a trickle, no headers,
    and a 40 s Retry-After wait whose retry (the fifth query, made once the drain has cut the
    wait short) meets no headers either."""
    return [
        Fault.stall(20_000, seconds=120),
        Fault.trickle(20_000, interval=0.05),
        Fault.stall_headers(120),
        Fault.status(503, retry_after=40),
        Fault.stall_headers(120),
    ]


@dataclass
class ShutdownFigures:
    answers: list[tuple[int, dict[str, Any], float]]  # status, body, seconds after SIGTERM
    exit_code: int | None
    exit_seconds: float
    entries: list[dict[str, Any]]  # the service's JSON log entries
    booted: int
    log_problems: list[str]

    @property
    def summaries(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("summary")]

    @property
    def drains(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("drain")]

    @property
    def worst_answer(self) -> float:
        return max((s for _, _, s in self.answers), default=float("inf"))


def run_shutdown(sim: Simulator, log: Path, deadline: float = 60.0) -> ShutdownFigures:
    """Slow reads in flight, then SIGTERM: every request must still answer, quickly."""
    faults = slow_faults()
    env = service_env(
        sim,
        EXPORT_DEADLINE_SECONDS=str(deadline),
        EXPORT_READ_TIMEOUT_SECONDS="30",
        EXPORT_BACKOFF_BASE_SECONDS="1",
        EXPORT_BACKOFF_CAP_SECONDS="2",
    )
    params = request_for("distinct_users", base_hour(), 60, ())
    answers: list[tuple[int, dict[str, Any], float]] = []
    signalled = [float("inf")]
    lock = threading.Lock()
    with gunicorn(env, log, workers=1, threads=IN_FLIGHT) as service:
        sim.clear_faults()
        sim.script(faults)
        before = sim.queries

        def call() -> None:
            try:
                r = requests.get(service.base + "/distinct-users", params=params, timeout=30)
                status, body = r.status_code, r.json()
            except (requests.RequestException, ValueError) as exc:
                status, body = 0, {"error": f"client: {type(exc).__name__}: {exc}"}
            with lock:
                answers.append((status, body, time.monotonic() - signalled[0]))

        pool = [threading.Thread(target=call, daemon=True) for _ in range(IN_FLIGHT)]
        for t in pool:
            t.start()
        for _ in range(200):  # until every request is reading (or waiting to retry)
            if sim.queries - before >= IN_FLIGHT:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # bytes flowing, the retry wait begun
        signalled[0] = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        for t in pool:
            t.join(timeout=20)
        try:
            code: int | None = service.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        exit_seconds = time.monotonic() - signalled[0]
        sim.clear_faults()
    text = log.read_text(errors="replace")
    return ShutdownFigures(
        answers=answers,
        exit_code=code,
        exit_seconds=exit_seconds,
        entries=json_entries(text),
        booted=text.count("Booting worker"),
        log_problems=[p for p in LOG_PROBLEMS if p in text],
    )


def shutdown_problems(
    f: ShutdownFigures, in_flight: int = IN_FLIGHT, limit: float = 10.0
) -> list[str]:
    """What a Cloud Run scale-down would get wrong in this run; empty when all is well."""
    found = []
    if len(f.answers) != in_flight:
        found.append(f"{len(f.answers)} answers for {in_flight} requests")
    for status, body, after in f.answers:
        if after >= limit:
            found.append(f"an answer came {after:.2f} s after SIGTERM")
        last = (body.get("export", {}).get("errors") or [{}])[-1]
        if status == 200 and (body.get("complete") or last.get("kind") != "shutdown"):
            found.append(f"200 not cut by the drain: {json.dumps(body)[:300]}")
        elif status == 503 and (
            body.get("code") != "upstream_unavailable" or last.get("kind") != "shutdown"
        ):
            found.append(f"503 not from the drain: {json.dumps(body)[:300]}")
        elif status not in (200, 503):
            found.append(f"status {status}: {json.dumps(body)[:300]}")
    if f.exit_code != 0 or f.exit_seconds >= limit:
        found.append(f"exit code {f.exit_code} after {f.exit_seconds:.2f} s")
    if len(f.summaries) != in_flight:
        found.append(f"{len(f.summaries)} summary log entries for {in_flight} requests")
    if [d.get("reads_cut") for d in f.drains] != [in_flight]:
        found.append(f"drain entries: {f.drains}")
    if f.booted != 1 or f.log_problems:
        found.append(f"booted {f.booted}, log problems {f.log_problems}")
    return found
