"""Reliability under faults, load and shutdown: the figures of docs/reliability.md.

    python -m bench.reliability [--chaos N] [--load-seconds S] [--shutdowns N] [--seed N]

Each run works against the embedded simulator on loopback (127.0.0.1 only):

- chaos: N random scenarios (a fault for each successive attempt, a window, an event filter, a
  metric, gzip or not) through the app in-process; every answer is checked against the contract
  and the simulator's ground truth (`contract_violations`). tests/test_chaos.py draws the same
  scenarios with hypothesis.
- load: real gunicorn with the shipped gunicorn.conf.py and concurrent clients for S seconds
  through random faults: answers checked like chaos, latencies against the deadline, worker
  restarts, worker RSS drift, and every log line and body scanned for the configured secrets.
- shutdown: SIGTERM to gunicorn with slow reads in flight: how long until each request answers
  and until the process exits (Cloud Run kills it 10 s after SIGTERM).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from flask import Flask

from collector.app import create_app
from collector.config import Settings
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.simulator import Fault, SimConfig, Simulator, Truth

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("distinct_users", "events", "active_users")
NAMES = ("Page View", "Sign Up", "Purchase", "Search", "Add To Cart")
PATHS = {"distinct_users": "/distinct-users", "events": "/events", "active_users": "/active-users"}
# Entries in `errors` for an attempt that was never made (budget, or no time left to make it).
NOT_MADE = frozenset({"budget", "deadline", "shutdown"})
# Distinctive, so that a leak is found by a plain substring search of any output.
SA_USER = "reliability-sa.5d1c9e.mp-service-account"
SA_SECRET = "rel-sa-secret-Q7w2Vx9LpK4"


def sim_config(**overrides: Any) -> SimConfig:
    """Small bodies (a day is ~7 MB): many scenarios per second, still several blocks each."""
    base: dict[str, Any] = {
        "seed": 5,
        "events_per_minute": 6,
        "users": 400,
        "malformed_per_query": 3,
        "username": SA_USER,
        "secret": SA_SECRET,
        "project_id": "77",
    }
    base.update(overrides)
    return SimConfig(**base)


def service_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    """The service's environment for this simulator's credentials; overrides win."""
    cfg = sim.config
    env = {
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": cfg.username,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": cfg.secret,
        "MIXPANEL_PROJECT_ID": cfg.project_id,
        "MIXPANEL_EXPORT_URL": sim.url,
        "EXPORT_BACKOFF_BASE_SECONDS": "0.05",
        "EXPORT_BACKOFF_CAP_SECONDS": "0.2",
        "LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env


# -- faults and scenarios ---------------------------------------------------------------------

FAULT_KINDS = (
    "none",
    "reset",
    "cut_chunked",
    "cut_length",
    "cut_silent",
    "terminated_early",
    "stall",
    "trickle",
    "stall_headers",
    "http_5xx",
    "http_429",
    "gzip_corrupt",
    "duplicate_lines",
    "leak",
)


def make_fault(kind: str, at: int, level: int) -> Fault:
    """One fault: `at` body bytes in, `level` (0-3) picks its other parameter."""
    level %= 4
    if kind == "none":
        return Fault.none()
    if kind == "stall":
        return Fault.stall(at, seconds=30)  # ended by the read timeout or the deadline
    if kind == "trickle":
        return Fault.trickle(at, interval=(0.01, 0.05, 0.1, 0.3)[level])
    if kind == "stall_headers":
        return Fault.stall_headers(30)
    if kind == "http_5xx":
        return Fault.status((500, 502, 503, 504)[level])
    if kind == "http_429":
        # No header, "retry now", longer than a short deadline, unparseable.
        return Fault.status(429, retry_after=(None, 0, 2, "soon")[level])
    if kind == "duplicate_lines":
        return Fault.duplicate_lines((0.1, 0.5, 0.9, 1.0)[level])
    if kind == "leak":
        return Fault.leak(out_of_window=level != 1, other_events=level != 2)
    return getattr(Fault, kind)(at)  # reset, cut_*, terminated_early, gzip_corrupt


def fault_label(fault: Fault) -> str:
    if fault.kind == "status":
        return "http_429" if fault.status_code == 429 else f"http_{fault.status_code // 100}xx"
    return fault.kind


def random_fault(rng: random.Random, at_most: int = 60_000) -> Fault:
    return make_fault(rng.choice(FAULT_KINDS), rng.randrange(at_most + 1), rng.randrange(4))


@dataclass(frozen=True)
class Scenario:
    script: tuple[Fault, ...]  # the Nth attempt meets the Nth fault; later ones none
    metric: str = "events"
    offset: int = 0  # minutes after the base hour
    minutes: int = 30
    names: tuple[str, ...] = ()
    gzip: bool = True


def random_scenario(rng: random.Random) -> Scenario:
    return Scenario(
        script=tuple(random_fault(rng) for _ in range(rng.randrange(5))),
        metric=rng.choice(METRICS),
        offset=rng.randrange(181),
        minutes=rng.randrange(1, 121),
        names=tuple(rng.sample(NAMES, rng.randrange(4))),
        gzip=rng.random() < 0.5,
    )


def base_hour(now: datetime | None = None) -> datetime:
    """06:00 UTC yesterday: settled, and every window after it stays within yesterday."""
    day = ((now or datetime.now(UTC)) - timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, 6, tzinfo=UTC)


@dataclass
class Outcome:
    metric: str
    status: int
    body: dict[str, Any]
    elapsed: float  # seconds as the client saw them
    truth: Truth
    deadline: float
    margin: float  # how far past the deadline an answer may come (framework and transport)


def request_for(metric: str, start: datetime, minutes: int, names: tuple[str, ...]) -> dict:
    """Query parameters for one metric request; active_users asks for the start's whole day."""
    if metric == "active_users":
        return {"date": start.date().isoformat()}
    end = start + timedelta(minutes=minutes)
    params: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
    if names:
        params["event"] = list(names)
    return params


def truth_for(sim: Simulator, metric: str, params: Mapping[str, Any]) -> Truth:
    if metric == "active_users":
        day = date.fromisoformat(params["date"])
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return sim.truth(start, start + timedelta(days=1))
    names = params.get("event")
    return sim.truth(
        datetime.fromisoformat(params["from"]), datetime.fromisoformat(params["to"]), names
    )


def run_scenario(sim: Simulator, sc: Scenario, deadline: float = 1.2, **env: str) -> Outcome:
    """One scenario through the app in-process (routes, reader, aggregators), fresh budget."""
    sim.clear_faults()
    sim.script(sc.script)
    settings = Settings.from_env(
        service_env(
            sim,
            EXPORT_DEADLINE_SECONDS=str(deadline),
            EXPORT_READ_TIMEOUT_SECONDS="0.4",
            EXPORT_CONNECT_TIMEOUT_SECONDS="0.5",
            EXPORT_BACKOFF_BASE_SECONDS="0.01",
            EXPORT_BACKOFF_CAP_SECONDS="0.05",
            EXPORT_GZIP=str(sc.gzip).lower(),
            LOG_FORMAT="text",
            LOG_LEVEL="error",
            **env,
        )
    )
    client = create_app(settings).test_client()
    start = base_hour() + timedelta(minutes=sc.offset)
    params = request_for(sc.metric, start, sc.minutes, sc.names)
    started = time.monotonic()
    response = client.get(PATHS[sc.metric], query_string=params)
    elapsed = time.monotonic() - started
    sim.clear_faults()
    return Outcome(
        sc.metric,
        response.status_code,
        response.get_json(),
        elapsed,
        truth_for(sim, sc.metric, params),
        deadline,
        margin=0.5,
    )


# -- the contract -----------------------------------------------------------------------------


def contract_violations(o: Outcome) -> list[str]:
    """Everything in one answer that breaks the contract; empty when it holds."""
    found: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            found.append(what)

    body = o.body or {}
    expect(o.elapsed <= o.deadline + o.margin, f"answered after {o.elapsed:.2f} s")
    if o.status not in (200, 503):
        return [*found, f"status {o.status}: {json.dumps(body)[:300]}"]
    export = body.get("export")
    if export is None:
        return [*found, f"{o.status} without export figures: {json.dumps(body)[:300]}"]
    complete = bool(body.get("complete"))
    found += export_violations(export, complete, o.deadline)
    if o.status == 503:
        expect(body.get("code") in {"upstream_unavailable", "budget_exhausted"}, "503 code")
        expect(export["lines"] == 0, "503 although lines were read")
        return found

    value = body["value"]
    exact = o.truth.events if o.metric == "events" else o.truth.distinct_users
    dedup = export["events"] - export["duplicates"]
    if complete:
        expect(value == exact, f"complete value {value} != truth {exact}")
        expect(dedup == o.truth.events, f"complete events-duplicates {dedup} != {o.truth.events}")
        expect("note" not in body, "complete answer with a partial note")
    else:
        expect(value <= exact, f"partial value {value} > truth {exact}")
        expect(dedup <= o.truth.events, f"partial events-duplicates {dedup} > {o.truth.events}")
        expect("lower bound" in body.get("note", ""), "partial answer without its note")
    if o.metric == "events":
        by_event = body["by_event"]
        expect(dedup == value, f"events-duplicates {dedup} != value {value}")
        expect(sum(by_event.values()) == value, "by_event does not add up to value")
        if complete:
            expect(by_event == o.truth.by_event, f"by_event {by_event} != {o.truth.by_event}")
        else:
            over = {k: n for k, n in by_event.items() if n > o.truth.by_event.get(k, 0)}
            expect(not over, f"partial by_event over the truth: {over}")
    return found


def export_violations(export: Mapping[str, Any], complete: bool, deadline: float) -> list[str]:
    """The `export` figures add up: lines, attempts against errors, bytes, time."""
    found: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            found.append(what)

    lines, events, skipped, bad = (export[k] for k in ("lines", "events", "skipped", "bad_lines"))
    expect(lines == events + skipped + bad, f"lines {lines} != {events}+{skipped}+{bad}")
    expect(export["seconds"] <= deadline + 0.3, f"export.seconds {export['seconds']}")
    errors, attempts = export["errors"], export["attempts"]
    made = [e for e in errors if e["attempt"] <= attempts]
    not_made = errors[len(made) :]
    expect([e["attempt"] for e in made] == list(range(1, len(made) + 1)), "attempt numbering")
    expect(attempts == len(made) + complete, f"attempts {attempts} != {len(made)} + {complete}")
    expect(
        len(not_made) <= 1
        and all(
            e["attempt"] == attempts + 1 and e["kind"] in NOT_MADE and e["bytes"] == 0
            for e in not_made
        ),
        f"unexpected entries after the last attempt: {not_made}",
    )
    expect(all(e["next"] == "retry" for e in errors[:-1]), "a stop before the last error")
    if complete:
        expect(all(e["next"] == "retry" for e in errors), "complete after a stop")
    else:
        expect(bool(errors) and errors[-1]["next"].startswith("stop"), "partial without a stop")
    expect(sum(e["bytes"] for e in errors) <= export["bytes"], "error bytes exceed bytes")
    expect(sum(e["events"] for e in errors) <= events, "error events exceed events")
    return found


@dataclass
class ChaosFigures:
    examples: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[Scenario, list[str]]] = field(default_factory=list)
    worst_seconds: float = 0.0
    seconds: float = 0.0


def answer_kind(status: int, body: Mapping[str, Any]) -> str:
    if status == 200:
        return "complete" if body.get("complete") else "partial"
    return f"{status} {body.get('code', '')}".strip()


def run_chaos(examples: int, seed: int, deadline: float = 1.2) -> ChaosFigures:
    rng = random.Random(seed)
    figures = ChaosFigures()
    started = time.monotonic()
    with Simulator(sim_config()) as sim:
        for _ in range(examples):
            sc = random_scenario(rng)
            outcome = run_scenario(sim, sc, deadline)
            figures.examples += 1
            figures.answers[answer_kind(outcome.status, outcome.body)] += 1
            figures.faults.update(fault_label(f) for f in sc.script)
            figures.worst_seconds = max(figures.worst_seconds, outcome.elapsed)
            if problems := contract_violations(outcome):
                figures.violations.append((sc, problems))
    figures.seconds = time.monotonic() - started
    return figures


# -- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def booted(self) -> int:
        return self.log_text().count("Booting worker")


def unbudgeted_app() -> Flask:
    """`main:app` with no hourly query budget (the per-second limit stays): long load runs only.

    A process may spend 60 Export queries an hour (Mixpanel's limit); a load run against the
    simulator spends that in a minute and would measure nothing but refusals after.
    """
    settings = Settings.from_env()
    budget = QueryBudget(10**9, settings.export_queries_per_second)
    return create_app(settings, reader=ExportReader(settings, budget))


@contextmanager
def gunicorn(
    env: Mapping[str, str],
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    entry: str = "main:app",
) -> Iterator[Service]:
    """The container's command (gunicorn with the shipped gunicorn.conf.py) on a free port."""
    port = free_port()
    full = {
        **os.environ,
        **env,
        "PORT": str(port),
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"]
    with log.open("w") as out:  # stdout and stderr both: everything the platform would keep
        proc = subprocess.Popen(
            [*command, entry], cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", proc, log)
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("gunicorn exited: " + service.log_text()[-2000:])
            try:
                if requests.get(f"{service.base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:  # not listening yet, or still booting
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not serve: " + service.log_text()[-2000:])
        yield service
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def json_entries(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def secret_forms(settings_secrets: list[str], user: str | None = None) -> list[str]:
    """Each secret as given and as it travels in a Basic Authorization header."""
    forms = list(settings_secrets)
    for secret in settings_secrets:
        for pair in (f"{user}:{secret}", f"{secret}:") if user else (f"{secret}:",):
            forms.append(base64.b64encode(pair.encode()).decode())
    return [f for f in forms if f]


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
        figures.violations += [f"{metric}: {v}" for v in contract_violations(outcome)]
    return figures


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


# -- the full run -----------------------------------------------------------------------------


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items())) or "-"


def print_chaos(f: ChaosFigures, seed: int) -> None:
    print(f"\n## chaos (seed {seed})\n\n| figure | value |\n|---|---|")
    print(f"| scenarios run | {f.examples:,} in {f.seconds:.0f} s |")
    print(f"| faults scripted | {sum(f.faults.values()):,} ({_counts(f.faults)}) |")
    print(f"| answers | {_counts(f.answers)} |")
    print(f"| slowest answer (deadline 1.2 s) | {f.worst_seconds:.2f} s |")
    print(f"| contract violations | {len(f.violations)} |")
    for sc, problems in f.violations[:10]:
        print(f"\nVIOLATION {problems}\n  {sc}")


def print_load(f: LoadFigures, entry: str) -> None:
    print(f"\n## load ({entry})\n\n| figure | value |\n|---|---|")
    print(
        f"| run | {f.seconds:.0f} s, {f.clients} clients, {f.workers} workers x "
        f"{f.threads} threads, deadline {f.deadline:g} s |"
    )
    print(f"| requests | {f.requests:,} ({f.requests / f.seconds:.1f}/s) |")
    print(f"| Export queries | {f.queries:,} |")
    print(f"| faults injected | {sum(f.faults.values()):,} ({_counts(f.faults)}) |")
    print(f"| answers | {_counts(f.answers)} |")
    print(f"| contract violations | {len(f.violations)} |")
    print(f"| worst export.seconds (server) | {f.worst_server:.3f} s |")
    ranked = sorted(f.latencies) or [0.0]
    p50, p95 = ranked[len(ranked) // 2], ranked[int(len(ranked) * 0.95)]
    print(f"| client latency p50 / p95 / worst | {p50:.3f} / {p95:.3f} / {f.worst_client:.3f} s |")
    print(f"| workers booted / restarts | {f.booted} / {f.restarts} |")
    rss = ", ".join(
        f"{f.rss_start[p]:.0f} -> {f.rss_end.get(p, float('nan')):.0f}" for p in f.rss_start
    )
    print(f"| worker RSS MiB (after warm-up -> end) | {rss or '-'} |")
    print(f"| largest RSS drift | {f.rss_drift:+.1f} MiB |")
    marks = [
        min(f.rss_series, key=lambda s, q=q: abs(s[0] - q * f.seconds))
        for q in (0.1, 0.25, 0.5, 0.75, 1.0)
        if f.rss_series
    ]
    series = ", ".join(f"{t:.0f} s: {mib:.0f}" for t, mib in marks)
    print(f"| largest worker RSS MiB over the run | {series or '-'} |")
    print(f"| log problems | {', '.join(f.log_problems) or 'none'} |")
    print(
        f"| secret scan | {f.scanned_lines:,} log lines, {f.scanned_bodies:,} bodies: "
        f"{f.secret_hits} hits |"
    )
    for v in f.violations[:10]:
        print(f"VIOLATION {v}")


def print_shutdowns(runs: list[ShutdownFigures]) -> None:
    print("\n## shutdown\n\n| run | answers (status: seconds after SIGTERM) | exit | ok |")
    print("|---|---|---|---|")
    for i, f in enumerate(runs, 1):
        answers = ", ".join(f"{s}: {t:.2f}" for s, _, t in sorted(f.answers, key=lambda a: a[2]))
        print(
            f"| {i} | {answers} | code {f.exit_code} after {f.exit_seconds:.2f} s | "
            f"{not shutdown_problems(f)} |"
        )
    for f in runs:
        for p in shutdown_problems(f):
            print(f"PROBLEM {p}")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--chaos", type=int, default=1000, help="chaos scenarios (1000)")
    parser.add_argument("--load-seconds", type=float, default=120, help="load run length (120)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--shutdowns", type=int, default=5, help="SIGTERM runs (5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--hourly-budget",
        action="store_true",
        help="load main:app as shipped, 60 queries/hour per worker (default: no hourly budget)",
    )
    args = parser.parse_args(argv)
    if args.clients > args.threads:
        parser.error("--clients must not exceed --threads (gthread queueing)")
    problems = 0
    logs = Path(tempfile.mkdtemp(prefix="reliability-"))
    print(f"logs: {logs}", file=sys.stderr)
    if args.chaos:
        chaos = run_chaos(args.chaos, args.seed)
        print_chaos(chaos, args.seed)
        problems += len(chaos.violations)
    with Simulator(sim_config()) as sim:
        if args.load_seconds:
            entry = "main:app" if args.hourly_budget else "bench.reliability:unbudgeted_app()"
            load = run_load(
                sim,
                logs / "load.log",
                seconds=args.load_seconds,
                clients=args.clients,
                workers=args.workers,
                threads=args.threads,
                seed=args.seed,
                entry=entry,
            )
            print_load(load, entry)
            problems += len(load.violations) + load.restarts + load.secret_hits
            problems += len(load.log_problems)
        runs = [run_shutdown(sim, logs / f"shutdown-{i}.log") for i in range(args.shutdowns)]
        if runs:
            print_shutdowns(runs)
            problems += sum(len(shutdown_problems(f)) for f in runs)
    print(f"\nproblems: {problems}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
